//! Reading an offer: which audio stream and codec to accept, where the peer wants RTP, which
//! direction and packet time it asked for. Lenient by design: an attribute we cannot read is
//! skipped, never an error, so one odd line from a peer does not fail the whole call.

use std::net::IpAddr;

use sdp_types::{AddrType, Media, NetType, RtpMap, Session, TransportProto};

use super::{Codec, Direction, SdpError};

/// The audio stream we accept and what we accept on it.
#[derive(Debug)]
pub(super) struct Accepted {
    /// Position of the stream among the offer's `m=` lines.
    pub index: usize,
    /// Our most preferred codec among the offered ones.
    pub codec: Codec,
    /// The offerer's payload type for `codec`.
    pub payload_type: u8,
    /// The offerer's telephone-event payload type at `codec`'s clock rate.
    pub telephone_event: Option<u8>,
}

/// One offered RTP format, from `a=rtpmap` or RFC 3551's static table.
#[derive(Debug)]
struct Format {
    pt: u8,
    /// Encoding name as offered (case preserved); empty when the payload type is unknown.
    name: String,
    clock_rate: u32,
    /// From the rtpmap encoding parameters; 1 when absent, 0 when unreadable (matches nothing).
    channels: u8,
}

impl Format {
    /// Same encoding (case-insensitive), clock rate and channel count.
    fn is(&self, name: &str, clock_rate: u32, channels: u8) -> bool {
        self.name.eq_ignore_ascii_case(name)
            && self.clock_rate == clock_rate
            && self.channels == channels
    }

    /// `name/rate[/channels]` for error messages, `PT <n>` when unknown.
    fn describe(&self) -> String {
        match (self.name.is_empty(), self.channels) {
            (true, _) => format!("PT {}", self.pt),
            (false, 1) => format!("{}/{}", self.name, self.clock_rate),
            (false, ch) => format!("{}/{}/{}", self.name, self.clock_rate, ch),
        }
    }
}

/// Static audio payload types, RFC 3551 table 4 (name, clock rate, channels).
fn static_format(pt: u8) -> Option<(&'static str, u32, u8)> {
    Some(match pt {
        0 => ("PCMU", 8_000, 1),
        3 => ("GSM", 8_000, 1),
        4 => ("G723", 8_000, 1),
        5 => ("DVI4", 8_000, 1),
        6 => ("DVI4", 16_000, 1),
        7 => ("LPC", 8_000, 1),
        8 => ("PCMA", 8_000, 1),
        9 => ("G722", 8_000, 1),
        10 => ("L16", 44_100, 2),
        11 => ("L16", 44_100, 1),
        12 => ("QCELP", 8_000, 1),
        13 => ("CN", 8_000, 1),
        14 => ("MPA", 90_000, 1),
        15 => ("G728", 8_000, 1),
        16 => ("DVI4", 11_025, 1),
        17 => ("DVI4", 22_050, 1),
        18 => ("G729", 8_000, 1),
        _ => return None,
    })
}

/// The `m=` line's formats, in offer order. Tokens that are not a 7-bit payload type are
/// skipped; an `a=rtpmap` wins over the static table, as the offerer said what it means.
fn formats(media: &Media) -> Vec<Format> {
    let rtpmaps: Vec<RtpMap> = media.attributes_typed::<RtpMap>().flatten().collect();
    media
        .fmt
        .split_ascii_whitespace()
        .filter_map(|token| token.parse::<u8>().ok().filter(|pt| *pt < 128))
        .map(|pt| match rtpmaps.iter().find(|m| m.payload_type == pt) {
            Some(map) => Format {
                pt,
                name: map.encoding_name.clone(),
                clock_rate: map.clock_rate,
                channels: match map.encoding_params.as_deref().map(str::trim) {
                    None | Some("") => 1,
                    Some(params) => params.parse().unwrap_or(0),
                },
            },
            None => {
                let (name, clock_rate, channels) = static_format(pt).unwrap_or(("", 0, 0));
                Format {
                    pt,
                    name: name.to_owned(),
                    clock_rate,
                    channels,
                }
            }
        })
        .collect()
}

/// An `m=audio` line the offerer has not removed (RFC 3264 §8.2: port 0 removes a stream).
fn is_active_audio(media: &Media) -> bool {
    media.media.eq_ignore_ascii_case("audio") && media.port != 0
}

/// RTP without SRTP or DTLS, with or without RTCP feedback (RFC 4585).
fn is_plain_rtp(media: &Media) -> bool {
    matches!(
        media.parse_transport_proto(),
        TransportProto::RtpAvp | TransportProto::RtpAvpf
    )
}

