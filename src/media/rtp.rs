//! RTP (RFC 3550): typed ids, a zero-copy packet view that never panics on short or hostile
//! input, 16-bit sequence extension across rollover (§A.1), an outgoing packet builder, and the
//! symmetric-RTP latch (send to where the caller's packets really come from; RFC 4961 spirit).
//! Left out: RTCP (reports are neither sent nor read yet), header extensions' contents, SRTP.

use std::net::SocketAddr;

use rand::Rng;

/// Synchronisation source identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ssrc(pub u32);

/// RTP payload type: 7 bits, checked on construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PayloadType(u8);

impl PayloadType {
    /// A payload type; values ≥ 128 are refused.
    pub fn new(pt: u8) -> Result<PayloadType, RtpError> {
        if pt < 128 {
            Ok(PayloadType(pt))
        } else {
            Err(RtpError::BadPayloadType(pt))
        }
    }
    /// The number.
    pub fn get(self) -> u8 {
        self.0
    }
}

/// A sequence number extended past 16-bit rollover (cycles · 65536 + seq).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeqNo(pub u64);

/// An RTP timestamp in the stream's clock rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RtpTimestamp(pub u32);

/// Why a datagram is not a usable RTP packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// Shorter than its headers say.
    #[error("packet too short")]
    TooShort,
    /// Not RTP version 2.
    #[error("not RTP version 2")]
    BadVersion,
    /// Padding longer than the payload.
    #[error("bad padding")]
    BadPadding,
    /// A payload type ≥ 128.
    #[error("payload type {0} out of range")]
    BadPayloadType(u8),
}

/// A parsed view of one RTP packet.
#[derive(Debug, Clone, Copy)]
pub struct RtpPacket<'a> {
    marker: bool,
    pt: PayloadType,
    seq: u16,
    ts: RtpTimestamp,
    ssrc: Ssrc,
    payload: &'a [u8],
}

impl<'a> RtpPacket<'a> {
    /// The marker bit (start of a talk-spurt for audio).
    pub fn marker(&self) -> bool {
        self.marker
    }
    /// Payload type.
    pub fn payload_type(&self) -> PayloadType {
        self.pt
    }
    /// 16-bit sequence number as on the wire.
    pub fn sequence(&self) -> u16 {
        self.seq
    }
    /// Timestamp.
    pub fn timestamp(&self) -> RtpTimestamp {
        self.ts
    }
    /// Sender's SSRC.
    pub fn ssrc(&self) -> Ssrc {
        self.ssrc
    }
    /// Payload without padding.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }
}

/// Parses one datagram as RTP (RFC 3550 §5.1): CSRCs, a header extension and padding skipped.
pub fn parse(data: &[u8]) -> Result<RtpPacket<'_>, RtpError> {
    if data.len() < 12 {
        return Err(RtpError::TooShort);
    }
    if data[0] >> 6 != 2 {
        return Err(RtpError::BadVersion);
    }
    let padding = data[0] & 0x20 != 0;
    let extension = data[0] & 0x10 != 0;
    let cc = usize::from(data[0] & 0x0f);
    let mut off = 12 + 4 * cc;
    if data.len() < off {
        return Err(RtpError::TooShort);
    }
    if extension {
        let ext = data.get(off..off + 4).ok_or(RtpError::TooShort)?;
        let words = usize::from(u16::from_be_bytes([ext[2], ext[3]]));
        off += 4 + 4 * words;
        if data.len() < off {
            return Err(RtpError::TooShort);
        }
    }
    let mut end = data.len();
    if padding {
        let pad = usize::from(data[end - 1]);
        if pad == 0 || end - off < pad {
            return Err(RtpError::BadPadding);
        }
        end -= pad;
    }
    Ok(RtpPacket {
        marker: data[1] & 0x80 != 0,
        pt: PayloadType(data[1] & 0x7f),
        seq: u16::from_be_bytes([data[2], data[3]]),
        ts: RtpTimestamp(u32::from_be_bytes([data[4], data[5], data[6], data[7]])),
        ssrc: Ssrc(u32::from_be_bytes([data[8], data[9], data[10], data[11]])),
        payload: &data[off..end],
    })
}

