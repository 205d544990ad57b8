//! The 20 ms paced sender, sans-IO, with what barge-in needs. Frames (already encoded, 20 ms
//! each) wait in a bounded queue; every tick at t0 + n·20 ms sends at most one. An empty queue
//! sends nothing — never stale audio. If the driver wakes late by more than a few frames the
//! schedule restarts from `now` instead of bursting. [`Playout::flush`] drops the queue at once
//! (barge-in), and `played_*` say how much of the current response the caller actually heard,
//! which is the model's truncation offset.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Playout settings.
#[derive(Debug, Clone, Copy)]
pub struct PlayoutConfig {
    /// Frame duration (20 ms).
    pub frame: Duration,
    /// Frames held at most; more drops the oldest (counted). 500 frames = 10 s.
    pub max_queue_frames: usize,
    /// A wake-up later than this many frames (10 = 200 ms) resynchronises instead of sending
    /// the missed frames back to back; a short burst is kinder to the caller than a gap.
    pub max_lateness_frames: u32,
}

impl Default for PlayoutConfig {
    fn default() -> Self {
        PlayoutConfig {
            frame: Duration::from_millis(20),
            max_queue_frames: 500,
            max_lateness_frames: 10,
        }
    }
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlayoutStats {
    /// Frames sent.
    pub sent: u64,
    /// Frames dropped because the queue was full.
    pub dropped: u64,
    /// Frames dropped by flushes.
    pub flushed: u64,
    /// Ticks with an empty queue while a response was playing.
    pub underruns: u64,
    /// Schedule restarts after late wake-ups.
    pub resyncs: u64,
}

/// The paced sender; see the module doc.
#[derive(Debug)]
pub struct Playout {
    cfg: PlayoutConfig,
    queue: VecDeque<Vec<u8>>,
    next_tick: Instant,
    /// True after a gap: the next frame sent starts a talk-spurt (RTP marker bit).
    talkspurt: bool,
    /// The last tick found the queue empty (or none has run): a new frame may start at once.
    idle: bool,
    /// A response is being played (set by `mark_response_start`, cleared by `flush`/`end`).
    in_response: bool,
    /// Bytes and frames sent since `mark_response_start`.
    played_bytes: u64,
    played_frames: u64,
    stats: PlayoutStats,
}

impl Playout {
    /// A sender whose first tick is at `now`.
    pub fn new(now: Instant, cfg: PlayoutConfig) -> Self {
        Playout {
            cfg,
            queue: VecDeque::new(),
            next_tick: now,
            talkspurt: true,
            idle: true,
            in_response: false,
            played_bytes: 0,
            played_frames: 0,
            stats: PlayoutStats::default(),
        }
    }

    /// Queues one encoded frame (drops the oldest when full).
    pub fn push(&mut self, frame: Vec<u8>) {
        if self.queue.len() >= self.cfg.max_queue_frames {
            self.queue.pop_front();
            self.stats.dropped += 1;
        }
        self.queue.push_back(frame);
    }

    /// Queues a frame; if the sender is idle (nothing queued, last tick empty) the new
    /// talk-spurt starts at `now` instead of waiting up to 20 ms for the old schedule.
    pub fn push_now(&mut self, now: Instant, frame: Vec<u8>) {
        if self.queue.is_empty() && self.idle && self.next_tick > now {
            self.next_tick = now;
        }
        self.push(frame);
    }

    /// Frames waiting.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The next tick.
    pub fn poll_timeout(&self) -> Instant {
        self.next_tick
    }

    /// Runs the tick due at `now`: returns the frame to send, if any.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Vec<u8>> {
        if now < self.next_tick {
            return None;
        }
        let late = now.duration_since(self.next_tick);
        if late > self.cfg.frame * self.cfg.max_lateness_frames {
            self.stats.resyncs += 1;
            self.next_tick = now + self.cfg.frame;
        } else {
            self.next_tick += self.cfg.frame;
        }
        match self.queue.pop_front() {
            Some(frame) => {
                self.idle = false;
                self.stats.sent += 1;
                if self.in_response {
                    self.played_bytes += frame.len() as u64;
                    self.played_frames += 1;
                }
                Some(frame)
            }
            None => {
                if self.in_response {
                    self.stats.underruns += 1;
                }
                self.talkspurt = true;
                self.idle = true;
                None
            }
        }
    }

    /// True (once) if the frame just returned starts a talk-spurt: set the RTP marker bit.
    pub fn take_talkspurt_start(&mut self) -> bool {
        std::mem::take(&mut self.talkspurt)
    }

