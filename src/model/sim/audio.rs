//! Reply audio for the simulator: G.711 / PCM16 codecs, and speech or tones to say a reply.
//!
//! Speech comes from `espeak-ng --stdout` resampled by `sox` to the format's rate when both tools
//! are installed (run with `tokio::process`, cached by text and rate); otherwise, or with
//! `voice: tone`, a deterministic tone sequence of 60 ms per character (silence for spaces).

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use audio_codec_algorithms::{decode_alaw, decode_ulaw, encode_alaw, encode_ulaw};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tracing::debug;

use super::script::VoiceMode;
use crate::model::protocol::AudioFormat;

/// Tone length per character of reply text, ms.
pub const TONE_MS_PER_CHAR: usize = 60;

/// Decodes wire audio to linear samples (an odd trailing PCM byte is ignored).
pub fn decode(format: AudioFormat, bytes: &[u8]) -> Vec<i16> {
    match format {
        AudioFormat::Pcmu => bytes.iter().map(|&b| decode_ulaw(b)).collect(),
        AudioFormat::Pcma => bytes.iter().map(|&b| decode_alaw(b)).collect(),
        AudioFormat::Pcm24k => bytes
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect(),
    }
}

/// Encodes linear samples (already at the format's rate) to wire audio.
pub fn encode(format: AudioFormat, samples: &[i16]) -> Vec<u8> {
    match format {
        AudioFormat::Pcmu => samples.iter().map(|&s| encode_ulaw(s)).collect(),
        AudioFormat::Pcma => samples.iter().map(|&s| encode_alaw(s)).collect(),
        AudioFormat::Pcm24k => samples.iter().flat_map(|s| s.to_le_bytes()).collect(),
    }
}

/// The tone rendering of `text` at `rate`: 60 ms per character, pitch from the character.
pub fn tones(text: &str, rate: u32) -> Vec<i16> {
    let per_char = rate as usize * TONE_MS_PER_CHAR / 1000;
    let mut out = Vec::with_capacity(per_char * text.chars().count());
    for c in text.chars() {
        if c.is_whitespace() {
            out.extend(std::iter::repeat_n(0i16, per_char));
            continue;
        }
        let freq = 300.0 + (c as u32 % 16) as f64 * 40.0;
        out.extend((0..per_char).map(|i| {
            let t = i as f64 / rate as f64;
            (8000.0 * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16
        }));
    }
    out
}

/// Synthesized speech by (text, sample rate).
type SpeechCache = HashMap<(String, u32), Arc<Vec<i16>>>;

/// Speech synthesis with a per-server cache.
#[derive(Debug)]
pub struct Tts {
    mode: VoiceMode,
    cache: Mutex<SpeechCache>,
}

impl Tts {
    /// A synthesizer in `mode`.
    pub fn new(mode: VoiceMode) -> Self {
        Tts {
            mode,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// `text` spoken at `rate` Hz as linear samples.
    pub async fn say(&self, text: &str, rate: u32) -> Arc<Vec<i16>> {
        let key = (text.to_owned(), rate);
        if let Some(hit) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return hit.clone();
        }
        let samples = match self.mode {
            VoiceMode::Tone => tones(text, rate),
            VoiceMode::Auto => match espeak(text, rate).await {
                Ok(s) if !s.is_empty() => s,
                Ok(_) => tones(text, rate),
                Err(e) => {
                    debug!(error = %e, "espeak-ng/sox unavailable; using tones");
                    tones(text, rate)
                }
            },
        };
        let samples = Arc::new(samples);
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, samples.clone());
        samples
    }
}

/// `espeak-ng --stdout -v en text | sox -t wav - -t raw -r rate -e signed -b 16 -c 1 -L -`.
async fn espeak(text: &str, rate: u32) -> std::io::Result<Vec<i16>> {
    let wav = Command::new("espeak-ng")
        .args(["--stdout", "-v", "en", "--", text])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .await?;
    if !wav.status.success() {
        return Err(std::io::Error::other(format!("espeak-ng: {}", wav.status)));
    }
    let mut sox = Command::new("sox")
        .args(["-q", "-t", "wav", "-", "-t", "raw", "-r"])
        .arg(rate.to_string())
        .args(["-e", "signed", "-b", "16", "-c", "1", "-L", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let mut stdin = sox
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("sox stdin"))?;
    // Feed and drain concurrently so neither pipe can fill up and deadlock.
    let feed = tokio::spawn(async move {
        let _ = stdin.write_all(&wav.stdout).await;
    });
    let out = sox.wait_with_output().await?;
    let _ = feed.await;
    if !out.status.success() {
        return Err(std::io::Error::other(format!("sox: {}", out.status)));
    }
    Ok(decode(AudioFormat::Pcm24k, &out.stdout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g711_round_trip_is_close() {
        for f in [AudioFormat::Pcmu, AudioFormat::Pcma] {
            let s = tones("ab", 8000);
            let back = decode(f, &encode(f, &s));
            assert_eq!(back.len(), s.len());
            assert!(s.iter().zip(&back).all(|(a, b)| (a - b).abs() < 300));
        }
        let s = [1i16, -2, 300];
        assert_eq!(
            decode(AudioFormat::Pcm24k, &encode(AudioFormat::Pcm24k, &s)),
            s
        );
    }

    #[test]
    fn tones_last_60_ms_per_char() {
        assert_eq!(tones("hi you", 8000).len(), 6 * 480);
        assert_eq!(tones("hi", 24000).len(), 2 * 1440);
    }
}