/// RFC 3550 §A.1 `MAX_DROPOUT`: a forward jump larger than this is a renumbered stream.
pub const MAX_DROPOUT: i64 = 3000;
/// RFC 3550 §A.1 `MAX_MISORDER`: a backward jump larger than this is a renumbered stream.
pub const MAX_MISORDER: i64 = 100;

/// Extends 16-bit sequence numbers across rollover (after RFC 3550 §A.1) into one continuous
/// numbering for the jitter buffer and the model feed.
///
/// A jump beyond [`MAX_DROPOUT`] forward or [`MAX_MISORDER`] back, or a new SSRC (with
/// [`SeqExtender::extend_ssrc`]), is a sender restart, not a loss: the new stream is re-based
/// to continue right after the highest number so far, so downstream sees neither a burst of
/// "lost" frames nor a run of "late" ones — at most the one frame where the streams meet.
#[derive(Debug, Clone, Default)]
pub struct SeqExtender {
    /// Highest extended number handed out, and the wire number it came from.
    last: Option<(u64, u16)>,
    /// The SSRC of the current stream, when the caller tells us.
    ssrc: Option<Ssrc>,
    /// Times a stream was re-based (restart, renumbering or SSRC change).
    rebased: u64,
}

impl SeqExtender {
    /// A fresh extender.
    pub fn new() -> Self {
        SeqExtender::default()
    }

    /// The extended number of `seq`: its distance from the highest so far, on the 16-bit
    /// circle; a restart (see the type doc) continues at highest + 1.
    pub fn extend(&mut self, seq: u16) -> SeqNo {
        let Some((last, last_raw)) = self.last else {
            // Start one cycle in, so a slightly earlier packet cannot go negative.
            let v = 65_536 + u64::from(seq);
            self.last = Some((v, seq));
            return SeqNo(v);
        };
        let d = i64::from(seq.wrapping_sub(last_raw) as i16);
        if (-MAX_MISORDER..=MAX_DROPOUT).contains(&d) {
            let v = last.saturating_add_signed(d);
            if d > 0 {
                self.last = Some((v, seq));
            }
            return SeqNo(v);
        }
        self.rebase(seq)
    }

    /// Like [`SeqExtender::extend`], and a change of SSRC re-bases the new stream.
    pub fn extend_ssrc(&mut self, ssrc: Ssrc, seq: u16) -> SeqNo {
        let changed = self.ssrc.is_some_and(|s| s != ssrc);
        self.ssrc = Some(ssrc);
        match self.last {
            Some(_) if changed => self.rebase(seq),
            _ => self.extend(seq),
        }
    }

    /// Streams re-based so far.
    pub fn rebased(&self) -> u64 {
        self.rebased
    }

    fn rebase(&mut self, seq: u16) -> SeqNo {
        let v = self
            .last
            .map_or(65_536 + u64::from(seq), |(last, _)| last + 1);
        self.last = Some((v, seq));
        self.rebased += 1;
        SeqNo(v)
    }

    /// Forgets the stream (new SSRC).
    pub fn reset(&mut self) {
        self.last = None;
        self.ssrc = None;
    }
}

/// Builds our outgoing RTP packets: one SSRC, incrementing sequence and timestamp.
#[derive(Debug, Clone)]
pub struct RtpSender {
    ssrc: Ssrc,
    pt: PayloadType,
    seq: u16,
    ts: u32,
    clock_rate: u32,
}

impl RtpSender {
    /// A sender with random SSRC, initial sequence and timestamp (RFC 3550 §5.1).
    pub fn new(pt: PayloadType, clock_rate: u32, rng: &mut impl Rng) -> Self {
        RtpSender {
            ssrc: Ssrc(rng.random()),
            pt,
            seq: rng.random(),
            ts: rng.random(),
            clock_rate,
        }
    }

    /// Our SSRC.
    pub fn ssrc(&self) -> Ssrc {
        self.ssrc
    }

