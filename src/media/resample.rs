//! Streaming mono PCM16 resampling between the fixed telephony rates (8, 16, 24 and 48 kHz).
//!
//! The model speaks PCM16 at 24 kHz; callers arrive as G.711 (8 kHz) or Opus (48 kHz). This wraps
//! rubato's synchronous FFT resampler ([`rubato::Fft`], see DESIGN.md "resampling") behind an
//! i16 push API that accepts any input length: input is collected into 20 ms blocks, each full
//! block is resampled at once, and 20 ms of output comes out per 20 ms of input.
//!
//! Latency, for the call layer's barge-in truncation: output sample `i` carries the input at time
//! `(i - delay_samples()) / to_hz`. The first [`Resampler::delay_samples`] output samples are the
//! filter's start-up silence (half an FFT block, 10 ms), so "input heard" after `n` output
//! samples played is `n.saturating_sub(delay_samples())` output samples' worth. On top of that,
//! input waits in the block buffer until 20 ms have been collected (none when fed 20 ms frames).
//!
//! Left out on purpose: arbitrary or variable ratios (use rubato's `Async` for clock drift),
//! multi-channel audio, and equal rates (skip the resampler instead). Reads no clock, owns no I/O.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler as _};

/// The rates a [`Resampler`] converts between; every pair of distinct rates is supported.
pub const SUPPORTED_RATES_HZ: [u32; 4] = [8_000, 16_000, 24_000, 48_000];

/// Block length in milliseconds: one RTP packet, and one FFT block of the inner resampler.
const BLOCK_MS: u32 = 20;

/// Why a [`Resampler`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResampleError {
    /// The caller (configuration or codec negotiation) asked for a pair of rates we do not handle.
    #[error("unsupported resampling {from_hz} Hz -> {to_hz} Hz (supported: distinct rates among 8000, 16000, 24000, 48000)")]
    UnsupportedRates {
        /// Requested input rate in Hz.
        from_hz: u32,
        /// Requested output rate in Hz.
        to_hz: u32,
    },
    /// rubato refused the parameters we derived (a bug on our side).
    #[error("resampler construction failed: {0}")]
    Construction(#[from] rubato::ResamplerConstructionError),
}

/// A streaming mono i16 resampler for one fixed rate pair; see the module docs for its latency.
pub struct Resampler {
    /// rubato's FFT resampler, fixed to one 20 ms block in and one 20 ms block out per call.
    inner: Fft<f32>,
    /// Input rate in Hz.
    from_hz: u32,
    /// Output rate in Hz.
    to_hz: u32,
    /// Input samples per block (20 ms at `from_hz`).
    block_in: usize,
    /// Output samples per block (20 ms at `to_hz`).
    block_out: usize,
    /// Input collected towards the next block, as f32 in i16 units; `pending[..filled]` is valid.
    pending: Vec<f32>,
    /// Number of valid samples in `pending`.
    filled: usize,
    /// Output of the last block, in i16 units before rounding.
    block_buf: Vec<f32>,
    /// Input samples accepted since construction or the last reset; sizes the flush tail.
    total_in: u64,
    /// Output samples emitted since construction or the last reset.
    total_out: u64,
}

impl std::fmt::Debug for Resampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resampler")
            .field("from_hz", &self.from_hz)
            .field("to_hz", &self.to_hz)
            .field("filled", &self.filled)
            .field("total_in", &self.total_in)
            .field("total_out", &self.total_out)
            .finish_non_exhaustive()
    }
}

impl Resampler {
    /// Builds a resampler from `from_hz` to `to_hz`; both must be distinct [`SUPPORTED_RATES_HZ`].
    pub fn new(from_hz: u32, to_hz: u32) -> Result<Self, ResampleError> {
        if from_hz == to_hz
            || !SUPPORTED_RATES_HZ.contains(&from_hz)
            || !SUPPORTED_RATES_HZ.contains(&to_hz)
        {
            return Err(ResampleError::UnsupportedRates { from_hz, to_hz });
        }
        let block_in = (from_hz * BLOCK_MS / 1000) as usize;
        let block_out = (to_hz * BLOCK_MS / 1000) as usize;
        // FixedSync::Both with a chunk of one block: every call consumes exactly `block_in` and
        // produces exactly `block_out`, and the FFT block is the whole 20 ms (all supported rates
        // are multiples of 1 kHz, so 20 ms is a whole number of the minimum FFT block). A 20 ms
        // block gives a 10 ms delay and an anti-aliasing filter long enough to pass 3.4 kHz at
        // 8 kHz with well under 0.5 dB loss.
        let inner = Fft::<f32>::new(
            from_hz as usize,
            to_hz as usize,
            block_in,
            1,
            FixedSync::Both,
        )?;
        debug_assert_eq!(inner.input_frames_next(), block_in, "one block in per call");
        debug_assert_eq!(
            inner.output_frames_next(),
            block_out,
            "one block out per call"
        );
        Ok(Self {
            inner,
            from_hz,
            to_hz,
            block_in,
            block_out,
            pending: vec![0.0; block_in],
            filled: 0,
            block_buf: vec![0.0; block_out],
            total_in: 0,
            total_out: 0,
        })
    }

