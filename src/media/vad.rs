//! Energy-based voice activity detection on 20 ms PCM16 frames, and the barge-in guard built on it.
//!
//! Two users: the call layer confirms a model-reported barge-in with [`BargeInGuard`] before it
//! cuts the agent off (so line echo of the agent's own voice, or a cough, does not), and the model
//! simulator uses [`Vad`] to decide when its caller starts and stops speaking.
//!
//! Levels are RMS in dBFS relative to a full-scale square wave: a full-scale sine reads −3 dBFS,
//! digital silence reads [`SILENCE_DBFS`]. Everything counts frames, not time: callers push one
//! frame per 20 ms and no clock is read. Deliberately left out: spectral features, noise-floor
//! tracking and echo cancellation; this only compares levels.

/// Level reported for digital silence and empty frames, in dBFS (the floor of 16-bit audio).
pub const SILENCE_DBFS: f32 = -96.0;

/// RMS level of one frame in dBFS, [`SILENCE_DBFS`] for silence or an empty frame.
pub fn frame_dbfs(pcm: &[i16]) -> f32 {
    if pcm.is_empty() {
        return SILENCE_DBFS;
    }
    let energy: f64 = pcm.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    let mean = energy / pcm.len() as f64;
    if mean <= 0.0 {
        return SILENCE_DBFS;
    }
    // 10·log10(mean / 32768²) = 20·log10(rms / 32768).
    let dbfs = 10.0 * (mean / (32_768.0 * 32_768.0)).log10();
    (dbfs as f32).max(SILENCE_DBFS)
}

/// Tuning of a [`Vad`]; the counts are in frames (20 ms each).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadConfig {
    /// A frame at or above this RMS level counts as voiced.
    pub threshold_dbfs: f32,
    /// Consecutive voiced frames before speech starts (3 = 60 ms), so a click does not count.
    pub min_speech_frames: u32,
    /// Consecutive unvoiced frames before speech ends (25 = 500 ms), bridging pauses between words.
    pub hangover_frames: u32,
}

impl Default for VadConfig {
    /// −35 dBFS, 60 ms to start, 500 ms to end.
    fn default() -> Self {
        Self {
            threshold_dbfs: -35.0,
            min_speech_frames: 3,
            hangover_frames: 25,
        }
    }
}

/// A speech boundary reported by [`Vad::push_frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadEvent {
    /// `min_speech_frames` voiced frames in a row; the first of them is where speech began.
    SpeechStart,
    /// `hangover_frames` unvoiced frames in a row; the first of them is where speech ended.
    SpeechEnd,
}

/// A frame-counting energy VAD: speech starts after a run of loud frames and ends after a run of
/// quiet ones. Sans-IO: push one frame per 20 ms, read the transitions it returns.
#[derive(Debug, Clone)]
pub struct Vad {
    /// Thresholds; zero counts were raised to one at construction.
    cfg: VadConfig,
    /// Whether we are inside a speech segment.
    speech: bool,
    /// Consecutive frames disagreeing with `speech` (voiced while silent, or unvoiced while
    /// speaking): the run that, once long enough, flips the state.
    run: u32,
    /// Level of the last frame pushed, in dBFS.
    level_dbfs: f32,
}

impl Vad {
    /// Builds a detector in the silent state; frame counts of zero are treated as one.
    pub fn new(cfg: VadConfig) -> Self {
        let cfg = VadConfig {
            min_speech_frames: cfg.min_speech_frames.max(1),
            hangover_frames: cfg.hangover_frames.max(1),
            ..cfg
        };
        Self {
            cfg,
            speech: false,
            run: 0,
            level_dbfs: SILENCE_DBFS,
        }
    }

    /// Feeds one frame (any length, 20 ms expected) and returns the transition it completes.
    pub fn push_frame(&mut self, pcm: &[i16]) -> Option<VadEvent> {
        self.level_dbfs = frame_dbfs(pcm);
        let voiced = self.level_dbfs >= self.cfg.threshold_dbfs;
        if voiced == self.speech {
            self.run = 0;
            return None;
        }
        self.run += 1;
        let needed = if self.speech {
            self.cfg.hangover_frames
        } else {
            self.cfg.min_speech_frames
        };
        if self.run < needed {
            return None;
        }
        self.run = 0;
        self.speech = voiced;
        Some(if voiced {
            VadEvent::SpeechStart
        } else {
            VadEvent::SpeechEnd
        })
    }

    /// Whether the detector is inside a speech segment.
    pub fn is_speech(&self) -> bool {
        self.speech
    }

    /// RMS level of the last frame pushed, in dBFS ([`SILENCE_DBFS`] before any frame).
    pub fn level_dbfs(&self) -> f32 {
        self.level_dbfs
    }