    /// The RTP clock rate.
    pub fn clock_rate(&self) -> u32 {
        self.clock_rate
    }

    /// Appends one packet carrying `payload` (`samples` long) to `out`, then advances.
    pub fn build(&mut self, payload: &[u8], samples: u32, marker: bool, out: &mut Vec<u8>) {
        out.push(0x80);
        out.push(self.pt.0 | if marker { 0x80 } else { 0 });
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.ts.to_be_bytes());
        out.extend_from_slice(&self.ssrc.0.to_be_bytes());
        out.extend_from_slice(payload);
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(samples);
    }

    /// Skips `samples` of timestamp (silence we did not send), keeping the clock continuous.
    pub fn skip(&mut self, samples: u32) {
        self.ts = self.ts.wrapping_add(samples);
    }
}

/// Symmetric RTP: the first packet's source becomes the peer (callers behind NAT send from
/// somewhere other than their SDP address); later packets from other sources are ignored.
#[derive(Debug, Clone)]
pub struct Latch {
    expected: Option<SocketAddr>,
    latched: Option<SocketAddr>,
    ignored: u64,
}

impl Latch {
    /// A latch that sends to `expected` (the SDP address) until the first packet arrives.
    pub fn new(expected: Option<SocketAddr>) -> Self {
        Latch {
            expected,
            latched: None,
            ignored: 0,
        }
    }

    /// True if a packet from `src` is from our peer (latching on the first one).
    pub fn accept(&mut self, src: SocketAddr) -> bool {
        match self.latched {
            None => {
                self.latched = Some(src);
                true
            }
            Some(p) if p == src => true,
            Some(_) => {
                self.ignored += 1;
                false
            }
        }
    }

    /// A re-INVITE changed the SDP address: follow it and latch anew.
    pub fn set_expected(&mut self, addr: SocketAddr) {
        if self.expected != Some(addr) {
            self.expected = Some(addr);
            self.latched = None;
        }
    }

