//! RFC 3264 SDP offer/answer for voxgate's one audio stream, as a pure function.
//!
//! [`answer`] takes the SDP body of an INVITE or re-INVITE and the operator's [`LocalMedia`] and
//! returns the answer body together with the [`Negotiated`] parameters that the call layer hands
//! to media. It reads no clock, keeps no state between offers and never panics on peer input:
//! every way an offer can fail is an [`SdpError`], and [`SdpError::status_code`] says which SIP
//! final response carries the failure.
//!
//! Implemented:
//! - RFC 3264 §6 and §6.1: one answer `m=` line per offered `m=` line, in offer order. The first
//!   usable audio stream (`RTP/AVP` or `RTP/AVPF`, port ≠ 0, a codec in common) is accepted; every
//!   other stream is rejected with port 0 and its offered format list. The answer keeps the
//!   offerer's payload type numbers, copies the offer's `t=` line and mirrors its direction.
//! - RFC 3264 §8.2 and §8.4: a stream offered with port 0 is removed, not held, and stays at
//!   port 0; if no other audio is left the offer is [`SdpError::NoAudio`] (a 488 to a re-INVITE
//!   leaves the session as it was). Hold and resume work by direction attributes and by the older
//!   RFC 2543 `c=0.0.0.0`, which means "they will not receive": the stream is then at most
//!   sendonly from their side and [`Negotiated::remote`] is `None`.
//! - RFC 4566 §5.7, §5.14 and §6: `c=` at session or media level (media level wins), `IN IP4` and
//!   `IN IP6`; `a=rtpmap` with case-insensitive encoding names; static payload types 0 (PCMU) and
//!   8 (PCMA) without `a=rtpmap` (RFC 3551 table 4); `a=ptime`; session-level direction
//!   attributes as the default for each stream.
//! - RFC 4733 §2.1 and §7.1: `telephone-event` at the chosen codec's RTP clock rate is kept with
//!   the offerer's payload type and answered with `a=fmtp:<pt> 0-16`.
//! - RFC 7587 §6 and §7: opus only as `opus/48000/2`, answered with [`OPUS_FMTP`].
//!
//! Left out on purpose:
//! - SRTP and DTLS (`RTP/SAVP`, `RTP/SAVPF`, `UDP/TLS/RTP/SAVPF`, …): such streams are rejected
//!   with port 0, and an offer with nothing else is [`SdpError::UnsupportedTransport`].
//! - ICE, BUNDLE, `a=rtcp`, `a=rtcp-mux`, `b=` lines: not read and not answered.
//! - Multicast and FQDN connection addresses: resolving a name would be I/O, so both are
//!   [`SdpError::UnsupportedConnection`].
//! - Building an offer of our own (for an INVITE without a body) and comparing a re-offer with the
//!   previous answer: the caller owns the session and bumps [`LocalMedia::session_version`].
//! - More than one codec in the answer (RFC 3264 §6.1 allows a list): one codec means the peer
//!   never switches payload type mid-call, which keeps the media layer simple.

mod build;
mod offer;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, SocketAddr};

/// Format parameters we answer for opus (RFC 7587 §7).
///
/// They describe what we want to receive and what we send: mono both ways. Everything else is
/// left at its RFC 7587 default (no FEC or DTX promised) because the media layer does not
/// promise to use them.
pub const OPUS_FMTP: &str = "stereo=0;sprop-stereo=0";

/// The DTMF events we accept in the answer's `a=fmtp` for telephone-event (RFC 4733 §3.2):
/// digits 0-9, `*`, `#`, A-D and flash.
const TELEPHONE_EVENTS: &str = "0-16";

/// Audio codecs voxgate can speak, in SDP terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law, `PCMU/8000`, static payload type 0.
    Pcmu,
    /// G.711 A-law, `PCMA/8000`, static payload type 8.
    Pcma,
    /// Opus, always signalled as `opus/48000/2` whatever is actually sent (RFC 7587 §7).
    Opus,
}

impl Codec {
    /// Encoding name as written in `a=rtpmap`.
    pub const fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::Opus => "opus",
        }
    }

    /// RTP clock rate in Hz, as written in `a=rtpmap`.
    pub const fn clock_rate(self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma => 8_000,
            Codec::Opus => 48_000,
        }
    }

    /// Channel count as written in `a=rtpmap` (1 when the rtpmap has none).
    pub const fn channels(self) -> u8 {
        match self {
            Codec::Pcmu | Codec::Pcma => 1,
            Codec::Opus => 2,
        }
    }

    /// Static payload type from RFC 3551 table 4, if the codec has one.
    pub const fn static_payload_type(self) -> Option<u8> {
        match self {
            Codec::Pcmu => Some(0),
            Codec::Pcma => Some(8),
            Codec::Opus => None,
        }
    }
}

/// What we offer to the peer: our RTP socket, codec preferences and `o=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    /// Our RTP address, written in `c=` and `o=`.
    pub addr: IpAddr,
    /// Our RTP port, written in the accepted `m=` line.
    pub port: u16,
    /// Codecs we accept, most preferred first (operator configuration).
    pub codecs: Vec<Codec>,
    /// Packet time we want to receive, in milliseconds (`a=ptime`, normally 20).
    pub ptime_ms: u32,
    /// `o=` session id; stays the same for the whole dialog.
    pub session_id: u64,
    /// `o=` session version; the caller bumps it for every new answer in the dialog (RFC 3264 §8).
    pub session_version: u64,
    /// `o=` username, e.g. "voxgate"; runs of whitespace become `_`, and empty becomes `-`.
    pub username: String,
}

