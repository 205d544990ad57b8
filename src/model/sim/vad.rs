//! Energy VAD in audio time: 20 ms frames, speech after 2 loud frames, end after a silence run.
//!
//! Sans-IO and clock-free: time is the count of 20 ms frames pushed, so the same audio always
//! gives the same `audio_start_ms` / `audio_end_ms`, however fast it is appended. A partial
//! frame left at a sample-rate change is dropped (< 20 ms of timeline error, documented).

/// Frame length, ms.
pub const FRAME_MS: u64 = 20;
/// Loud frames in a row that start speech.
const START_FRAMES: u32 = 2;

/// A VAD decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadEvent {
    /// Speech began; already reduced by the prefix padding.
    Started {
        /// Input audio time, ms since the session's first appended sample.
        audio_start_ms: u64,
    },
    /// Speech ended at the end of the last loud frame.
    Stopped {
        /// Input audio time, ms.
        audio_end_ms: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Quiet {
        loud_run: u32,
        run_start_ms: u64,
    },
    Speaking {
        silent_ms: u64,
        last_loud_end_ms: u64,
    },
}

/// The detector. Feed it decoded samples with [`Vad::push`].
#[derive(Debug, Clone)]
pub struct Vad {
    rate: u32,
    partial: Vec<i16>,
    /// Audio time at the start of `partial`, ms.
    t_ms: u64,
    state: State,
}

/// Thresholds, re-read on every push so a `session.update` takes effect at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadParams {
    /// Frame RMS (16-bit linear) above which a frame is loud.
    pub threshold: f32,
    /// Silence that ends speech, ms.
    pub silence_ms: u64,
    /// Audio reported before the first loud frame, ms.
    pub prefix_ms: u64,
}

impl Vad {
    /// A quiet detector at audio time 0.
    pub fn new(rate: u32) -> Self {
        Vad {
            rate,
            partial: Vec::new(),
            t_ms: 0,
            state: State::Quiet {
                loud_run: 0,
                run_start_ms: 0,
            },
        }
    }

    /// Audio time consumed so far (whole frames), ms.
    #[cfg(test)]
    pub fn now_ms(&self) -> u64 {
        self.t_ms
    }

    /// Back to quiet (after a commit or clear), keeping the timeline.
    pub fn reset(&mut self) {
        self.state = State::Quiet {
            loud_run: 0,
            run_start_ms: self.t_ms,
        };
    }

    /// Switches sample rate; drops a partial frame.
    pub fn set_rate(&mut self, rate: u32) {
        if rate != self.rate {
            self.rate = rate;
            self.partial.clear();
        }
    }

    /// Pushes samples; appends decisions to `out`. `params = None` only advances time.
    pub fn push(&mut self, samples: &[i16], params: Option<VadParams>, out: &mut Vec<VadEvent>) {
        let frame_len = (self.rate as u64 * FRAME_MS / 1000) as usize;
        for &s in samples {
            self.partial.push(s);
            if self.partial.len() < frame_len {
                continue;
            }
            let energy: f64 = self.partial.iter().map(|&x| (x as f64) * (x as f64)).sum();
            let rms = (energy / frame_len as f64).sqrt();
            self.partial.clear();
            let start = self.t_ms;
            self.t_ms += FRAME_MS;
            if let Some(p) = params {
                self.frame(start, rms > p.threshold as f64, p, out);
            }
        }
    }

    fn frame(&mut self, start: u64, loud: bool, p: VadParams, out: &mut Vec<VadEvent>) {
        let end = start + FRAME_MS;
        self.state = match (self.state, loud) {
            (
                State::Quiet {
                    loud_run,
                    run_start_ms,
                },
                true,
            ) => {
                let run_start_ms = if loud_run == 0 { start } else { run_start_ms };
                if loud_run + 1 >= START_FRAMES {
                    out.push(VadEvent::Started {
                        audio_start_ms: run_start_ms.saturating_sub(p.prefix_ms),
                    });
                    State::Speaking {
                        silent_ms: 0,
                        last_loud_end_ms: end,
                    }
                } else {
                    State::Quiet {
                        loud_run: loud_run + 1,
                        run_start_ms,
                    }
                }
            }
            (State::Quiet { .. }, false) => State::Quiet {
                loud_run: 0,
                run_start_ms: end,
            },
            (State::Speaking { .. }, true) => State::Speaking {
                silent_ms: 0,
                last_loud_end_ms: end,
            },
            (
                State::Speaking {
                    silent_ms,
                    last_loud_end_ms,
                },
                false,
            ) => {
                let silent_ms = silent_ms + FRAME_MS;
                if silent_ms >= p.silence_ms {
                    out.push(VadEvent::Stopped {
                        audio_end_ms: last_loud_end_ms,
                    });
                    State::Quiet {
                        loud_run: 0,
                        run_start_ms: end,
                    }
                } else {
                    State::Speaking {
                        silent_ms,
                        last_loud_end_ms,
                    }
                }
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: VadParams = VadParams {
        threshold: 500.0,
        silence_ms: 500,
        prefix_ms: 300,
    };

    fn tone(ms: usize) -> Vec<i16> {
        (0..ms * 8)
            .map(|i| if i % 2 == 0 { 4000 } else { -4000 })
            .collect()
    }

    #[test]
    fn speech_then_silence_in_audio_time() {
        let mut vad = Vad::new(8000);
        let mut ev = Vec::new();
        vad.push(&vec![0; 8 * 1000], Some(P), &mut ev);
        assert!(ev.is_empty());
        vad.push(&tone(1000), Some(P), &mut ev);
        assert_eq!(
            ev,
            [VadEvent::Started {
                audio_start_ms: 700
            }]
        );
        ev.clear();
        vad.push(&vec![0; 8 * 480], Some(P), &mut ev);
        assert!(ev.is_empty(), "480 ms of silence is not enough");
        vad.push(&vec![0; 8 * 20], Some(P), &mut ev);
        assert_eq!(ev, [VadEvent::Stopped { audio_end_ms: 2000 }]);
    }

    #[test]
    fn a_single_loud_frame_is_not_speech() {
        let mut vad = Vad::new(8000);
        let mut ev = Vec::new();
        vad.push(&tone(20), Some(P), &mut ev);
        vad.push(&vec![0; 160], Some(P), &mut ev);
        vad.push(&tone(20), Some(P), &mut ev);
        assert!(ev.is_empty());
        assert_eq!(vad.now_ms(), 60);
    }
}