    /// Input rate in Hz.
    pub fn from_hz(&self) -> u32 {
        self.from_hz
    }

    /// Output rate in Hz.
    pub fn to_hz(&self) -> u32 {
        self.to_hz
    }

    /// Algorithmic latency in output samples: how far behind its input the output runs.
    ///
    /// The first `delay_samples()` samples after construction or [`reset`](Self::reset) are
    /// silence; after that, output sample `i` carries input time `(i - delay) / to_hz`. It is half
    /// an FFT block (10 ms, e.g. 120 samples at 24 kHz) and does not include the wait for a block
    /// to fill, which is zero when input arrives in 20 ms frames.
    pub fn delay_samples(&self) -> usize {
        self.inner.output_delay()
    }

    /// Upper bound on the samples one [`process`](Self::process) call of `input_len` samples
    /// appends, for pre-sizing the output `Vec` so the hot path never reallocates.
    pub fn max_output_len(&self, input_len: usize) -> usize {
        (self.filled + input_len) / self.block_in * self.block_out
    }

    /// Feeds any number of input samples and appends every complete output block to `out`.
    ///
    /// Input that does not fill a 20 ms block is kept for the next call. `out` is only appended
    /// to; it allocates only if its capacity is short (see [`max_output_len`](Self::max_output_len)).
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        self.total_in += input.len() as u64;
        let mut rest = input;
        while !rest.is_empty() {
            let take = (self.block_in - self.filled).min(rest.len());
            let (head, tail) = rest.split_at(take);
            for (dst, &src) in self.pending[self.filled..self.filled + take]
                .iter_mut()
                .zip(head)
            {
                *dst = f32::from(src);
            }
            self.filled += take;
            rest = tail;
            if self.filled == self.block_in {
                self.run_block();
                self.emit(self.block_out, out);
            }
        }
    }

    /// Ends the stream: emits the buffered input and the filter tail, then resets.
    ///
    /// After a flush the total output since the last reset is `ceil(input * to / from)` plus
    /// [`delay_samples`](Self::delay_samples), so every input sample has come out; with no input
    /// since the last reset it emits nothing.
    pub fn flush(&mut self, out: &mut Vec<i16>) {
        if self.total_in == 0 {
            return;
        }
        let expected = (self.total_in * u64::from(self.to_hz)).div_ceil(u64::from(self.from_hz))
            + self.delay_samples() as u64;
        while self.total_out < expected {
            // Zero-pad the partial block; the padding is silence, the true end of the stream.
            self.pending[self.filled..].fill(0.0);
            self.filled = self.block_in;
            self.run_block();
            let want = (expected - self.total_out).min(self.block_out as u64) as usize;
            self.emit(want, out);
        }
        self.reset();
    }

    /// Drops all buffered input and filter state, as if newly constructed.
    pub fn reset(&mut self) {
        self.inner.reset();
        self.pending.fill(0.0);
        self.filled = 0;
        self.total_in = 0;
        self.total_out = 0;
    }

    /// Resamples the full `pending` block into `block_buf`.
    fn run_block(&mut self) {
        let input = InterleavedSlice::new(&self.pending[..], 1, self.block_in)
            .expect("pending holds exactly block_in samples, sized at construction");
        let mut output = InterleavedSlice::new_mut(&mut self.block_buf[..], 1, self.block_out)
            .expect("block_buf holds exactly block_out samples, sized at construction");
        let (used, made) = self
            .inner
            .process_into_buffer(&input, &mut output, None)
            .expect("buffers match rubato's fixed chunk sizes, checked at construction");
        debug_assert_eq!((used, made), (self.block_in, self.block_out));
        self.filled = 0;
    }

    /// Appends the first `n` samples of `block_buf` to `out`, rounded and clamped to i16.
    fn emit(&mut self, n: usize, out: &mut Vec<i16>) {
        out.extend(
            self.block_buf[..n]
                .iter()
                .map(|&s| s.round().clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16),
        );
        self.total_out += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAIRS: [(u32, u32); 8] = [
        (8_000, 24_000),
        (24_000, 8_000),
        (48_000, 24_000),
        (24_000, 48_000),
        (8_000, 48_000),
        (48_000, 8_000),
        (16_000, 24_000),
        (24_000, 16_000),
    ];

    /// `secs` seconds of a sine at `freq_hz` with peak `amp`, sampled at `rate`.
    fn tone(freq_hz: f64, rate: u32, secs: f64, amp: f64) -> Vec<i16> {
        let n = (f64::from(rate) * secs) as usize;
        (0..n)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                (amp * (2.0 * std::f64::consts::PI * freq_hz * t).sin()).round() as i16
            })
            .collect()
    }

    fn rms(x: &[i16]) -> f64 {
        let sum: f64 = x.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
        (sum / x.len() as f64).sqrt()
    }

    fn db(ratio: f64) -> f64 {
        20.0 * ratio.log10()
    }

    /// Runs `input` through `r` in chunks of `chunk` samples, then without flushing.
    fn run_chunked(r: &mut Resampler, input: &[i16], chunk: usize) -> Vec<i16> {
        let mut out = Vec::with_capacity(r.max_output_len(input.len()));
        for c in input.chunks(chunk) {
            r.process(c, &mut out);
        }
        out
    }

    /// Level change of a tone through 8k -> 24k -> 8k, measured on the steady middle part.
    fn round_trip_gain_db(freq_hz: f64) -> f64 {
        let input = tone(freq_hz, 8_000, 1.0, 16_000.0);
        let mut up = Resampler::new(8_000, 24_000).unwrap();
        let mut down = Resampler::new(24_000, 8_000).unwrap();
        let mid = run_chunked(&mut up, &input, 160);
        let back = run_chunked(&mut down, &mid, 480);
        // Skip 100 ms of start-up transient (two 10 ms delays plus margin).
        let steady = &back[800..];
        let gain = db(rms(steady) / rms(&input[800..]));
        eprintln!("round trip 8k->24k->8k, {freq_hz} Hz: {gain:+.3} dB");
        gain
    }

    #[test]
    fn round_trip_keeps_1khz_within_half_a_db() {
        assert!(round_trip_gain_db(1_000.0).abs() <= 0.5);
    }

    #[test]
    fn round_trip_keeps_3400hz_within_one_db() {
        // The top of the telephone band; linear interpolation loses ~4.5 dB here (DESIGN.md).
        assert!(round_trip_gain_db(3_400.0).abs() <= 1.0);
    }

    #[test]
    fn downsampling_48k_to_24k_suppresses_15khz_by_40db() {
        // 15 kHz is above the 12 kHz Nyquist of the output: anything left of it is an alias at 9 kHz.
        let input = tone(15_000.0, 48_000, 1.0, 16_000.0);
        let mut r = Resampler::new(48_000, 24_000).unwrap();
        let out = run_chunked(&mut r, &input, 960);
        let left = rms(&out[2_400..]);
        let peak = out[2_400..]
            .iter()
            .map(|s| s.unsigned_abs())
            .max()
            .unwrap_or(0);
        // What is left rounds to zero in i16; count it as half an LSB so the figure stays finite.
        let atten = db(left.max(0.5) / rms(&input));
        eprintln!("48k->24k, 15 kHz: residue RMS {left:.3} LSB, peak {peak} LSB, <= {atten:.1} dB");
        assert!(atten <= -40.0, "only {atten:.1} dB");
    }

    #[test]
    fn upsampled_tone_matches_the_ideal_tone_shifted_by_the_delay() {
        // Catches imaging (8 kHz images of the tone above 4 kHz) and a wrong delay_samples alike:
        // the output must be the same sine, sampled at 24 kHz, `delay` samples late.
        for freq in [1_000.0, 3_000.0] {
            let input = tone(freq, 8_000, 1.0, 16_000.0);
            let mut r = Resampler::new(8_000, 24_000).unwrap();
            let out = run_chunked(&mut r, &input, 160);
            let delay = r.delay_samples();
            let ideal = tone(freq, 24_000, 1.0, 16_000.0);
            let err: Vec<i16> = out[2_400..]
                .iter()
                .zip(&ideal[2_400 - delay..])
                .map(|(&o, &i)| o - i)
                .collect();
            let snr = db(rms(&err).max(0.5) / rms(&ideal));
            eprintln!(
                "8k->24k, {freq} Hz: error vs ideal RMS {:.3} LSB, <= {snr:.1} dB",
                rms(&err)
            );
            assert!(snr <= -60.0, "{freq} Hz: error only {snr:.1} dB down");
        }
    }

    #[test]
    fn downsampling_48k_to_24k_passes_3400hz() {
        let input = tone(3_400.0, 48_000, 1.0, 16_000.0);
        let mut r = Resampler::new(48_000, 24_000).unwrap();
        let out = run_chunked(&mut r, &input, 960);
        let gain = db(rms(&out[2_400..]) / rms(&input));
        eprintln!("48k->24k, 3.4 kHz: {gain:+.3} dB");
        assert!(gain.abs() <= 0.1);
    }

    #[test]
    fn one_second_in_20ms_frames_gives_one_second_out() {
        for (from, to) in PAIRS {
            let mut r = Resampler::new(from, to).unwrap();
            let input = tone(440.0, from, 1.0, 8_000.0);
            let frame = (from / 50) as usize;
            let mut out = Vec::new();
            for c in input.chunks(frame) {
                let before = out.len();
                r.process(c, &mut out);
                // 20 ms in, 20 ms out, on every frame: the playout clock sees no bursts.
                assert_eq!(out.len() - before, (to / 50) as usize, "{from}->{to}");
            }
            let expected = to as usize;
            let delay = r.delay_samples();
            assert!(out.len().abs_diff(expected) <= delay, "{from}->{to}");
            assert_eq!(
                delay,
                (to / 100) as usize,
                "{from}->{to}: half a 20 ms block"
            );
            // Flushing hands out the filter tail: exactly the input's length plus the delay.
            r.flush(&mut out);
            assert_eq!(out.len(), expected + delay, "{from}->{to}");
        }
    }

    #[test]
    fn delay_samples_is_where_an_impulse_comes_out() {
        for (from, to) in PAIRS {
            let mut r = Resampler::new(from, to).unwrap();
            let mut input = vec![0i16; from as usize / 10];
            // An impulse at input time 25 ms should peak at output 25 ms + delay.
            let at_in = from as usize / 40;
            input[at_in] = 20_000;
            let out = run_chunked(&mut r, &input, 37);
            let peak = out
                .iter()
                .enumerate()
                .max_by_key(|(_, s)| s.unsigned_abs())
                .map(|(i, _)| i)
                .unwrap();
            assert_eq!(peak, to as usize / 40 + r.delay_samples(), "{from}->{to}");
        }
    }

    #[test]
    fn output_does_not_depend_on_input_chunking() {
        let input = tone(700.0, 8_000, 0.5, 12_000.0);
        let mut r = Resampler::new(8_000, 24_000).unwrap();
        let reference = run_chunked(&mut r, &input, 160);
        for chunk in [1, 3, 7, 159, 161, 1_000, 4_000] {
            r.reset();
            assert_eq!(
                run_chunked(&mut r, &input, chunk),
                reference,
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn odd_and_empty_inputs_do_not_panic() {
        let mut r = Resampler::new(48_000, 8_000).unwrap();
        let mut out = Vec::new();
        r.process(&[], &mut out);
        r.flush(&mut out);
        assert!(out.is_empty(), "nothing in, nothing out");
        r.process(&[1, 2, 3, 4, 5], &mut out);
        assert!(out.is_empty(), "less than a block is held back");
        r.flush(&mut out);
        // ceil(5 / 6) = 1 sample of signal plus the delay.
        assert_eq!(out.len(), 1 + r.delay_samples());
        // Full-scale square waves overshoot in the filter; the output clamps instead of wrapping.
        let square: Vec<i16> = (0..4_800)
            .map(|i| if i / 24 % 2 == 0 { i16::MAX } else { i16::MIN })
            .collect();
        out.clear();
        r.process(&square, &mut out);
        assert_eq!(out.len(), 800);
    }

    #[test]
    fn reset_gives_the_same_output_as_new() {
        let input = tone(1_000.0, 24_000, 0.2, 10_000.0);
        let mut r = Resampler::new(24_000, 48_000).unwrap();
        let first = run_chunked(&mut r, &input, 480);
        r.process(&input[..100], &mut Vec::new());
        r.reset();
        assert_eq!(run_chunked(&mut r, &input, 480), first);
    }

    #[test]
    fn unsupported_rates_are_rejected() {
        for (from, to) in [
            (8_000, 8_000),
            (44_100, 48_000),
            (0, 24_000),
            (24_000, 11_025),
        ] {
            assert!(matches!(
                Resampler::new(from, to),
                Err(ResampleError::UnsupportedRates { .. })
            ));
        }
    }
}
