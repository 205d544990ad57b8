//! A stream of datagrams (2-byte length prefix each, the first byte of each also picking one of
//! two sources) → symmetric-RTP latch, RTP parse, sequence extension, RFC 4733 DTMF and the
//! jitter buffer, 10 ms of simulated time per datagram with a playout tick every 20 ms.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use voxgate::media::dtmf::DtmfReceiver;
use voxgate::media::jitter::{JitterBuffer, JitterConfig};
use voxgate::media::rtp::{self, Latch, SeqExtender};

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let a: SocketAddr = "192.0.2.1:4000".parse().expect("constant");
    let b: SocketAddr = "192.0.2.2:4000".parse().expect("constant");
    let mut latch = Latch::new(Some(a));
    let mut seq = SeqExtender::new();
    let mut dtmf = DtmfReceiver::new();
    let mut jitter = JitterBuffer::new(JitterConfig::default());
    let mut rest = data;
    let mut i = 0u64;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])) % 2048;
        let from = if rest[0] & 0x80 != 0 { b } else { a };
        rest = &rest[2..];
        let pkt = &rest[..len.min(rest.len())];
        rest = &rest[pkt.len()..];
        let now = t0 + Duration::from_millis(10 * i);
        i += 1;
        if let Ok(p) = rtp::parse(pkt) {
            if !latch.accept(from) {
                continue;
            }
            if p.payload_type().get() == 101 {
                let _ = dtmf.push(now, p.timestamp(), p.marker(), p.payload());
            } else {
                let s = seq.extend(p.sequence());
                jitter.push(now, s, p.timestamp(), p.payload().to_vec());
            }
        }
        if i % 2 == 0 {
            let _ = jitter.pop(now);
        }
        assert!(jitter.len() <= JitterConfig::default().max_packets);
    }
    for k in 0..200 {
        let _ = jitter.pop(t0 + Duration::from_millis(10 * i + 20 * k));
    }
});