    /// Returns to the silent state, as if newly built.
    pub fn reset(&mut self) {
        self.speech = false;
        self.run = 0;
        self.level_dbfs = SILENCE_DBFS;
    }
}

/// Tuning of a [`BargeInGuard`]; the counts are in frames (20 ms each).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BargeInConfig {
    /// The caller's frame must reach this level regardless of what the agent plays.
    pub floor_dbfs: f32,
    /// Echo return loss: line echo of the agent arrives at least this many dB below the agent's
    /// own level, so the caller must be louder than `agent − erl_db` to count as speech.
    pub erl_db: f32,
    /// Consecutive qualifying frames that confirm the barge-in (3 = 60 ms).
    pub confirm_frames: u32,
    /// Frames after [`BargeInGuard::start`] within which confirmation must happen (15 = 300 ms).
    pub guard_frames: u32,
}

impl Default for BargeInConfig {
    /// −35 dBFS floor, 12 dB ERL, 60 ms to confirm within 300 ms.
    fn default() -> Self {
        Self {
            floor_dbfs: -35.0,
            erl_db: 12.0,
            confirm_frames: 3,
            guard_frames: 15,
        }
    }
}

/// Outcome of one barge-in check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BargeInVerdict {
    /// The caller really spoke over the agent: stop playout and truncate.
    Confirmed,
    /// Echo, a cough or noise: keep the agent talking.
    Rejected,
}

/// Decides whether a model-reported barge-in is real from the caller's and the agent's frame
/// levels. Idle until [`start`](Self::start); then each [`push`](Self::push) of one 20 ms frame
/// pair either returns the verdict (and the guard goes idle again) or `None` to keep waiting.
#[derive(Debug, Clone)]
pub struct BargeInGuard {
    /// Thresholds; zero counts were raised to one, and `guard_frames` to at least `confirm_frames`.
    cfg: BargeInConfig,
    /// Whether a check is in progress.
    armed: bool,
    /// Frames pushed since `start`.
    seen: u32,
    /// Consecutive qualifying caller frames, ending at the latest frame.
    run: u32,
}

impl BargeInGuard {
    /// Builds an idle guard; counts of zero become one and `guard_frames` is at least `confirm_frames`.
    pub fn new(cfg: BargeInConfig) -> Self {
        let confirm_frames = cfg.confirm_frames.max(1);
        let cfg = BargeInConfig {
            confirm_frames,
            guard_frames: cfg.guard_frames.max(confirm_frames),
            ..cfg
        };
        Self {
            cfg,
            armed: false,
            seen: 0,
            run: 0,
        }
    }

    /// Begins a check (the model reported `speech_started`); restarts one already in progress.
    pub fn start(&mut self) {
        self.armed = true;
        self.seen = 0;
        self.run = 0;
    }

    /// Whether a check is in progress.
    pub fn is_active(&self) -> bool {
        self.armed
    }

    /// Drops a check in progress without a verdict (e.g. the agent stopped talking anyway).
    pub fn cancel(&mut self) {
        self.armed = false;
    }

