//! Test-audio helpers: PCM generation, G.711 codecs and a libpcap writer
//! producing RTP streams that SIPp's `play_pcap_audio` can replay.
//!
//! std only. Layout written by [`write_rtp_pcap`]:
//! pcap global header (magic a1b2c3d4 little-endian, v2.4, µs timestamps,
//! snaplen 65535, DLT_EN10MB) then one record per RTP packet:
//! Ethernet II (14) + IPv4 (20, no options, real header checksum) +
//! UDP (8, real checksum) 127.0.0.1:6000 -> 127.0.0.1:6001 + RTP (12) + payload.
//! SIPp rewrites addresses/ports when replaying; it paces packets by the
//! record timestamps, which are 20 ms apart here.
#![allow(dead_code)]

use std::io::{self, Write};
use std::path::Path;
use std::process::{Command, Stdio};

/// G.711 sample rate used by all helpers.
pub const SAMPLE_RATE: u32 = 8000;
/// Packet interval written into the pcap record timestamps.
pub const PTIME_MS: u32 = 20;
/// RTP payload types used by the SDP in `sipp-scenarios/`.
pub const PT_PCMU: u8 = 0;
pub const PT_PCMA: u8 = 8;
pub const PT_TELEPHONE_EVENT: u8 = 101;

const SRC_IP: [u8; 4] = [127, 0, 0, 1];
const DST_IP: [u8; 4] = [127, 0, 0, 1];
const SRC_PORT: u16 = 6000;
const DST_PORT: u16 = 6001;
const SSRC: u32 = 0x766f_7867; // "voxg"
/// First record timestamp (seconds since the epoch); fixed so output is deterministic.
const START_SEC: u32 = 1_700_000_000;

fn samples_for(ms: u32) -> usize {
    (ms as usize) * (SAMPLE_RATE as usize) / 1000
}

/// 8 kHz mono PCM16 sine tone.
pub fn tone(freq_hz: f32, ms: u32, amplitude: i16) -> Vec<i16> {
    let n = samples_for(ms);
    let w = 2.0 * std::f64::consts::PI * freq_hz as f64 / SAMPLE_RATE as f64;
    (0..n)
        .map(|i| (amplitude as f64 * (w * i as f64).sin()).round() as i16)
        .collect()
}

/// 8 kHz mono PCM16 silence.
pub fn silence(ms: u32) -> Vec<i16> {
    vec![0; samples_for(ms)]
}

/// µ-law encode one sample (ITU-T G.711, as in the Sun/G.191 reference code,
/// which truncates; sox rounds, so ~0.6% of inputs, all at segment
/// boundaries, encode one step apart from sox).
pub fn ulaw_sample(pcm: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let mut v = pcm as i32;
    let sign = if v < 0 { 0x80 } else { 0 };
    if v < 0 {
        v = -v;
    }
    if v > CLIP {
        v = CLIP;
    }
    v += BIAS;
    let mut exp: i32 = 7;
    let mut mask = 0x4000;
    while exp > 0 && (v & mask) == 0 {
        exp -= 1;
        mask >>= 1;
    }
    let mantissa = (v >> (exp + 3)) & 0x0F;
    !((sign | (exp << 4) | mantissa) as u8)
}

/// A-law encode one sample (ITU-T G.711, as in the Sun reference code).
pub fn alaw_sample(pcm: i16) -> u8 {
    const SEG_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
    let mut v = (pcm as i32) >> 3; // 13-bit magnitude
    let mask: u8 = if v >= 0 {
        0xD5
    } else {
        v = -v - 1;
        0x55
    };
    let seg = SEG_END.iter().position(|&e| v <= e).unwrap_or(8);
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let mut aval = (seg as i32) << 4;
    aval |= if seg < 2 {
        (v >> 1) & 0x0F
    } else {
        (v >> seg) & 0x0F
    };
    (aval as u8) ^ mask
}

/// µ-law encode (G.711, PT 0).
pub fn ulaw(pcm: &[i16]) -> Vec<u8> {
    pcm.iter().map(|&s| ulaw_sample(s)).collect()
}

/// A-law encode (G.711, PT 8).
pub fn alaw(pcm: &[i16]) -> Vec<u8> {
    pcm.iter().map(|&s| alaw_sample(s)).collect()
}

/// µ-law decode one byte (exact inverse table of the reference decoder).
pub fn ulaw_decode_sample(u: u8) -> i16 {
    let u = !u;
    let t = ((((u & 0x0F) as i32) << 3) + 0x84) << ((u & 0x70) >> 4);
    (if u & 0x80 != 0 { 0x84 - t } else { t - 0x84 }) as i16
}

