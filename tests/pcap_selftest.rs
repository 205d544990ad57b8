//! Self-test for tests/common/pcap.rs: G.711 codecs, pcap framing (global
//! header, record count, IPv4/UDP lengths and checksums, RTP fields) and
//! compatibility with the pcap layout SIPp ships for play_pcap_audio.
mod common {
    pub mod pcap;
}

use common::pcap::*;

fn be16(b: &[u8], o: usize) -> u16 {
    u16::from_be_bytes([b[o], b[o + 1]])
}
fn be32(b: &[u8], o: usize) -> u32 {
    u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn csum_ok(sum_over: &[u8]) -> bool {
    let mut s: u32 = 0;
    for c in sum_over.chunks(2) {
        s += (u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])) as u32;
    }
    while s > 0xFFFF {
        s = (s & 0xFFFF) + (s >> 16);
    }
    s == 0xFFFF
}

#[test]
fn g711_reference_values() {
    assert_eq!(ulaw_sample(0), 0xFF);
    assert_eq!(ulaw_sample(i16::MAX), 0x80);
    assert_eq!(ulaw_sample(i16::MIN), 0x00);
    assert_eq!(alaw_sample(0), 0xD5);
    assert_eq!(alaw_sample(i16::MAX), 0xAA);
    assert_eq!(alaw_sample(i16::MIN), 0x2A);
    // encode(decode(b)) == b for every code (µ-law 0x7F is "-0" and maps to 0xFF).
    for b in 0u8..=255 {
        if b != 0x7F {
            assert_eq!(ulaw_sample(ulaw_decode_sample(b)), b, "ulaw {b:#x}");
        }
        assert_eq!(alaw_sample(alaw_decode_sample(b)), b, "alaw {b:#x}");
    }
    // Quantisation error stays within G.711's step size (≤ 1/16 of magnitude + small).
    for x in (-32768i32..=32767).step_by(97) {
        let x = x as i16;
        for y in [
            ulaw_decode_sample(ulaw_sample(x)),
            alaw_decode_sample(alaw_sample(x)),
        ] {
            let err = (x as i32 - y as i32).abs();
            assert!(err <= (x as i32).abs() / 16 + 64, "x={x} y={y}");
        }
    }
}

#[test]
fn tone_and_silence() {
    let t = tone(1000.0, 100, 8000);
    assert_eq!(t.len(), 800);
    assert_eq!(*t.iter().max().unwrap(), 8000);
    assert_eq!(silence(20), vec![0i16; 160]);
}

#[test]
fn rtp_pcap_round_trip() {
    let pcm = tone(440.0, 1010, 12000); // 8080 samples -> 51 packets, last padded
    let payload = ulaw(&pcm);
    let dir = std::env::temp_dir().join(format!("voxgate-pcap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tone.pcap");
    let n = write_rtp_pcap(&path, PT_PCMU, &payload, 160).unwrap();
    assert_eq!(n, 51);
    let data = std::fs::read(&path).unwrap();
    std::fs::remove_dir_all(&dir).ok();

    // Global header.
    assert_eq!(&data[0..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
    assert_eq!(&data[4..8], &[2, 0, 4, 0]);
    assert_eq!(u32::from_le_bytes(data[16..20].try_into().unwrap()), 65535);
    assert_eq!(u32::from_le_bytes(data[20..24].try_into().unwrap()), 1);

    let (link, recs) = read_pcap(&data).unwrap();
    assert_eq!(link, 1);
    assert_eq!(recs.len(), 51);
    let mut prev_t: Option<u64> = None;
    for (i, (sec, usec, f)) in recs.iter().enumerate() {
        assert_eq!(f.len(), 14 + 20 + 8 + 12 + 160);
        assert_eq!(be16(f, 12), 0x0800);
        let ip = &f[14..34];
        assert_eq!(ip[0], 0x45);
        assert_eq!(be16(ip, 2) as usize, f.len() - 14, "IP total length");
        assert_eq!(ip[9], 17);
        assert!(csum_ok(ip), "IPv4 header checksum");
        let udp = &f[34..];
        assert_eq!(be16(udp, 0), 6000);
        assert_eq!(be16(udp, 2), 6001);
        assert_eq!(be16(udp, 4) as usize, udp.len(), "UDP length");
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&ip[12..20]);
        pseudo.extend_from_slice(&[0, 17]);
        pseudo.extend_from_slice(&(udp.len() as u16).to_be_bytes());
        pseudo.extend_from_slice(udp);
        assert!(csum_ok(&pseudo), "UDP checksum");
        let rtp = &udp[8..];
        assert_eq!(rtp[0], 0x80);
        assert_eq!(rtp[1] & 0x80 != 0, i == 0, "marker only on first");
        assert_eq!(rtp[1] & 0x7F, PT_PCMU);
        assert_eq!(be16(rtp, 2), 1000 + i as u16);
        assert_eq!(be32(rtp, 4), 160 * i as u32);
        let t = *sec as u64 * 1_000_000 + *usec as u64;
        if let Some(p) = prev_t {
            assert_eq!(t - p, 20_000, "20 ms pacing");
        }
        prev_t = Some(t);
    }
    // Payload round-trips; the padded tail is µ-law silence.
    let mut got = Vec::new();
    for (_, _, f) in &recs {
        got.extend_from_slice(&f[14 + 20 + 8 + 12..]);
    }
    assert_eq!(&got[..payload.len()], &payload[..]);
    assert!(got[payload.len()..].iter().all(|&b| b == 0xFF));
}

#[test]
fn dtmf_events() {
    let p = dtmf_packets("1#", PT_TELEPHONE_EVENT, 100, 100);
    assert_eq!(p.len(), 14); // (5 steps + 2 end repeats) per digit
    assert!(p[0].marker && p[7].marker);
    assert_eq!(p[0].payload, vec![1, 10, 0, 160]);
    assert_eq!(p[6].payload, vec![1, 0x80 | 10, 3, 32]); // end, duration 800
    assert_eq!(p[7].payload[0], 11);
    assert!(p[..7].iter().all(|x| x.timestamp == 0));
    let img = rtp_pcap_bytes(&p);
    assert_eq!(read_pcap(&img).unwrap().1.len(), 14);
}

#[test]
fn same_layout_as_sipp_samples() {
    let path = std::path::Path::new("/usr/share/sip-tester/g711a.pcap");
    let Ok(data) = std::fs::read(path) else {
        eprintln!("SIPp sample pcap not installed; skipping");
        return;
    };
    let (link, recs) = read_pcap(&data).unwrap();
    assert_eq!(link, 1, "SIPp samples are DLT_EN10MB too");
    let f = &recs[0].2;
    assert_eq!(be16(f, 12), 0x0800);
    assert_eq!(f[14 + 9], 17);
}

#[test]
fn speech_if_tools_present() {
    match speech("one two three") {
        None => eprintln!("espeak-ng/sox missing; skipping"),
        Some(pcm) => {
            assert!(pcm.len() > 8000 / 2, "at least half a second");
            assert!(pcm.iter().any(|&s| s.unsigned_abs() > 1000), "not silent");
        }
    }
}
