//! Recorded prompts: WAV files checked at load time so a bad file is found by `voxgate check`, not
//! by a caller hearing silence.
//!
//! A prompt must be a mono, 16-bit PCM WAV at 8000 Hz: that is what telephony plays without
//! resampling (the call flow encodes it to G.711 or Opus). A relative path is resolved against the
//! folder of the dialplan file that names it, and stored absolute.

use std::path::{Path, PathBuf};

/// Sample rate prompts must have, in Hz.
pub const PROMPT_RATE: u32 = 8000;

/// Resolve `written` against `dir` and check the file. Returns the absolute path, or a message.
pub fn check_prompt(dir: &Path, written: &str) -> Result<PathBuf, String> {
    let joined = dir.join(written);
    let path = std::path::absolute(&joined).unwrap_or(joined);
    if !path.is_file() {
        return Err(format!(
            "prompt '{written}' not found (looked for {}); fix the path (relative paths start \
             at the dialplan's folder) or generate the prompts with scripts/gen-prompts",
            path.display()
        ));
    }
    let reader = hound::WavReader::open(&path)
        .map_err(|e| format!("prompt '{written}' is not a readable WAV file ({e})"))?;
    let spec = reader.spec();
    let pcm16 = spec.sample_format == hound::SampleFormat::Int && spec.bits_per_sample == 16;
    if spec.channels != 1 || spec.sample_rate != PROMPT_RATE || !pcm16 {
        let format = match spec.sample_format {
            hound::SampleFormat::Int => "PCM",
            hound::SampleFormat::Float => "float",
        };
        return Err(format!(
            "prompt '{written}' is {} Hz, {} channel{}, {}-bit {format}; prompts must be mono \
             16-bit PCM at 8000 Hz (convert with: sox IN.wav -r 8000 -c 1 -b 16 -e signed-integer \
             OUT.wav)",
            spec.sample_rate,
            spec.channels,
            if spec.channels == 1 { "" } else { "s" },
            spec.bits_per_sample
        ));
    }
    if reader.duration() == 0 {
        return Err(format!("prompt '{written}' contains no audio"));
    }
    Ok(path)
}
