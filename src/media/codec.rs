//! Audio codecs behind one interface: G.711 µ-law and A-law (ITU-T G.711, via
//! audio-codec-algorithms, exact on all inputs) and Opus (RFC 6716 via libopus: 48 kHz mono,
//! VoIP application, 20 ms frames, with packet-loss concealment for the jitter buffer's `Lost`).

/// A codec we can speak on RTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecKind {
    /// G.711 µ-law, 8 kHz.
    Pcmu,
    /// G.711 A-law, 8 kHz.
    Pcma,
    /// Opus, 48 kHz RTP clock.
    Opus,
}

impl CodecKind {
    /// RTP clock rate (also the PCM rate we decode to).
    pub fn clock_rate(self) -> u32 {
        match self {
            CodecKind::Opus => 48_000,
            _ => 8_000,
        }
    }

    /// PCM samples in one 20 ms frame.
    pub fn samples_per_frame(self) -> usize {
        (self.clock_rate() / 50) as usize
    }
}

/// Codec failures (the peer sent something undecodable, or libopus refused).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// libopus reported an error.
    #[error("opus: {0}")]
    Opus(String),
}

impl From<opus::Error> for CodecError {
    fn from(e: opus::Error) -> Self {
        CodecError::Opus(e.to_string())
    }
}

/// Turns RTP payloads into PCM16 at the codec's clock rate.
pub enum Decoder {
    /// µ-law.
    Pcmu,
    /// A-law.
    Pcma,
    /// Opus (boxed: libopus state).
    Opus(Box<opus::Decoder>),
}

impl Decoder {
    /// A decoder for `kind`.
    pub fn new(kind: CodecKind) -> Result<Decoder, CodecError> {
        Ok(match kind {
            CodecKind::Pcmu => Decoder::Pcmu,
            CodecKind::Pcma => Decoder::Pcma,
            CodecKind::Opus => {
                Decoder::Opus(Box::new(opus::Decoder::new(48_000, opus::Channels::Mono)?))
            }
        })
    }

    /// Appends the PCM of `payload` to `out`.
    pub fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        match self {
            Decoder::Pcmu => out.extend(
                payload
                    .iter()
                    .map(|b| audio_codec_algorithms::decode_ulaw(*b)),
            ),
            Decoder::Pcma => out.extend(
                payload
                    .iter()
                    .map(|b| audio_codec_algorithms::decode_alaw(*b)),
            ),
            Decoder::Opus(d) => {
                let start = out.len();
                out.resize(start + 5_760, 0); // up to 120 ms at 48 kHz
                match d.decode(payload, &mut out[start..], false) {
                    Ok(n) => out.truncate(start + n),
                    Err(e) => {
                        out.truncate(start);
                        return Err(e.into());
                    }
                }
            }
        }
        Ok(())
    }

    /// Appends 20 ms of concealment for a lost frame (Opus PLC; silence for G.711).
    pub fn conceal(&mut self, out: &mut Vec<i16>) {
        match self {
            Decoder::Opus(d) => {
                let start = out.len();
                out.resize(start + 960, 0);
                if let Ok(n) = d.decode(&[], &mut out[start..], false) {
                    out.truncate(start + n);
                }
            }
            _ => out.extend(std::iter::repeat_n(0i16, 160)),
        }
    }
}

/// Turns 20 ms PCM16 frames into RTP payloads.
pub enum Encoder {
    /// µ-law.
    Pcmu,
    /// A-law.
    Pcma,
    /// Opus (boxed: libopus state).
    Opus(Box<opus::Encoder>),
}

impl Encoder {
    /// An encoder for `kind`.
    pub fn new(kind: CodecKind) -> Result<Encoder, CodecError> {
        Ok(match kind {
            CodecKind::Pcmu => Encoder::Pcmu,
            CodecKind::Pcma => Encoder::Pcma,
            CodecKind::Opus => Encoder::Opus(Box::new(opus::Encoder::new(
                48_000,
                opus::Channels::Mono,
                opus::Application::Voip,
            )?)),
        })
    }

    /// Appends the payload for `pcm` (one 20 ms frame at the codec's rate) to `out`.
    pub fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        match self {
            Encoder::Pcmu => {
                out.extend(pcm.iter().map(|s| audio_codec_algorithms::encode_ulaw(*s)))
            }
            Encoder::Pcma => {
                out.extend(pcm.iter().map(|s| audio_codec_algorithms::encode_alaw(*s)))
            }
            Encoder::Opus(e) => {
                let start = out.len();
                out.resize(start + 1_275, 0);
                match e.encode(pcm, &mut out[start..]) {
                    Ok(n) => out.truncate(start + n),
                    Err(err) => {
                        out.truncate(start);
                        return Err(err.into());
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                ((i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin() * 8000.0) as i16
            })
            .collect()
    }

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
    }

    #[test]
    fn g711_round_trips_within_quantisation() {
        for kind in [CodecKind::Pcmu, CodecKind::Pcma] {
            let pcm = tone(8000, 160);
            let mut enc = Encoder::new(kind).expect("enc");
            let mut dec = Decoder::new(kind).expect("dec");
            let mut payload = Vec::new();
            enc.encode(&pcm, &mut payload).expect("encode");
            assert_eq!(payload.len(), 160);
            let mut back = Vec::new();
            dec.decode(&payload, &mut back).expect("decode");
            for (a, b) in pcm.iter().zip(&back) {
                assert!(
                    (i32::from(*a) - i32::from(*b)).abs() <= 256,
                    "{kind:?}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn opus_round_trip_keeps_energy() {
        let mut enc = Encoder::new(CodecKind::Opus).expect("enc");
        let mut dec = Decoder::new(CodecKind::Opus).expect("dec");
        let pcm = tone(48_000, 960 * 10);
        let mut out = Vec::new();
        for frame in pcm.chunks(960) {
            let mut payload = Vec::new();
            enc.encode(frame, &mut payload).expect("encode");
            dec.decode(&payload, &mut out).expect("decode");
        }
        assert_eq!(out.len(), 9600);
        let (a, b) = (rms(&pcm[4800..]), rms(&out[4800..]));
        assert!((b / a - 1.0).abs() < 0.3, "rms {a} vs {b}");
        let mut plc = Vec::new();
        dec.conceal(&mut plc);
        assert_eq!(plc.len(), 960);
    }

    #[test]
    fn garbage_opus_is_an_error_not_a_panic() {
        let mut dec = Decoder::new(CodecKind::Opus).expect("dec");
        let mut out = Vec::new();
        let r = dec.decode(&[0xff, 0xff, 0xff, 0xff, 0x03], &mut out);
        assert!(r.is_err() || out.len() <= 5760);
    }
}