    /// True while frames are queued.
    pub fn is_playing(&self) -> bool {
        !self.queue.is_empty()
    }

    /// A new response starts: reset the played counters.
    pub fn mark_response_start(&mut self) {
        self.in_response = true;
        self.played_bytes = 0;
        self.played_frames = 0;
    }

    /// The response finished arriving and playing; stop counting underruns.
    pub fn mark_response_end(&mut self) {
        self.in_response = false;
    }

    /// Barge-in: drops everything queued; returns how many frames were dropped.
    pub fn flush(&mut self) -> usize {
        let n = self.queue.len();
        self.queue.clear();
        self.stats.flushed += n as u64;
        self.in_response = false;
        self.talkspurt = true;
        self.idle = true;
        n
    }

    /// Bytes of the current response actually sent (for G.711, the truncation offset is this / 8).
    pub fn played_bytes(&self) -> u64 {
        self.played_bytes
    }

    /// Milliseconds of the current response actually sent.
    pub fn played_ms(&self) -> u64 {
        self.played_frames * self.cfg.frame.as_millis() as u64
    }

    /// Counters so far.
    pub fn stats(&self) -> PlayoutStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn exact_cadence_without_drift() {
        let t0 = Instant::now();
        let mut p = Playout::new(t0, PlayoutConfig::default());
        for i in 0..100u8 {
            p.push(vec![i; 160]);
        }
        for i in 0..100u64 {
            assert_eq!(p.poll_timeout(), t0 + ms(20 * i));
            // The driver wakes a little late; the schedule does not drift.
            let frame = p.handle_timeout(t0 + ms(20 * i + 3)).expect("frame");
            assert_eq!(frame[0], i as u8);
        }
        assert_eq!(
            p.handle_timeout(t0 + ms(2000)),
            None,
            "empty queue sends nothing"
        );
    }

    #[test]
    fn a_new_talkspurt_starts_at_once() {
        let t0 = Instant::now();
        let mut p = Playout::new(t0, PlayoutConfig::default());
        assert_eq!(p.handle_timeout(t0), None, "idle");
        assert_eq!(p.poll_timeout(), t0 + ms(20));
        p.push_now(t0 + ms(7), vec![1]);
        assert_eq!(p.poll_timeout(), t0 + ms(7), "no wait for the old schedule");
        assert_eq!(p.handle_timeout(t0 + ms(7)), Some(vec![1]));
        p.push_now(t0 + ms(9), vec![2]);
        assert_eq!(
            p.poll_timeout(),
            t0 + ms(27),
            "mid-spurt frames keep the 20 ms pace"
        );
    }

    #[test]
    fn late_wakeup_resyncs_instead_of_bursting() {
        let t0 = Instant::now();
        let mut p = Playout::new(t0, PlayoutConfig::default());
        for _ in 0..10 {
            p.push(vec![0; 160]);
        }
        assert!(p.handle_timeout(t0).is_some());
        assert!(p.handle_timeout(t0 + ms(500)).is_some());
        assert_eq!(p.poll_timeout(), t0 + ms(520));
        assert_eq!(p.stats().resyncs, 1);
    }

    #[test]
    fn overflow_drops_oldest() {
        let t0 = Instant::now();
        let cfg = PlayoutConfig {
            max_queue_frames: 2,
            ..PlayoutConfig::default()
        };
        let mut p = Playout::new(t0, cfg);
        for i in 0..4u8 {
            p.push(vec![i]);
        }
        assert_eq!(p.stats().dropped, 2);
        assert_eq!(p.handle_timeout(t0), Some(vec![2]));
    }

    #[test]
    fn flush_reports_what_was_heard() {
        let t0 = Instant::now();
        let mut p = Playout::new(t0, PlayoutConfig::default());
        p.mark_response_start();
        for _ in 0..50 {
            p.push(vec![0xff; 160]);
        }
        for i in 0..7 {
            assert!(p.handle_timeout(t0 + ms(20 * i)).is_some());
        }
        assert_eq!(p.played_ms(), 140);
        assert_eq!(p.played_bytes() / 8, 140, "µ-law bytes / 8 = ms heard");
        assert_eq!(p.flush(), 43);
        assert_eq!(
            p.handle_timeout(t0 + ms(140)),
            None,
            "nothing after the flush"
        );
        assert!(
            p.take_talkspurt_start(),
            "the next audio starts a new talk-spurt"
        );
    }
}
