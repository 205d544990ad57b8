//! The media leg of one call: composes the sans-IO media cores (symmetric-RTP latch, sequence
//! extension, jitter buffer, RFC 4733 DTMF, 20 ms playout, RTP sender) around one negotiated
//! codec. Sans-IO like its parts: the call task feeds it received datagrams and timeouts and
//! drains [`MediaLeg::poll_transmit`] and [`MediaLeg::poll_event`].
//!
//! Sources until the model bridge lands: `Echo` queues the caller's own frames for playout (no
//! transcoding), `Prompt` plays 8 kHz PCM in a loop, encoded to the call's codec.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::media::codec::{CodecKind, Encoder};
use crate::media::dtmf::DtmfReceiver;
use crate::media::jitter::{JitterBuffer, JitterConfig, Playout as JitterOut};
use crate::media::playout::{Playout, PlayoutConfig};
use crate::media::resample::Resampler;
use crate::media::rtp::{self, Latch, PayloadType, RtpSender, SeqExtender};
use crate::sip::sdp::{Codec, Direction, Negotiated};

/// Where the audio the caller hears comes from.
#[derive(Debug, Clone)]
pub enum MediaSource {
    /// The caller's own audio, sent back.
    Echo,
    /// 8 kHz mono PCM16, played in a loop.
    Prompt(Arc<Vec<i16>>),
    /// 8 kHz mono PCM16 played once, then [`MediaEvent::PromptDone`] (the model fallback).
    Once(Arc<Vec<i16>>),
    /// The model: caller frames go out as [`MediaEvent::CallerAudio`], agent frames come in
    /// through [`MediaLeg::push_agent_frame`].
    Model,
}

/// Something the call layer must know about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// A DTMF digit (RFC 4733 event or SIP INFO), reported once per key press.
    Digit(char),
    /// One 20 ms frame of the caller's audio, in the call's codec (model mode).
    CallerAudio(Vec<u8>),
    /// A play-once prompt finished.
    PromptDone,
}

/// Counters for the call summary.
#[derive(Debug, Clone, Default)]
pub struct MediaStats {
    /// Negotiated codec name.
    pub codec: String,
    /// RTP packets accepted from the caller (audio and DTMF).
    pub rtp_in: u64,
    /// RTP packets sent.
    pub rtp_out: u64,
    /// Packets the jitter buffer had to conceal.
    pub lost: u64,
    /// Packets that arrived after their playout time.
    pub late: u64,
    /// Packets from sources other than the latched peer, or unparseable.
    pub ignored: u64,
    /// Packets carrying our own SSRC (the far end echoes us: proves our audio reached it).
    pub echoed: u64,
    /// Packets dropped because the socket buffer was full.
    pub send_dropped: u64,
    /// Times the 20 ms playout schedule restarted because the task woke up too late.
    pub resyncs: u64,
    /// Frames dropped because the playout queue was full.
    pub playout_dropped: u64,
    /// Times agent audio ran out mid-response (the caller heard a gap).
    pub underruns: u64,
    /// RFC 3550 interarrival jitter of the caller's audio at the end, in microseconds.
    pub jitter_us: u64,
}

/// The media leg of one call. See the module doc.
pub struct MediaLeg {
    codec: CodecKind,
    pt: u8,
    dtmf_pt: Option<u8>,
    latch: Latch,
    seq: SeqExtender,
    jitter: JitterBuffer,
    dtmf: DtmfReceiver,
    playout: Playout,
    sender: RtpSender,
    source: MediaSource,
    /// Next sample of the prompt to play.
    prompt_pos: usize,
    encoder: Option<Encoder>,
    /// 8 kHz → codec rate for prompts on Opus calls.
    prompt_rs: Option<Resampler>,
    prompt_pcm: Vec<i16>,
    direction: Direction,
    /// Model mode: the last sequence number forwarded to the model.
    forwarded: Option<u64>,
    /// Arrival time and RTP timestamp of the previous audio packet (RFC 3550 jitter).
    arrival: Option<(Instant, u32)>,
    /// RFC 3550 interarrival jitter, in timestamp units.
    jitter_units: f64,
    last_rx: Instant,
    /// Samples per 20 ms frame at the codec's RTP clock rate.
    frame_samples: u32,
    transmit: VecDeque<(Vec<u8>, SocketAddr)>,
    events: VecDeque<MediaEvent>,
    stats: MediaStats,
}

