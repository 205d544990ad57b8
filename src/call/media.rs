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
use crate::media::rtp::{self, Latch, PayloadType, RtpSender, SeqExtender};
use crate::sip::sdp::{Codec, Direction, Negotiated};

/// Where the audio the caller hears comes from.
#[derive(Debug, Clone)]
pub enum MediaSource {
    /// The caller's own audio, sent back.
    Echo,
    /// 8 kHz mono PCM16, played in a loop.
    Prompt(Arc<Vec<i16>>),
}

/// Something the call layer must know about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// A DTMF digit (RFC 4733 event or SIP INFO), reported once per key press.
    Digit(char),
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
    direction: Direction,
    last_rx: Instant,
    /// Samples per 20 ms frame at the codec's RTP clock rate.
    frame_samples: u32,
    transmit: VecDeque<(Vec<u8>, SocketAddr)>,
    events: VecDeque<MediaEvent>,
    stats: MediaStats,
    pcm: Vec<i16>,
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
        let encoder = match &source {
            MediaSource::Prompt(_) => Some(Encoder::new(codec).map_err(|e| e.to_string())?),
            MediaSource::Echo => None,
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
            direction: n.direction,
            last_rx: now,
            frame_samples,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            stats: MediaStats {
                codec: format!("{:?}", n.codec).to_lowercase(),
                ..MediaStats::default()
            },
            pcm: Vec::with_capacity(960),
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
        s.lost = j.lost;
        s.late = j.late;
        s.ignored += self.latch.ignored();
        s
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
        let seq = self.seq.extend(pkt.sequence());
        self.jitter
            .push(now, seq, pkt.timestamp(), pkt.payload().to_vec());
    }

    /// When [`MediaLeg::handle_timeout`] is due next (the 20 ms playout tick).
    pub fn poll_timeout(&self) -> Option<Instant> {
        Some(self.playout.poll_timeout())
    }

    /// Runs every 20 ms tick that is due: refills playout from the source, sends one frame.
    pub fn handle_timeout(&mut self, now: Instant) {
        while self.playout.poll_timeout() <= now {
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
    }

    /// Moves one frame from the source into the playout queue.
    fn fill(&mut self, now: Instant) {
        match &self.source {
            MediaSource::Echo => {
                if let Some(JitterOut::Frame(payload)) = self.jitter.pop(now) {
                    self.playout.push(payload);
                }
            }
            MediaSource::Prompt(pcm) => {
                // Drain the jitter buffer anyway so its counters stay meaningful.
                let _ = self.jitter.pop(now);
                if pcm.is_empty() || self.playout.queued() > 0 {
                    return;
                }
                let per = (self.codec.clock_rate() / 50) as usize;
                self.pcm.clear();
                let step = (self.codec.clock_rate() / 8000).max(1) as usize;
                while self.pcm.len() < per {
                    let s = pcm[self.prompt_pos % pcm.len()];
                    // 8 kHz prompt to the codec rate: sample-and-hold for Opus (test mode only).
                    for _ in 0..step {
                        self.pcm.push(s);
                    }
                    self.prompt_pos += 1;
                }
                self.pcm.truncate(per);
                if let Some(enc) = &mut self.encoder {
                    let mut out = Vec::with_capacity(160);
                    if enc.encode(&self.pcm, &mut out).is_ok() {
                        self.playout.push(out);
                    }
                }
            }
        }
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
