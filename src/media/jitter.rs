//! A fixed-delay jitter buffer, sans-IO. Packets are pushed with their extended sequence
//! number as they arrive; the driver pops one frame per 20 ms tick. Playout starts once the
//! first packet has waited `target_delay`; from then on each tick expects the next sequence
//! number: a missing one is reported as [`Playout::Lost`] (the concealment hook: the caller
//! repeats, plays silence, or asks Opus for PLC), one that arrives after its tick is counted
//! late and dropped, duplicates are dropped, and the buffer is bounded (oldest dropped).
//! Packets with an empty or oversized payload are refused (their tick conceals them, one
//! frame). A jump forward past `max_gap` plays on from the new number once the buffered
//! packets are out, and one far back restarts playout at it on the next tick — neither
//! re-buffers, so a renumbered stream costs at most one frame. (`rtp::SeqExtender` already
//! re-bases restarts and SSRC changes, so such jumps rarely get here.)
//!
//! Left out: adaptive delay (the target is configuration), timestamp-based playout for
//! variable ptime (we assume one packet per tick, the telephony norm).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::rtp::{RtpTimestamp, SeqNo};

/// Jitter buffer settings.
#[derive(Debug, Clone, Copy)]
pub struct JitterConfig {
    /// How long the first packet waits before playout starts (absorbs network jitter).
    pub target_delay: Duration,
    /// Most packets held; more drops the oldest.
    pub max_packets: usize,
    /// A gap of more than this many packets resynchronises instead of reporting losses.
    pub max_gap: u64,
    /// Largest payload accepted, in bytes (an Opus frame is at most 1,275; G.711 20 ms is 160).
    pub max_payload: usize,
}

impl Default for JitterConfig {
    fn default() -> Self {
        JitterConfig {
            target_delay: Duration::from_millis(40),
            max_packets: 50,
            max_gap: 25,
            max_payload: 1500,
        }
    }
}

/// What one tick yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    /// The next frame's payload.
    Frame(Vec<u8>),
    /// The next frame is missing: conceal it.
    Lost,
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Packets accepted.
    pub received: u64,
    /// Packets that arrived after their playout tick.
    pub late: u64,
    /// Duplicates dropped.
    pub duplicate: u64,
    /// Ticks with the expected packet missing.
    pub lost: u64,
    /// Packets dropped because the buffer was full.
    pub overflow: u64,
    /// Packets refused for an empty or oversized payload (their ticks count as lost).
    pub invalid: u64,
}

/// The jitter buffer; see the module doc for its contract.
#[derive(Debug)]
pub struct JitterBuffer {
    cfg: JitterConfig,
    packets: BTreeMap<SeqNo, Vec<u8>>,
    /// The sequence number the next tick plays; `None` until playout starts.
    next: Option<SeqNo>,
    /// When playout may start (first packet + target delay).
    start_at: Option<Instant>,
    stats: JitterStats,
}

impl JitterBuffer {
    /// An empty buffer.
    pub fn new(cfg: JitterConfig) -> Self {
        JitterBuffer {
            cfg,
            packets: BTreeMap::new(),
            next: None,
            start_at: None,
            stats: JitterStats::default(),
        }
    }

    /// Adds a received packet.
    pub fn push(&mut self, now: Instant, seq: SeqNo, _ts: RtpTimestamp, payload: Vec<u8>) {
        if payload.is_empty() || payload.len() > self.cfg.max_payload {
            self.stats.invalid += 1;
            return;
        }
        if let Some(next) = self.next {
            if seq < next {
                if next.0 - seq.0 > self.cfg.max_gap {
                    // A stream restart far back: what is buffered belongs to the old stream's
                    // numbering. Play the new one from its next tick, without re-buffering.
                    self.packets.clear();
                    self.next = Some(seq);
                } else {
                    self.stats.late += 1;
                    return;
                }
            }
            // A jump far forward needs nothing: once the buffered packets have played,
            // `pop` moves on to it (a gap over `max_gap` is not reported as losses).
        }
        if self.packets.contains_key(&seq) {
            self.stats.duplicate += 1;
            return;
        }
        self.stats.received += 1;
        self.packets.insert(seq, payload);
        if self.packets.len() > self.cfg.max_packets {
            self.packets.pop_first();
            self.stats.overflow += 1;
            if let (Some(next), Some((first, _))) = (self.next, self.packets.first_key_value()) {
                if *first > next {
                    self.next = Some(*first);
                }
            }
        }
        if self.start_at.is_none() {
            self.start_at = Some(now + self.cfg.target_delay);
        }
    }