/// Maps the SDP codec to the media codec.
fn kind(c: Codec) -> CodecKind {
    match c {
        Codec::Pcmu => CodecKind::Pcmu,
        Codec::Pcma => CodecKind::Pcma,
        Codec::Opus => CodecKind::Opus,
    }
}

impl MediaLeg {
    /// Creates the leg for a negotiated stream; `seed` seeds SSRC, sequence and timestamp.
    pub fn new(
        now: Instant,
        n: &Negotiated,
        source: MediaSource,
        jitter: Duration,
        seed: u64,
    ) -> Result<MediaLeg, String> {
        let codec = kind(n.codec);
        let mut rng = SmallRng::seed_from_u64(seed);
        let pt = PayloadType::new(n.payload_type).map_err(|e| e.to_string())?;
        // Every source but echo may need to encode PCM (the model source for its fallback).
        let encoder = match &source {
            MediaSource::Echo => None,
            _ => Some(Encoder::new(codec).map_err(|e| e.to_string())?),
        };
        let prompt_rs = match codec {
            CodecKind::Opus => Some(Resampler::new(8_000, 48_000).map_err(|e| e.to_string())?),
            _ => None,
        };
        let frame_samples = codec.clock_rate() / 50;
        Ok(MediaLeg {
            codec,
            pt: n.payload_type,
            dtmf_pt: n.telephone_event,
            latch: Latch::new(n.remote),
            seq: SeqExtender::new(),
            jitter: JitterBuffer::new(JitterConfig {
                target_delay: jitter,
                ..JitterConfig::default()
            }),
            dtmf: DtmfReceiver::new(),
            playout: Playout::new(now, PlayoutConfig::default()),
            sender: RtpSender::new(pt, codec.clock_rate(), &mut rng),
            source,
            prompt_pos: 0,
            encoder,
            prompt_rs,
            prompt_pcm: Vec::with_capacity(1920),
            direction: n.direction,
            forwarded: None,
            arrival: None,
            jitter_units: 0.0,
            last_rx: now,
            frame_samples,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            stats: MediaStats {
                codec: format!("{:?}", n.codec).to_lowercase(),
                ..MediaStats::default()
            },
        })
    }

    /// The call was confirmed (ACK): nothing to do today; media already flows after the 200.
    pub fn start(&mut self, _now: Instant) {}

    /// Applies a re-INVITE's new negotiation (hold/resume, new remote address).
    pub fn update(&mut self, now: Instant, n: &Negotiated) -> Result<(), String> {
        if kind(n.codec) != self.codec || n.payload_type != self.pt {
            // A codec change mid-call: rebuild, keeping the counters.
            let stats = std::mem::take(&mut self.stats);
            let seed = u64::from(self.pt) ^ now.elapsed().as_nanos() as u64;
            *self = MediaLeg::new(now, n, self.source.clone(), Duration::from_millis(40), seed)?;
            self.stats = MediaStats {
                codec: self.stats.codec.clone(),
                ..stats
            };
            return Ok(());
        }
        self.direction = n.direction;
        self.dtmf_pt = n.telephone_event;
        if let Some(remote) = n.remote {
            self.latch.set_expected(remote);
        }
        // Holding or resuming restarts the silence clock.
        self.last_rx = now;
        Ok(())
    }

    /// True while the caller has put us on hold (they send no media, by design).
    pub fn on_hold(&self) -> bool {
        matches!(self.direction, Direction::RecvOnly | Direction::Inactive)
            || self.latch.peer().is_none()
    }

    /// When the last RTP packet from the caller arrived.
    pub fn last_rx(&self) -> Instant {
        self.last_rx
    }