/// Our direction for the audio stream, as written in the answer (RFC 3264 §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// We send and receive.
    SendRecv,
    /// We only send (the peer offered recvonly).
    SendOnly,
    /// We only receive (the peer put us on hold with sendonly or `c=0.0.0.0`).
    RecvOnly,
    /// Neither side sends.
    Inactive,
}

impl Direction {
    /// Attribute name as written in SDP (`a=sendrecv`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The same stream seen from the other end (sendonly ↔ recvonly).
    pub const fn reverse(self) -> Self {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            other => other,
        }
    }
}

/// Media parameters agreed by one offer/answer exchange, for the call layer to hand to media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The one codec both sides use.
    pub codec: Codec,
    /// The codec's payload type, as numbered by the offerer (7 bits).
    pub payload_type: u8,
    /// RTP clock rate of the codec in Hz (8000, or 48000 for opus).
    pub clock_rate: u32,
    /// Channel count in SDP terms: 2 for opus even though voice is sent mono.
    pub channels: u8,
    /// Payload type of telephone-event at the codec's clock rate, if the offer had one.
    pub telephone_event: Option<u8>,
    /// Where to send RTP: effective `c=` and `m=` port; `None` when the peer put the call on
    /// hold with an unspecified address (`0.0.0.0` or `::`).
    pub remote: Option<SocketAddr>,
    /// OUR direction, as written in the answer.
    pub direction: Direction,
    /// Packet time to send with, in ms: the offer's `a=ptime` if any, else ours.
    pub ptime_ms: u32,
    /// The `a=fmtp` parameters we answered for opus ([`OPUS_FMTP`]); `None` for G.711.
    pub opus_fmtp: Option<String>,
}

/// An SDP answer body and what it agreed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The answer body with CRLF line endings, for the 200 OK (or reliable 18x) carrying it.
    pub sdp: Vec<u8>,
    /// The parameters the answer agreed to.
    pub negotiated: Negotiated,
}

/// Why an offer could not be answered; every variant is the peer's doing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// The body is not SDP (RFC 4566 syntax error); carries the parser's message.
    #[error("unparseable SDP body: {0}")]
    Unparseable(String),
    /// No `m=audio` line with a non-zero port.
    #[error("the offer has no active audio stream")]
    NoAudio,
    /// Active audio was offered, but only over transports we do not speak (SRTP, DTLS, …).
    #[error("audio offered only over unsupported transports {offered:?}")]
    UnsupportedTransport {
        /// The offered transport protocols, e.g. `RTP/SAVP`.
        offered: Vec<String>,
    },
    /// Usable audio streams, but none with a codec of ours.
    #[error("no codec in common; offered {offered:?}")]
    NoCommonCodec {
        /// The offered formats as `name/rate[/channels]`, or `PT <n>` when unknown.
        offered: Vec<String>,
    },
    /// The accepted audio stream has no `c=` line at media or session level.
    #[error("no c= line for the audio stream")]
    NoConnection,
    /// The `c=` line is not a unicast IP address we can send to (FQDN, multicast, non-IN, …).
    #[error("unusable connection address {address:?}")]
    UnsupportedConnection {
        /// The connection line as offered, `nettype addrtype address`.
        address: String,
    },
}

impl SdpError {
    /// SIP status code for the final response that rejects the offer.
    ///
    /// A body that is not SDP at all is a malformed request: 400 (RFC 3261 §21.4.1). Everything
    /// else is a well-formed offer we cannot accept: 488 Not Acceptable Here (RFC 3261 §21.4.26,
    /// RFC 3264 §6), which in a re-INVITE leaves the existing session untouched.
    pub fn status_code(&self) -> u16 {
        match self {
            SdpError::Unparseable(_) => 400,
            SdpError::NoAudio
            | SdpError::UnsupportedTransport { .. }
            | SdpError::NoCommonCodec { .. }
            | SdpError::NoConnection
            | SdpError::UnsupportedConnection { .. } => 488,
        }
    }
}

/// Answers an SDP offer (RFC 3264 §6) with one audio stream in our codec preference order.
pub fn answer(offer: &[u8], local: &LocalMedia) -> Result<Answer, SdpError> {
    let session =
        sdp_types::Session::parse(offer).map_err(|e| SdpError::Unparseable(e.to_string()))?;
    let accepted = offer::select_audio(&session, &local.codecs)?;
    let media = &session.medias[accepted.index];
    let (ip, unspecified) = offer::connection(&session, media)?;
    let offered = offer::direction(&session, media);
    // RFC 3264 §8.4: c=0.0.0.0 is RFC 2543 hold, "do not send to me"; whatever the direction
    // attribute says, the offerer does not receive.
    let offered = if unspecified {
        match offered {
            Direction::SendRecv | Direction::SendOnly => Direction::SendOnly,
            Direction::RecvOnly | Direction::Inactive => Direction::Inactive,
        }
    } else {
        offered
    };
    let negotiated = Negotiated {
        codec: accepted.codec,
        payload_type: accepted.payload_type,
        clock_rate: accepted.codec.clock_rate(),
        channels: accepted.codec.channels(),
        telephone_event: accepted.telephone_event,
        remote: (!unspecified).then(|| SocketAddr::new(ip, media.port)),
        direction: offered.reverse(),
        ptime_ms: offer::ptime(&session, media).unwrap_or(local.ptime_ms),
        opus_fmtp: (accepted.codec == Codec::Opus).then(|| OPUS_FMTP.to_owned()),
    };
    tracing::debug!(
        codec = ?negotiated.codec,
        pt = negotiated.payload_type,
        remote = ?negotiated.remote,
        direction = negotiated.direction.as_str(),
        "sdp offer answered"
    );
    let sdp = build::answer_sdp(&session, accepted.index, &negotiated, local);
    Ok(Answer { sdp, negotiated })
}