    /// The frame for this 20 ms tick, or `None` while not started / idle.
    pub fn pop(&mut self, now: Instant) -> Option<Playout> {
        let next = match self.next {
            Some(n) => n,
            None => {
                if self.start_at.is_none_or(|t| now < t) {
                    return None;
                }
                let first = *self.packets.first_key_value()?.0;
                self.next = Some(first);
                first
            }
        };
        if let Some(payload) = self.packets.remove(&next) {
            self.next = Some(SeqNo(next.0 + 1));
            return Some(Playout::Frame(payload));
        }
        match self.packets.first_key_value() {
            // Nothing buffered: the talker paused (DTX/silence) or the stream ended. Stop
            // counting losses and start again at whatever comes next.
            None => {
                self.next = None;
                self.start_at = None;
                None
            }
            Some((first, _)) if first.0 - next.0 > self.cfg.max_gap => {
                self.next = Some(*first);
                self.pop(now)
            }
            Some(_) => {
                self.stats.lost += 1;
                self.next = Some(SeqNo(next.0 + 1));
                Some(Playout::Lost)
            }
        }
    }

    /// Drops the oldest packets beyond `keep`, counting them late: after the driver fell behind,
    /// playing the backlog would only add delay for the rest of the call.
    pub fn trim(&mut self, keep: usize) {
        while self.packets.len() > keep {
            if let Some((seq, _)) = self.packets.pop_first() {
                self.stats.late += 1;
                self.next = Some(SeqNo(seq.0 + 1));
            }
        }
    }

    /// Forgets everything buffered (new SSRC, hold).
    pub fn reset(&mut self) {
        self.packets.clear();
        self.next = None;
        self.start_at = None;
    }

    /// Counters so far.
    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// Packets waiting.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A seeded lossy, jittering link: each packet sent every 20 ms arrives after a random
    /// delay (0–`jitter` ms) or not at all.
    fn link(seed: u64, n: u64, loss: f64, jitter: u64) -> Vec<(u64, u64)> {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut arrivals = Vec::new();
        for i in 0..n {
            if !rng.random_bool(loss) {
                arrivals.push((i * 20 + rng.random_range(0..=jitter), i));
            }
        }
        arrivals.sort();
        arrivals
    }