/// A-law decode one byte.
pub fn alaw_decode_sample(a: u8) -> i16 {
    let a = a ^ 0x55;
    let mut t = ((a & 0x0F) as i32) << 4;
    let seg = ((a & 0x70) >> 4) as i32;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

pub fn ulaw_decode(data: &[u8]) -> Vec<i16> {
    data.iter().map(|&b| ulaw_decode_sample(b)).collect()
}

pub fn alaw_decode(data: &[u8]) -> Vec<i16> {
    data.iter().map(|&b| alaw_decode_sample(b)).collect()
}

/// One RTP packet to be framed into the pcap.
#[derive(Clone, Debug)]
pub struct RtpPacket {
    /// Offset of this packet from the first one, in microseconds (pcap record time).
    pub at_us: u64,
    pub marker: bool,
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub payload: Vec<u8>,
}

impl RtpPacket {
    fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(12 + self.payload.len());
        b.push(0x80); // V=2, P=0, X=0, CC=0
        b.push(((self.marker as u8) << 7) | (self.payload_type & 0x7F));
        b.extend_from_slice(&self.seq.to_be_bytes());
        b.extend_from_slice(&self.timestamp.to_be_bytes());
        b.extend_from_slice(&SSRC.to_be_bytes());
        b.extend_from_slice(&self.payload);
        b
    }
}

fn ones_complement_sum(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [last] = chunks.remainder() {
        sum += (*last as u32) << 8;
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// Ethernet + IPv4 + UDP frame around `udp_payload`.
fn frame(udp_payload: &[u8], ip_id: u16) -> Vec<u8> {
    let udp_len = 8 + udp_payload.len();
    let ip_len = 20 + udp_len;
    assert!(ip_len <= 0xFFFF, "UDP payload too large");
    let mut f = Vec::with_capacity(14 + ip_len);
    // Ethernet II: dst, src (locally administered), EtherType IPv4.
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    // IPv4 header.
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&ip_id.to_be_bytes());
    ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // DF
    ip[8] = 64; // TTL
    ip[9] = 17; // UDP
    ip[12..16].copy_from_slice(&SRC_IP);
    ip[16..20].copy_from_slice(&DST_IP);
    let csum = fold(ones_complement_sum(0, &ip));
    ip[10..12].copy_from_slice(&csum.to_be_bytes());
    f.extend_from_slice(&ip);
    // UDP header + checksum over the pseudo-header.
    let mut udp = Vec::with_capacity(udp_len);
    udp.extend_from_slice(&SRC_PORT.to_be_bytes());
    udp.extend_from_slice(&DST_PORT.to_be_bytes());
    udp.extend_from_slice(&(udp_len as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(udp_payload);
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&SRC_IP);
    pseudo.extend_from_slice(&DST_IP);
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&(udp_len as u16).to_be_bytes());
    let mut c = fold(ones_complement_sum(ones_complement_sum(0, &pseudo), &udp));
    if c == 0 {
        c = 0xFFFF;
    }
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&udp);
    f
}

/// Serialize RTP packets into a complete pcap file image.
pub fn rtp_pcap_bytes(packets: &[RtpPacket]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes()); // thiszone
    out.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
    out.extend_from_slice(&65535u32.to_le_bytes()); // snaplen
    out.extend_from_slice(&1u32.to_le_bytes()); // DLT_EN10MB
    for (i, p) in packets.iter().enumerate() {
        let fr = frame(&p.to_bytes(), i as u16);
        let sec = START_SEC as u64 + p.at_us / 1_000_000;
        let usec = p.at_us % 1_000_000;
        out.extend_from_slice(&(sec as u32).to_le_bytes());
        out.extend_from_slice(&(usec as u32).to_le_bytes());
        out.extend_from_slice(&(fr.len() as u32).to_le_bytes());
        out.extend_from_slice(&(fr.len() as u32).to_le_bytes());
        out.extend_from_slice(&fr);
    }
    out
}

/// Write arbitrary RTP packets (e.g. from [`dtmf_packets`]) to a pcap file.
pub fn write_packets_pcap(path: &Path, packets: &[RtpPacket]) -> io::Result<usize> {
    let mut f = std::fs::File::create(path)?;
    f.write_all(&rtp_pcap_bytes(packets))?;
    f.flush()?;
    Ok(packets.len())
}

/// Split an encoded payload into RTP packets, one per 20 ms.
/// The RTP timestamp advances by `bytes_per_packet` (1 byte = 1 sample for
/// G.711). A short final chunk is padded with the codec's silence byte for
/// PT 0 (0xFF) / PT 8 (0xD5) and sent short for other payload types.
pub fn rtp_packets(payload_type: u8, payload: &[u8], bytes_per_packet: usize) -> Vec<RtpPacket> {
    assert!(bytes_per_packet > 0);
    let pad = match payload_type {
        PT_PCMU => Some(0xFFu8),
        PT_PCMA => Some(0xD5u8),
        _ => None,
    };
    payload
        .chunks(bytes_per_packet)
        .enumerate()
        .map(|(i, chunk)| {
            let mut data = chunk.to_vec();
            if let Some(b) = pad {
                data.resize(bytes_per_packet, b);
            }
            RtpPacket {
                at_us: i as u64 * PTIME_MS as u64 * 1000,
                marker: i == 0,
                payload_type,
                seq: (1000u32 + i as u32) as u16,
                timestamp: (i as u32).wrapping_mul(bytes_per_packet as u32),
                payload: data,
            }
        })
        .collect()
}