    /// Where to send: the latched source, else the SDP address.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.latched.or(self.expected)
    }

    /// Packets ignored because they came from elsewhere.
    pub fn ignored(&self) -> u64 {
        self.ignored
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn build_then_parse() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        let mut tx = RtpSender::new(PayloadType::new(0).expect("pt"), 8000, &mut rng);
        let mut a = Vec::new();
        tx.build(&[1, 2, 3], 160, true, &mut a);
        let mut b = Vec::new();
        tx.build(&[4], 160, false, &mut b);
        let (pa, pb) = (parse(&a).expect("a"), parse(&b).expect("b"));
        assert!(pa.marker() && !pb.marker());
        assert_eq!(pa.payload(), [1, 2, 3]);
        assert_eq!(pb.sequence(), pa.sequence().wrapping_add(1));
        assert_eq!(pb.timestamp().0, pa.timestamp().0.wrapping_add(160));
        assert_eq!(pa.ssrc(), tx.ssrc());
    }

    #[test]
    fn hostile_packets_are_errors() {
        assert_eq!(parse(&[]).err(), Some(RtpError::TooShort));
        assert_eq!(parse(&[0x40; 12]).err(), Some(RtpError::BadVersion));
        let mut csrc = vec![0x8f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(parse(&csrc).err(), Some(RtpError::TooShort));
        csrc[0] = 0x90; // extension bit, no extension header
        assert_eq!(parse(&csrc).err(), Some(RtpError::TooShort));
        let mut pad = vec![0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];
        assert_eq!(parse(&pad).err(), Some(RtpError::BadPadding));
        pad[12] = 1;
        assert_eq!(parse(&pad).map(|p| p.payload().len()).ok(), Some(0));
        for len in 0..64 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 0x80) as u8).collect();
            let _ = parse(&junk);
        }
    }

    #[test]
    fn sequence_rollover_and_reorder() {
        let mut x = SeqExtender::new();
        let a = x.extend(65_534).0;
        assert_eq!(x.extend(65_535).0, a + 1);
        assert_eq!(x.extend(0).0, a + 2, "rollover");
        assert_eq!(
            x.extend(65_535).0,
            a + 1,
            "late packet from before the rollover"
        );
        assert_eq!(x.extend(2).0, a + 4);
        assert_eq!(x.extend(1).0, a + 3, "reordered");
    }

    #[test]
    fn sequence_jumps_rebase_instead_of_losing_or_dropping() {
        let mut x = SeqExtender::new();
        let a = x.extend(1000).0;
        assert_eq!(x.extend(1001).0, a + 1);
        assert_eq!(
            x.extend(1101).0,
            a + 101,
            "a real gap of 99 lost packets stays a gap"
        );
        // A renumbered stream (sender restart) continues right after the highest.
        assert_eq!(x.extend(40_000).0, a + 102);
        assert_eq!(x.extend(40_001).0, a + 103);
        assert_eq!(
            x.extend(39_999).0,
            a + 101,
            "reordered inside the new stream"
        );
        // A big backward jump is a restart too (RFC 3550 MAX_MISORDER).
        assert_eq!(x.extend(39_000).0, a + 104);
        assert_eq!(x.extend(39_001).0, a + 105);
        assert_eq!(x.rebased(), 2);
        // Rollover still is not a jump.
        let mut y = SeqExtender::new();
        let b = y.extend(65_500).0;
        assert_eq!(y.extend(20).0, b + 56);
        assert_eq!(y.rebased(), 0);
    }

    #[test]
    fn ssrc_change_rebases_even_when_numbers_are_close() {
        let mut x = SeqExtender::new();
        let a = x.extend_ssrc(Ssrc(1), 500).0;
        assert_eq!(x.extend_ssrc(Ssrc(1), 501).0, a + 1);
        // The new source starts just below the old one: by number alone every packet would
        // be "late" for a while; by SSRC it simply continues.
        assert_eq!(x.extend_ssrc(Ssrc(2), 490).0, a + 2);
        assert_eq!(x.extend_ssrc(Ssrc(2), 491).0, a + 3);
        assert_eq!(x.rebased(), 1);
    }

    #[test]
    fn odd_but_valid_packets_parse() {
        // Header only: a zero-length payload (keep-alives do this) is a packet, not an error.
        let hdr = [0x80, 0x00, 0, 1, 0, 0, 0, 160, 0, 0, 0, 9];
        assert_eq!(parse(&hdr).map(|p| p.payload().len()).ok(), Some(0));
        // Payload type 127 is in range (7 bits); the marker bit is not part of it.
        let pt = [0x80, 0xff, 0, 1, 0, 0, 0, 160, 0, 0, 0, 9, 1];
        let p = parse(&pt).expect("parses");
        assert_eq!((p.payload_type().get(), p.marker()), (127, true));
        assert!(PayloadType::new(128).is_err());
        // A 64 KiB datagram parses as one big payload; the jitter buffer bounds it.
        let mut huge = hdr.to_vec();
        huge.resize(65_507, 0xff);
        assert_eq!(parse(&huge).map(|p| p.payload().len()).ok(), Some(65_495));
        // Every CSRC count and extension length against short buffers.
        for cc in 0..16u8 {
            for len in 12..80 {
                let mut d = vec![0u8; len];
                d[0] = 0x90 | cc;
                d[len - 1] = 0xff;
                let _ = parse(&d);
                d[0] |= 0x20;
                let _ = parse(&d);
            }
        }
    }

    #[test]
    fn latch_follows_the_first_source() {
        let sdp: SocketAddr = "192.0.2.1:4000".parse().expect("addr");
        let nat: SocketAddr = "198.51.100.9:61000".parse().expect("addr");
        let other: SocketAddr = "203.0.113.5:5000".parse().expect("addr");
        let mut l = Latch::new(Some(sdp));
        assert_eq!(l.peer(), Some(sdp));
        assert!(l.accept(nat));
        assert_eq!(l.peer(), Some(nat));
        assert!(!l.accept(other));
        assert_eq!(l.ignored(), 1);
        l.set_expected(other);
        assert!(l.accept(other));
    }
}