    /// Counters so far.
    pub fn stats(&self) -> MediaStats {
        let mut s = self.stats.clone();
        let j = self.jitter.stats();
        s.lost += j.lost;
        s.late += j.late + j.overflow;
        let p = self.playout.stats();
        s.resyncs = p.resyncs;
        s.playout_dropped = p.dropped;
        s.underruns = p.underruns;
        s.ignored += self.latch.ignored();
        s.jitter_us = (self.jitter_units * 1e6 / f64::from(self.codec.clock_rate().max(1))) as u64;
        s
    }

    /// RFC 3550 §6.4.1: J += (|D| - J) / 16, D the difference in transit time of two packets.
    fn update_jitter(&mut self, now: Instant, ts: u32) {
        if let Some((at, prev_ts)) = self.arrival {
            let rate = f64::from(self.codec.clock_rate());
            let arrival = now.saturating_duration_since(at).as_secs_f64() * rate;
            let sent = f64::from(ts.wrapping_sub(prev_ts) as i32);
            let d = (arrival - sent).abs();
            self.jitter_units += (d - self.jitter_units) / 16.0;
        }
        self.arrival = Some((now, ts));
    }

    /// Counts a packet the socket could not take.
    pub fn count_send_drop(&mut self) {
        self.stats.send_dropped += 1;
    }

    /// Handles one received datagram from `src`.
    pub fn on_rtp(&mut self, now: Instant, src: SocketAddr, data: &[u8]) {
        let Ok(pkt) = rtp::parse(data) else {
            self.stats.ignored += 1;
            return;
        };
        if pkt.ssrc() == self.sender.ssrc() {
            // Our own stream reflected back (e.g. SIPp -rtp_echo): proof it arrived; not audio.
            self.stats.echoed += 1;
            return;
        }
        if !self.latch.accept(src) {
            return;
        }
        self.last_rx = now;
        self.stats.rtp_in += 1;
        let pt = pkt.payload_type().get();
        if Some(pt) == self.dtmf_pt {
            if let Some(d) = self
                .dtmf
                .push(now, pkt.timestamp(), pkt.marker(), pkt.payload())
            {
                self.events.push_back(MediaEvent::Digit(d.digit));
            }
            return;
        }
        if pt != self.pt {
            self.stats.ignored += 1;
            return;
        }
        self.update_jitter(now, pkt.timestamp().0);
        let seq = self.seq.extend_ssrc(pkt.ssrc(), pkt.sequence());
        if matches!(self.source, MediaSource::Model) {
            // What the jitter buffer would refuse never reaches the model either: an empty
            // payload or one larger than any 20 ms frame of this codec (Opus tops out well
            // under 1,275 bytes; G.711 is 160). Its slot is filled by the gap logic below.
            let max = match self.codec {
                CodecKind::Opus => 1_275,
                CodecKind::Pcmu | CodecKind::Pcma => 480,
            };
            if pkt.payload().is_empty() || pkt.payload().len() > max {
                self.stats.ignored += 1;
                return;
            }
            // The model needs no playout clock: forward at once, in order, so the caller's
            // audio reaches it with no buffering delay. Duplicates and stale packets are
            // dropped; a short gap is filled with silence so the model's timeline stays true.
            let next = self.forwarded.map_or(seq.0, |f| f + 1);
            if seq.0 < next {
                self.stats.late += 1;
                return;
            }
            let gap = (seq.0 - next).min(5);
            let silence = match self.codec {
                CodecKind::Pcmu => Some(0xffu8),
                CodecKind::Pcma => Some(0xd5u8),
                CodecKind::Opus => None,
            };
            if let (Some(fill), true) = (silence, self.forwarded.is_some()) {
                for _ in 0..gap {
                    self.stats.lost += 1;
                    self.events
                        .push_back(MediaEvent::CallerAudio(vec![fill; pkt.payload().len()]));
                }
            }
            self.forwarded = Some(seq.0);
            self.events
                .push_back(MediaEvent::CallerAudio(pkt.payload().to_vec()));
            return;
        }
        self.jitter
            .push(now, seq, pkt.timestamp(), pkt.payload().to_vec());
    }