    fn run(
        cfg: JitterConfig,
        arrivals: &[(u64, u64)],
        ticks: u64,
    ) -> (Vec<Option<u64>>, JitterStats) {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(cfg);
        let mut out = Vec::new();
        let mut i = 0;
        for tick in 0..ticks {
            let now = t0 + ms(tick * 20);
            while i < arrivals.len() && arrivals[i].0 <= tick * 20 {
                let seq = arrivals[i].1;
                jb.push(
                    now,
                    SeqNo(1000 + seq),
                    RtpTimestamp(0),
                    seq.to_be_bytes().to_vec(),
                );
                i += 1;
            }
            match jb.pop(now) {
                Some(Playout::Frame(p)) => {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&p);
                    out.push(Some(u64::from_be_bytes(b)));
                }
                Some(Playout::Lost) => out.push(None),
                None => {}
            }
        }
        (out, jb.stats())
    }

    #[test]
    fn reorders_within_the_delay() {
        let arrivals = link(7, 200, 0.0, 35);
        let (out, stats) = run(JitterConfig::default(), &arrivals, 230);
        let played: Vec<u64> = out.iter().flatten().copied().collect();
        assert_eq!(
            played,
            (0..200).collect::<Vec<_>>(),
            "in order, none missing"
        );
        assert_eq!((stats.late, stats.lost, stats.duplicate), (0, 0, 0));
    }

    #[test]
    fn losses_are_reported_once_and_order_kept() {
        let arrivals = link(11, 500, 0.05, 30);
        let (out, stats) = run(JitterConfig::default(), &arrivals, 540);
        let played: Vec<u64> = out.iter().flatten().copied().collect();
        assert!(
            played.windows(2).all(|w| w[0] < w[1]),
            "strictly increasing, no duplicates"
        );
        assert!(played.len() as u64 + stats.lost <= 500);
        assert_eq!(
            played.len() as u64,
            stats.received - stats.late,
            "everything accepted plays"
        );
        assert!(stats.lost > 10, "about 5% lost: {stats:?}");
    }

    #[test]
    fn late_and_duplicate_packets_are_dropped() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::default());
        jb.push(t0, SeqNo(10), RtpTimestamp(0), vec![10]);
        jb.push(t0, SeqNo(10), RtpTimestamp(0), vec![10]);
        jb.push(t0, SeqNo(12), RtpTimestamp(0), vec![12]);
        assert_eq!(jb.pop(t0 + ms(20)), None, "still buffering");
        assert_eq!(jb.pop(t0 + ms(40)), Some(Playout::Frame(vec![10])));
        assert_eq!(jb.pop(t0 + ms(60)), Some(Playout::Lost));
        jb.push(t0 + ms(70), SeqNo(11), RtpTimestamp(0), vec![11]);
        assert_eq!(jb.pop(t0 + ms(80)), Some(Playout::Frame(vec![12])));
        let s = jb.stats();
        assert_eq!((s.duplicate, s.late, s.lost), (1, 1, 1));
    }

    #[test]
    fn trim_drops_the_backlog_oldest_first() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::default());
        for s in 0..10 {
            jb.push(t0, SeqNo(s), RtpTimestamp(0), vec![s as u8]);
        }
        jb.trim(2);
        assert_eq!(jb.len(), 2);
        assert_eq!(jb.stats().late, 8);
        assert_eq!(jb.pop(t0 + ms(40)), Some(Playout::Frame(vec![8])));
    }

    #[test]
    fn overflow_drops_oldest() {
        let t0 = Instant::now();
        let cfg = JitterConfig {
            max_packets: 3,
            ..JitterConfig::default()
        };
        let mut jb = JitterBuffer::new(cfg);
        for s in 0..5 {
            jb.push(t0, SeqNo(s), RtpTimestamp(0), vec![s as u8]);
        }
        assert_eq!(jb.stats().overflow, 2);
        assert_eq!(jb.pop(t0 + ms(40)), Some(Playout::Frame(vec![2])));
    }

    /// Plays `seqs` (one packet per 20 ms tick, pushed just before the tick) and returns what
    /// each tick yielded after playout started: the payload's first byte, or `None` for a
    /// concealed frame.
    fn play(seqs: &[(u64, Vec<u8>)]) -> (Vec<Option<u8>>, JitterStats) {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let mut out = Vec::new();
        for (i, (seq, payload)) in seqs.iter().enumerate() {
            let now = t0 + ms(20 * i as u64);
            jb.push(now, SeqNo(*seq), RtpTimestamp(0), payload.clone());
            match jb.pop(now) {
                Some(Playout::Frame(p)) => out.push(p.first().copied()),
                Some(Playout::Lost) => out.push(None),
                None => {}
            }
        }
        (out, jb.stats())
    }

    #[test]
    fn renumbered_streams_play_on_without_a_gap() {
        for jump in [30u64, 150, 5_000] {
            let mut seqs: Vec<(u64, Vec<u8>)> =
                (0..20).map(|i| (1000 + i, vec![i as u8])).collect();
            seqs.extend((20..40).map(|i| (1000 + jump + i, vec![i as u8])));
            let (out, stats) = play(&seqs);
            // Playout starts after the 40 ms target delay, then every frame plays in order.
            let want: Vec<Option<u8>> = (0..38).map(Some).collect();
            assert_eq!(out, want, "forward jump of {jump}");
            assert_eq!((stats.lost, stats.late), (0, 0), "jump {jump}: {stats:?}");
        }
        // Far back: the two frames still buffered from the old numbering are given up (no
        // re-buffering, no run of late packets).
        let mut seqs: Vec<(u64, Vec<u8>)> = (0..20).map(|i| (1000 + i, vec![i as u8])).collect();
        seqs.extend((20..40).map(|i| (500 + i, vec![i as u8])));
        let (out, stats) = play(&seqs);
        let want: Vec<Option<u8>> = (0..18).chain(20..40).map(Some).collect();
        assert_eq!(out, want, "no silent tick; the new stream plays at once");
        assert_eq!((stats.lost, stats.late), (0, 0));
    }

    #[test]
    fn empty_and_oversized_payloads_cost_one_concealed_frame() {
        let seqs: Vec<(u64, Vec<u8>)> = (0..20u64)
            .map(|i| {
                let payload = match i {
                    7 => Vec::new(),
                    12 => vec![0xab; 40_000],
                    _ => vec![i as u8; 160],
                };
                (100 + i, payload)
            })
            .collect();
        let (out, stats) = play(&seqs);
        let missing: Vec<usize> = out
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.is_none().then_some(i))
            .collect();
        assert_eq!(
            missing,
            [7, 12],
            "each refused packet is one concealed tick"
        );
        assert_eq!((stats.invalid, stats.lost), (2, 2));
    }

    #[test]
    fn ssrc_change_through_the_extender_is_seamless() {
        use crate::media::rtp::{SeqExtender, Ssrc};
        // Old stream near 60000, the new one (another SSRC) starts a little below it.
        let mut x = SeqExtender::new();
        let mut seqs = Vec::new();
        for i in 0..20u16 {
            seqs.push((x.extend_ssrc(Ssrc(1), 60_000 + i).0, vec![i as u8]));
        }
        for i in 20..40u16 {
            seqs.push((x.extend_ssrc(Ssrc(2), 59_990 + i).0, vec![i as u8]));
        }
        let (out, stats) = play(&seqs);
        assert_eq!(out, (0..38).map(Some).collect::<Vec<_>>());
        assert_eq!((stats.lost, stats.late), (0, 0));
    }

    #[test]
    fn silence_gap_restarts_without_counting_losses() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::default());
        jb.push(t0, SeqNo(1), RtpTimestamp(0), vec![1]);
        assert_eq!(jb.pop(t0 + ms(40)), Some(Playout::Frame(vec![1])));
        assert_eq!(jb.pop(t0 + ms(60)), None, "idle");
        jb.push(t0 + ms(1000), SeqNo(2), RtpTimestamp(0), vec![2]);
        assert_eq!(jb.pop(t0 + ms(1020)), None, "re-buffering");
        assert_eq!(jb.pop(t0 + ms(1040)), Some(Playout::Frame(vec![2])));
        assert_eq!(jb.stats().lost, 0);
    }
}