    /// Feeds one frame's caller and agent-playout levels (dBFS, e.g. from [`frame_dbfs`]).
    ///
    /// Returns `Confirmed` once `confirm_frames` consecutive caller frames exceed both the floor
    /// and the agent level minus the ERL, `Rejected` when `guard_frames` pass without that, and
    /// `None` while undecided or when no check is in progress.
    pub fn push(
        &mut self,
        caller_frame_dbfs: f32,
        agent_frame_dbfs: f32,
    ) -> Option<BargeInVerdict> {
        if !self.armed {
            return None;
        }
        self.seen += 1;
        let echo_ceiling = agent_frame_dbfs - self.cfg.erl_db;
        let qualifies =
            caller_frame_dbfs >= self.cfg.floor_dbfs && caller_frame_dbfs > echo_ceiling;
        self.run = if qualifies { self.run + 1 } else { 0 };
        let verdict = if self.run >= self.cfg.confirm_frames {
            BargeInVerdict::Confirmed
        } else if self.seen >= self.cfg.guard_frames {
            BargeInVerdict::Rejected
        } else {
            return None;
        };
        self.armed = false;
        Some(verdict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Samples in one 20 ms frame at 8 kHz.
    const FRAME: usize = 160;

    /// One 20 ms frame (frame number `k`, for phase continuity) of a `freq` Hz sine at `dbfs` RMS.
    fn sine_frame(freq: f64, dbfs: f64, k: usize) -> Vec<i16> {
        let amp = 32_768.0 * 10f64.powf(dbfs / 20.0) * std::f64::consts::SQRT_2;
        (0..FRAME)
            .map(|i| {
                let t = (k * FRAME + i) as f64 / 8_000.0;
                (amp * (2.0 * std::f64::consts::PI * freq * t).sin()).round() as i16
            })
            .collect()
    }

    fn mix(a: &[i16], b: &[i16]) -> Vec<i16> {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| x.saturating_add(y))
            .collect()
    }

    /// Indices of the frames at which `frames` produce events, with the events.
    fn events(vad: &mut Vad, frames: &[Vec<i16>]) -> Vec<(usize, VadEvent)> {
        frames
            .iter()
            .enumerate()
            .filter_map(|(i, f)| vad.push_frame(f).map(|e| (i, e)))
            .collect()
    }

    #[test]
    fn frame_dbfs_reference_levels() {
        assert_eq!(frame_dbfs(&[]), SILENCE_DBFS);
        assert_eq!(frame_dbfs(&[0; FRAME]), SILENCE_DBFS);
        assert!(
            (frame_dbfs(&[i16::MIN; FRAME]) - 0.0).abs() < 0.01,
            "full-scale square"
        );
        // A full-scale sine is −3 dBFS; the helper makes a −20 dBFS one.
        let full = sine_frame(1_000.0, -3.0103, 0);
        assert!((frame_dbfs(&full) + 3.01).abs() < 0.05);
        assert!((frame_dbfs(&sine_frame(1_000.0, -20.0, 0)) + 20.0).abs() < 0.05);
        // One LSB of DC is −90.3 dBFS, above the floor.
        assert!((frame_dbfs(&[1; FRAME]) + 90.3).abs() < 0.05);
        // Odd lengths are fine.
        assert!((frame_dbfs(&[1_000; 7]) - frame_dbfs(&[1_000; FRAME])).abs() < 1e-4);
    }

    #[test]
    fn tone_over_silence_starts_after_min_frames_and_ends_after_hangover() {
        let mut vad = Vad::new(VadConfig::default());
        let silence = vec![0i16; FRAME];
        // 10 silent frames, 50 frames (1 s) of a -20 dBFS tone, then 40 silent frames.
        let mut frames = vec![silence.clone(); 10];
        frames.extend((0..50).map(|k| sine_frame(440.0, -20.0, k)));
        frames.extend(std::iter::repeat_n(silence, 40));
        let got = events(&mut vad, &frames);
        // Start on the 3rd voiced frame (index 12), end on the 25th silent one (index 84).
        assert_eq!(
            got,
            [(12, VadEvent::SpeechStart), (84, VadEvent::SpeechEnd)]
        );
        assert!(!vad.is_speech());
        assert_eq!(vad.level_dbfs(), SILENCE_DBFS);
    }

    #[test]
    fn speech_survives_pauses_shorter_than_the_hangover() {
        let mut vad = Vad::new(VadConfig::default());
        let quiet = sine_frame(440.0, -50.0, 0);
        let mut frames: Vec<Vec<i16>> = (0..5).map(|k| sine_frame(300.0, -25.0, k)).collect();
        frames.extend(std::iter::repeat_n(quiet, 24)); // a 480 ms pause
        frames.extend((0..5).map(|k| sine_frame(300.0, -25.0, k)));
        assert_eq!(events(&mut vad, &frames), [(2, VadEvent::SpeechStart)]);
        assert!(vad.is_speech());
        assert!((vad.level_dbfs() + 25.0).abs() < 0.1);
    }

    #[test]
    fn a_single_loud_frame_is_not_speech() {
        let mut vad = Vad::new(VadConfig::default());
        let silence = vec![0i16; FRAME];
        let mut click = silence.clone();
        click[80..90].fill(i16::MAX); // a 1.25 ms full-scale click: about -12 dBFS over the frame
        let mut frames = vec![silence.clone(); 5];
        frames.push(click);
        frames.extend(vec![silence.clone(); 5]);
        // Two loud frames, a gap, two more: runs are consecutive, so still nothing.
        frames.extend([sine_frame(500.0, -10.0, 0), sine_frame(500.0, -10.0, 1)]);
        frames.push(silence.clone());
        frames.extend([sine_frame(500.0, -10.0, 0), sine_frame(500.0, -10.0, 1)]);
        frames.push(silence);
        assert_eq!(events(&mut vad, &frames), []);
        assert!(!vad.is_speech());
    }

    #[test]
    fn zero_counts_behave_as_one_and_reset_returns_to_silence() {
        let mut vad = Vad::new(VadConfig {
            threshold_dbfs: -40.0,
            min_speech_frames: 0,
            hangover_frames: 0,
        });
        assert_eq!(
            vad.push_frame(&sine_frame(1_000.0, -20.0, 0)),
            Some(VadEvent::SpeechStart)
        );
        assert_eq!(vad.push_frame(&[]), Some(VadEvent::SpeechEnd));
        vad.push_frame(&sine_frame(1_000.0, -20.0, 0));
        vad.reset();
        assert!(!vad.is_speech());
    }

    /// Agent playout at -15 dBFS (600 Hz) and its line echo 15 dB down, as heard on the caller leg.
    fn agent_and_echo(k: usize) -> (Vec<i16>, Vec<i16>) {
        (sine_frame(600.0, -15.0, k), sine_frame(600.0, -30.0, k))
    }

    /// Runs a guard over `n` frames of caller audio built by `caller(k, echo)`; returns the frame
    /// index and verdict, if any.
    fn run_guard(
        n: usize,
        caller: impl Fn(usize, &[i16]) -> Vec<i16>,
    ) -> Option<(usize, BargeInVerdict)> {
        let mut guard = BargeInGuard::new(BargeInConfig::default());
        guard.start();
        for k in 0..n {
            let (agent, echo) = agent_and_echo(k);
            let heard = caller(k, &echo);
            if let Some(v) = guard.push(frame_dbfs(&heard), frame_dbfs(&agent)) {
                assert!(!guard.is_active(), "a verdict ends the check");
                return Some((k, v));
            }
        }
        None
    }

    #[test]
    fn caller_speech_over_echo_is_confirmed() {
        // Caller speaks at -20 dBFS (200 Hz) on top of the -30 dBFS echo of the agent at -15.
        let got = run_guard(30, |k, echo| mix(&sine_frame(200.0, -20.0, k), echo));
        assert_eq!(
            got,
            Some((2, BargeInVerdict::Confirmed)),
            "on the 3rd frame"
        );
    }

    #[test]
    fn pure_echo_is_rejected_when_the_guard_runs_out() {
        // Caller leg carries only the echo: agent level minus 15 dB, under the 12 dB ERL margin.
        let got = run_guard(30, |_, echo| echo.to_vec());
        assert_eq!(got, Some((14, BargeInVerdict::Rejected)), "after 15 frames");
    }

    #[test]
    fn a_cough_then_silence_is_rejected() {
        // One loud frame at -10 dBFS, then only echo.
        let got = run_guard(30, |k, echo| {
            if k == 0 {
                mix(&sine_frame(900.0, -10.0, k), echo)
            } else {
                echo.to_vec()
            }
        });
        assert_eq!(got, Some((14, BargeInVerdict::Rejected)));
        // And with the agent silent, a cough followed by digital silence is rejected too.
        let mut guard = BargeInGuard::new(BargeInConfig::default());
        guard.start();
        let verdicts: Vec<_> = [-10.0]
            .into_iter()
            .chain(std::iter::repeat_n(SILENCE_DBFS, 20))
            .filter_map(|caller| guard.push(caller, SILENCE_DBFS))
            .collect();
        assert_eq!(verdicts, [BargeInVerdict::Rejected]);
    }

    #[test]
    fn quiet_caller_is_rejected_even_when_the_agent_is_silent() {
        // Above the echo ceiling (agent silent) but under the absolute floor: line noise.
        let mut guard = BargeInGuard::new(BargeInConfig::default());
        guard.start();
        let verdicts: Vec<_> = (0..15)
            .filter_map(|_| guard.push(-45.0, SILENCE_DBFS))
            .collect();
        assert_eq!(verdicts, [BargeInVerdict::Rejected]);
    }

    #[test]
    fn guard_is_idle_until_started_and_restarts_cleanly() {
        let mut guard = BargeInGuard::new(BargeInConfig {
            guard_frames: 1, // raised to confirm_frames (3)
            ..BargeInConfig::default()
        });
        assert_eq!(guard.push(-10.0, SILENCE_DBFS), None, "not started");
        guard.start();
        assert_eq!(guard.push(-10.0, SILENCE_DBFS), None);
        assert_eq!(guard.push(-10.0, SILENCE_DBFS), None);
        guard.start(); // a second speech_started restarts the count
        assert_eq!(guard.push(-10.0, SILENCE_DBFS), None);
        assert_eq!(guard.push(-10.0, SILENCE_DBFS), None);
        assert_eq!(
            guard.push(-10.0, SILENCE_DBFS),
            Some(BargeInVerdict::Confirmed)
        );
        guard.start();
        guard.cancel();
        assert!(!guard.is_active());
        assert_eq!(guard.push(-10.0, SILENCE_DBFS), None);
    }
}
