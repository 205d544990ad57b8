//! Per-call latency samples for the figures the benchmarks print: (a) caller RTP packet
//! received → its audio handed to the model connection, (b) first model audio delta of a
//! response received → its first RTP packet sent, (c) `speech_started` received → playout
//! flushed (barge-in). Bounded: at most [`MAX_SAMPLES`] per kind, then every later sample
//! replaces a slot in a fixed rotation.

use std::time::Duration;

/// Most samples kept per kind.
pub const MAX_SAMPLES: usize = 4096;

/// Samples of one kind, in microseconds.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    us: Vec<u32>,
    seen: u64,
}

impl Samples {
    /// Records one sample.
    pub fn record(&mut self, d: Duration) {
        let us = u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
        if self.us.len() < MAX_SAMPLES {
            self.us.push(us);
        } else {
            let slot = (self.seen % MAX_SAMPLES as u64) as usize;
            self.us[slot] = us;
        }
        self.seen += 1;
    }

    /// The `p`-th percentile (0–100) in microseconds, if any sample exists.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        if self.us.is_empty() {
            return None;
        }
        let mut v = self.us.clone();
        v.sort_unstable();
        let rank = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
        v.get(rank.min(v.len() - 1)).map(|x| u64::from(*x))
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.seen
    }
}

/// The three latency kinds of one call.
#[derive(Debug, Clone, Default)]
pub struct CallLatency {
    /// (a) RTP in → append sent.
    pub rtp_to_model: Samples,
    /// (b) first delta → first RTP out.
    pub delta_to_rtp: Samples,
    /// (c) speech_started → playout flushed.
    pub barge_in: Samples,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut s = Samples::default();
        assert_eq!(s.percentile(50.0), None);
        for us in 1..=100u64 {
            s.record(Duration::from_micros(us));
        }
        assert_eq!(s.percentile(50.0), Some(51));
        assert_eq!(s.percentile(99.0), Some(99));
        assert_eq!(s.percentile(100.0), Some(100));
        for _ in 0..10_000 {
            s.record(Duration::from_micros(7));
        }
        assert_eq!(s.count(), 10_100);
        assert_eq!(
            s.percentile(50.0),
            Some(7),
            "bounded storage keeps recent samples"
        );
    }
}