    /// When [`MediaLeg::handle_timeout`] is due next (the 20 ms playout tick).
    pub fn poll_timeout(&self) -> Option<Instant> {
        Some(self.playout.poll_timeout())
    }

    /// Runs every 20 ms tick that is due: refills playout from the source, sends one frame.
    pub fn handle_timeout(&mut self, now: Instant) {
        let resyncs = self.playout.stats().resyncs;
        while self.playout.poll_timeout() <= now {
            if self.playout.stats().resyncs != resyncs {
                break;
            }
            self.fill(now);
            let frame = self.playout.handle_timeout(now);
            let Some(frame) = frame else {
                continue;
            };
            if matches!(self.direction, Direction::RecvOnly | Direction::Inactive) {
                continue; // on hold: the caller asked us not to send
            }
            let Some(to) = self.latch.peer() else {
                continue;
            };
            let mut pkt = Vec::with_capacity(12 + frame.len());
            let marker = self.playout.take_talkspurt_start();
            self.sender
                .build(&frame, self.frame_samples, marker, &mut pkt);
            self.stats.rtp_out += 1;
            self.transmit.push_back((pkt, to));
        }
        if self.playout.stats().resyncs != resyncs {
            // We woke up too late to catch up: drop the caller's backlog rather than adding
            // its length to the echo delay for the rest of the call.
            self.jitter.trim(2);
        }
    }

    /// Moves one frame from the source into the playout queue (or, in model mode, hands the
    /// caller's frame to the call layer).
    fn fill(&mut self, now: Instant) {
        let popped = self.jitter.pop(now);
        match &self.source {
            MediaSource::Echo => {
                if let Some(JitterOut::Frame(payload)) = popped {
                    self.playout.push(payload);
                }
            }
            MediaSource::Model => match popped {
                Some(JitterOut::Frame(payload)) => {
                    self.events.push_back(MediaEvent::CallerAudio(payload))
                }
                // Keep the model's clock running through a lost G.711 frame with silence.
                Some(JitterOut::Lost) => match self.codec {
                    CodecKind::Pcmu => self
                        .events
                        .push_back(MediaEvent::CallerAudio(vec![0xff; 160])),
                    CodecKind::Pcma => self
                        .events
                        .push_back(MediaEvent::CallerAudio(vec![0xd5; 160])),
                    CodecKind::Opus => {}
                },
                None => {}
            },
            MediaSource::Prompt(pcm) | MediaSource::Once(pcm) => {
                let once = matches!(self.source, MediaSource::Once(_));
                let pcm = pcm.clone();
                if self.playout.queued() > 0 {
                    return;
                }
                if once && self.prompt_pos >= pcm.len() {
                    if self.prompt_pos != usize::MAX {
                        self.prompt_pos = usize::MAX;
                        self.events.push_back(MediaEvent::PromptDone);
                    }
                    return;
                }
                self.next_prompt_frame(&pcm, once);
            }
        }
    }

    /// Encodes the next 20 ms of an 8 kHz prompt into the playout queue.
    fn next_prompt_frame(&mut self, pcm: &[i16], once: bool) {
        if pcm.is_empty() {
            return;
        }
        let per = self.codec.samples_per_frame();
        let mut guard = 0;
        while self.prompt_pcm.len() < per && guard < 64 {
            guard += 1;
            let end = (self.prompt_pos + 160).min(pcm.len());
            let chunk = &pcm[self.prompt_pos.min(end)..end];
            self.prompt_pos = end;
            if !once && self.prompt_pos >= pcm.len() {
                self.prompt_pos = 0;
            }
            match &mut self.prompt_rs {
                Some(rs) => rs.process(chunk, &mut self.prompt_pcm),
                None => self.prompt_pcm.extend_from_slice(chunk),
            }
            if once && self.prompt_pos >= pcm.len() {
                if let Some(rs) = &mut self.prompt_rs {
                    rs.flush(&mut self.prompt_pcm);
                }
                self.prompt_pcm
                    .resize(self.prompt_pcm.len().div_ceil(per) * per, 0);
                break;
            }
        }
        if self.prompt_pcm.len() < per {
            return;
        }
        let frame: Vec<i16> = self.prompt_pcm.drain(..per).collect();
        if let Some(enc) = &mut self.encoder {
            let mut out = Vec::with_capacity(160);
            if enc.encode(&frame, &mut out).is_ok() {
                self.playout.push(out);
            }
        }
    }