/// Write a pcap of RTP packets, one per 20 ms, `bytes_per_packet` payload
/// bytes each (160 for G.711), given PT, seq/ts increasing, marker on the
/// first packet, 127.0.0.1:6000 -> 127.0.0.1:6001. Returns the packet count.
pub fn write_rtp_pcap(
    path: &Path,
    payload_type: u8,
    payload: &[u8],
    bytes_per_packet: usize,
) -> io::Result<usize> {
    write_packets_pcap(path, &rtp_packets(payload_type, payload, bytes_per_packet))
}

/// RFC 4733 telephone-event packets for `digits` (0-9, *, #, A-D): each
/// event lasts `event_ms`, is reported every 20 ms (marker on the first
/// packet, E bit on the last three, which repeat the final duration), and
/// events are separated by `gap_ms` of nothing. Volume 10 (-10 dBm0).
pub fn dtmf_packets(digits: &str, payload_type: u8, event_ms: u32, gap_ms: u32) -> Vec<RtpPacket> {
    let mut out = Vec::new();
    let mut t_ms: u32 = 0;
    let mut seq: u16 = 2000;
    for d in digits.chars() {
        let event: u8 = match d {
            '0'..='9' => d as u8 - b'0',
            '*' => 10,
            '#' => 11,
            'A'..='D' => 12 + (d as u8 - b'A'),
            'a'..='d' => 12 + (d as u8 - b'a'),
            _ => continue,
        };
        let ts = t_ms * 8;
        let steps = (event_ms / PTIME_MS).max(1);
        for k in 1..=steps + 2 {
            let end = k >= steps;
            let dur = (k.min(steps) * PTIME_MS * 8) as u16;
            let payload = vec![event, ((end as u8) << 7) | 10, (dur >> 8) as u8, dur as u8];
            out.push(RtpPacket {
                at_us: (t_ms + (k - 1) * PTIME_MS) as u64 * 1000,
                marker: k == 1,
                payload_type,
                seq,
                timestamp: ts,
                payload,
            });
            seq = seq.wrapping_add(1);
        }
        t_ms += (steps + 2) * PTIME_MS + gap_ms;
    }
    out
}

/// Speech via `espeak-ng --stdout TEXT | sox -t wav - -r 8000 -c 1 -b 16
/// -e signed -t raw -`. None if either tool is missing or fails.
pub fn speech(text: &str) -> Option<Vec<i16>> {
    let mut espeak = Command::new("espeak-ng")
        .arg("--stdout")
        .arg(text)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let wav = espeak.stdout.take()?;
    let sox = Command::new("sox")
        .args([
            "-t", "wav", "-", "-r", "8000", "-c", "1", "-b", "16", "-e", "signed", "-L", "-t",
            "raw", "-",
        ])
        .stdin(Stdio::from(wav))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let sox = match sox {
        Ok(s) => s,
        Err(_) => {
            let _ = espeak.kill();
            let _ = espeak.wait();
            return None;
        }
    };
    let out = sox.wait_with_output().ok()?;
    let es = espeak.wait().ok()?;
    if !out.status.success() || !es.success() || out.stdout.len() < 2 {
        return None;
    }
    Some(
        out.stdout
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect(),
    )
}

/// One pcap record: (ts_sec, ts_usec, frame bytes).
pub type PcapRecord = (u32, u32, Vec<u8>);

/// Minimal pcap reader for tests: returns (ts_sec, ts_usec, frame bytes)
/// per record. Only little-endian µs pcap files (what this module writes
/// and what SIPp ships) are accepted.
pub fn read_pcap(data: &[u8]) -> io::Result<(u32, Vec<PcapRecord>)> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
    if data.len() < 24 || data[0..4] != 0xa1b2_c3d4u32.to_le_bytes() {
        return Err(bad("not a little-endian µs pcap"));
    }
    let linktype = u32::from_le_bytes(data[20..24].try_into().unwrap());
    let mut recs = Vec::new();
    let mut off = 24;
    while off < data.len() {
        if off + 16 > data.len() {
            return Err(bad("truncated record header"));
        }
        let f = |o: usize| u32::from_le_bytes(data[off + o..off + o + 4].try_into().unwrap());
        let (sec, usec, incl) = (f(0), f(4), f(8) as usize);
        off += 16;
        if off + incl > data.len() {
            return Err(bad("truncated record"));
        }
        recs.push((sec, usec, data[off..off + incl].to_vec()));
        off += incl;
    }
    Ok((linktype, recs))
}