/// Picks the first active plain-RTP audio stream that has one of `prefs`, and our most
/// preferred codec on it (RFC 3264 §6.1: the answerer's preference decides).
pub(super) fn select_audio(session: &Session, prefs: &[Codec]) -> Result<Accepted, SdpError> {
    let mut offered = Vec::new();
    let mut saw_plain_rtp = false;
    for (index, media) in session.medias.iter().enumerate() {
        if !is_active_audio(media) || !is_plain_rtp(media) {
            continue;
        }
        saw_plain_rtp = true;
        let formats = formats(media);
        let chosen = prefs.iter().find_map(|codec| {
            formats
                .iter()
                .find(|f| f.is(codec.encoding_name(), codec.clock_rate(), codec.channels()))
                .map(|f| (*codec, f.pt))
        });
        if let Some((codec, payload_type)) = chosen {
            // RFC 4733 §2.1: events share the audio codec's clock.
            let telephone_event = formats
                .iter()
                .find(|f| f.is("telephone-event", codec.clock_rate(), 1))
                .map(|f| f.pt);
            return Ok(Accepted {
                index,
                codec,
                payload_type,
                telephone_event,
            });
        }
        offered.extend(formats.iter().map(Format::describe));
    }
    if saw_plain_rtp {
        return Err(SdpError::NoCommonCodec { offered });
    }
    let protos: Vec<String> = session
        .medias
        .iter()
        .filter(|m| is_active_audio(m))
        .map(|m| m.proto.clone())
        .collect();
    if protos.is_empty() {
        Err(SdpError::NoAudio)
    } else {
        Err(SdpError::UnsupportedTransport { offered: protos })
    }
}

/// The stream's unicast address (media-level `c=` wins over session-level) and whether it is
/// the unspecified address of an RFC 2543 hold.
pub(super) fn connection(session: &Session, media: &Media) -> Result<(IpAddr, bool), SdpError> {
    let c = media
        .connections
        .first()
        .or(session.connection.as_ref())
        .ok_or(SdpError::NoConnection)?;
    let unsupported = || SdpError::UnsupportedConnection {
        address: format!(
            "{} {} {}",
            c.nettype.as_str(),
            c.addrtype.as_str(),
            c.connection_address
        ),
    };
    if c.nettype != NetType::In {
        return Err(unsupported());
    }
    let ip = c.try_address().map_err(|_| unsupported())?.ip;
    let family_matches = matches!(
        (&c.addrtype, ip),
        (AddrType::Ip4, IpAddr::V4(_)) | (AddrType::Ip6, IpAddr::V6(_))
    );
    if !family_matches || ip.is_multicast() {
        return Err(unsupported());
    }
    Ok((ip, ip.is_unspecified()))
}

/// The first direction attribute among `names`, if any.
fn direction_in<'a>(mut names: impl Iterator<Item = &'a str>) -> Option<Direction> {
    names.find_map(|name| {
        [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ]
        .into_iter()
        .find(|d| name.eq_ignore_ascii_case(d.as_str()))
    })
}

/// The offerer's direction: media level, else session level, else sendrecv (RFC 3264 §5.1).
pub(super) fn direction(session: &Session, media: &Media) -> Direction {
    direction_in(media.attributes.iter().map(|a| a.attribute.as_str()))
        .or_else(|| direction_in(session.attributes.iter().map(|a| a.attribute.as_str())))
        .unwrap_or(Direction::SendRecv)
}

/// Longest packet time we take from a peer, in ms; anything above is treated as garbage.
const MAX_PTIME_MS: u32 = 1_000;

/// The offered `a=ptime` in whole ms (media level, else session level), if readable and sane.
/// RFC 4566 §6 allows decimals ("a=ptime:20.0"), which are rounded.
pub(super) fn ptime(session: &Session, media: &Media) -> Option<u32> {
    let value = media
        .get_first_attribute_value("ptime")
        .or_else(|| session.get_first_attribute_value("ptime"))??
        .trim();
    let ms = match value.parse::<u32>() {
        Ok(ms) => ms,
        Err(_) => {
            let ms = value.parse::<f64>().ok()?.round();
            if !(1.0..=f64::from(MAX_PTIME_MS)).contains(&ms) {
                return None;
            }
            // In range 1..=1000 just checked, so the cast is exact.
            ms as u32
        }
    };
    (1..=MAX_PTIME_MS).contains(&ms).then_some(ms)
}