    /// Queues one encoded 20 ms frame of the agent's voice (model mode); the first frame after
    /// silence goes out at once rather than waiting for the next tick.
    pub fn push_agent_frame(&mut self, now: Instant, frame: Vec<u8>) {
        self.playout.push_now(now, frame);
    }

    /// A new agent response starts: count what the caller hears from here.
    pub fn response_start(&mut self) {
        self.playout.mark_response_start();
    }

    /// Barge-in: drops the queued agent audio; returns how many ms of the response were heard.
    pub fn barge_in(&mut self) -> u64 {
        let heard = self.playout.played_ms();
        self.playout.flush();
        heard
    }

    /// True while agent audio is queued.
    pub fn is_playing(&self) -> bool {
        self.playout.is_playing()
    }

    /// Switches to playing `pcm` (8 kHz) once, e.g. the fallback when the model fails.
    pub fn play_once(&mut self, pcm: Arc<Vec<i16>>) {
        self.playout.flush();
        self.prompt_pos = 0;
        self.prompt_pcm.clear();
        if let Some(rs) = &mut self.prompt_rs {
            rs.reset();
        }
        if self.encoder.is_none() {
            self.encoder = Encoder::new(self.codec).ok();
        }
        self.source = MediaSource::Once(pcm);
    }

    /// Back to the model after a prompt (e.g. a failed transfer): caller audio goes to the
    /// model again and agent frames play.
    pub fn resume_model(&mut self) {
        self.playout.flush();
        self.source = MediaSource::Model;
    }

    /// True while a once-only prompt is still playing.
    pub fn prompt_playing(&self) -> bool {
        matches!(self.source, MediaSource::Once(_)) && self.prompt_pos != usize::MAX
    }

    /// Next datagram to send, and where.
    pub fn poll_transmit(&mut self) -> Option<(Vec<u8>, SocketAddr)> {
        self.transmit.pop_front()
    }

    /// Next event for the call layer.
    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }
}

/// Loads a prompt WAV as 8 kHz mono PCM16 (the format checked here, with a clear error).
pub fn load_wav_8k(path: &Path) -> anyhow::Result<Vec<i16>> {
    let reader = hound::WavReader::open(path)
        .map_err(|e| anyhow::anyhow!("{}: not a readable WAV file: {e}", path.display()))?;
    let spec = reader.spec();
    if spec.channels != 1
        || spec.sample_rate != 8000
        || spec.bits_per_sample != 16
        || spec.sample_format != hound::SampleFormat::Int
    {
        anyhow::bail!(
            "{}: prompt must be mono 16-bit PCM at 8000 Hz (found {} channel(s), {} Hz, {}-bit); convert with: sox IN.wav -r 8000 -c 1 -b 16 OUT.wav",
            path.display(),
            spec.channels,
            spec.sample_rate,
            spec.bits_per_sample
        );
    }
    reader
        .into_samples::<i16>()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{}: bad WAV data: {e}", path.display()))
}

/// Three short tones (8 kHz): what the caller hears on model failure when no fallback prompt is
/// configured — never silence.
pub fn fallback_tones() -> Vec<i16> {
    let mut pcm = Vec::with_capacity(8000 * 2);
    for _ in 0..3 {
        pcm.extend(
            (0..2400).map(|i| {
                ((i as f32 * 480.0 * std::f32::consts::TAU / 8000.0).sin() * 6000.0) as i16
            }),
        );
        pcm.extend(std::iter::repeat_n(0i16, 1600));
    }
    pcm
}
