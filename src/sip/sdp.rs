//! SDP offer/answer for a UAS (RFC 3264 §6, SDP syntax RFC 4566 via sdp-types): a pure function
//! from the caller's offer and our local media settings to the answer and what was negotiated.
//!
//! The first usable audio stream (RTP/AVP or RTP/AVPF) is accepted; every other m= line is
//! rejected with port 0, keeping the m= count and order (§6). The codec is the first of OUR
//! preference list that the offer contains, with the offerer's payload type numbers; RFC 4733
//! telephone-event is kept when offered. Direction is mirrored (§6.1); `c=0.0.0.0` is the RFC
//! 2543 hold. Left out: SRTP (SAVP streams are rejected), ICE, multiple audio streams, and
//! making offers (offerless INVITEs are refused by the call layer).

use std::net::{IpAddr, SocketAddr};

use sdp_types::{Attribute, Connection, Media, Origin, Session, Time};

/// Audio codecs voxgate can speak, in SDP terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// G.711 µ-law, `PCMU/8000`, static payload type 0.
    Pcmu,
    /// G.711 A-law, `PCMA/8000`, static payload type 8.
    Pcma,
    /// Opus, `opus/48000/2` (RFC 7587).
    Opus,
}

impl Codec {
    fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::Opus => "opus",
        }
    }
    fn clock_rate(self) -> u32 {
        match self {
            Codec::Opus => 48_000,
            _ => 8_000,
        }
    }
    fn channels(self) -> u8 {
        match self {
            Codec::Opus => 2,
            _ => 1,
        }
    }
    fn static_pt(self) -> Option<u8> {
        match self {
            Codec::Pcmu => Some(0),
            Codec::Pcma => Some(8),
            Codec::Opus => None,
        }
    }
}

/// Our side of the media: where we receive RTP and what we prefer.
#[derive(Debug, Clone)]
pub struct LocalMedia {
    /// Our RTP address for `c=`.
    pub addr: IpAddr,
    /// Our RTP port for `m=`.
    pub port: u16,
    /// Codec preference order (operator-configurable).
    pub codecs: Vec<Codec>,
    /// Our packetisation time in milliseconds.
    pub ptime_ms: u32,
    /// `o=` session id.
    pub session_id: u64,
    /// `o=` session version; the caller bumps it for every new answer in the dialog.
    pub session_version: u64,
    /// `o=` username.
    pub username: String,
}

/// A media direction (RFC 3264 §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Both ways.
    SendRecv,
    /// We only send.
    SendOnly,
    /// We only receive.
    RecvOnly,
    /// Neither.
    Inactive,
}

/// What the offer/answer settled on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The codec.
    pub codec: Codec,
    /// Its payload type (the offerer's number).
    pub payload_type: u8,
    /// RTP clock rate.
    pub clock_rate: u32,
    /// Channels in SDP terms (2 for Opus).
    pub channels: u8,
    /// Payload type of telephone-event, if offered at a usable rate.
    pub telephone_event: Option<u8>,
    /// Where the caller receives RTP; `None` on hold (`c=0.0.0.0` or port 0).
    pub remote: Option<SocketAddr>,
    /// OUR direction in the answer.
    pub direction: Direction,
    /// The caller's ptime if given, else ours.
    pub ptime_ms: u32,
    /// The fmtp we answered for Opus.
    pub opus_fmtp: Option<String>,
}

/// The answer body and its meaning.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The SDP answer, CRLF line endings.
    pub sdp: Vec<u8>,
    /// What was negotiated.
    pub negotiated: Negotiated,
}

/// Why an offer could not be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// The body is not SDP (peer's fault).
    #[error("unparseable SDP: {0}")]
    Unparseable(String),
    /// No RTP/AVP audio stream in the offer.
    #[error("no usable audio stream in the offer")]
    NoAudio,
    /// The audio stream offers none of our codecs.
    #[error("no common codec: offered {}", .offered.join(", "))]
    NoCommonCodec {
        /// What the offer listed.
        offered: Vec<String>,
    },
    /// Neither the session nor the audio stream has a usable `c=` line.
    #[error("no connection address for the audio stream")]
    NoConnection,
}

impl SdpError {
    /// The SIP status to answer with: 400 for a body that is not SDP, 488 otherwise (RFC 3261
    /// §13.3.1.3: "Not Acceptable Here" when the session description cannot be accepted).
    pub fn status_code(&self) -> u16 {
        match self {
            SdpError::Unparseable(_) => 400,
            _ => 488,
        }
    }
}

fn attr<'a>(attrs: &'a [Attribute], name: &str) -> impl Iterator<Item = &'a str> + 'a {
    let name = name.to_string();
    attrs
        .iter()
        .filter(move |a| a.attribute.eq_ignore_ascii_case(&name))
        .map(|a| a.value.as_deref().unwrap_or(""))
}

fn direction_of(attrs: &[Attribute]) -> Option<Direction> {
    attrs
        .iter()
        .find_map(|a| match a.attribute.to_ascii_lowercase().as_str() {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        })
}

/// `(pt, encoding name, clock rate, channels)` for each rtpmap of a stream.
fn rtpmaps(m: &Media) -> Vec<(u8, String, u32, u8)> {
    attr(&m.attributes, "rtpmap")
        .filter_map(|v| {
            let (pt, enc) = v.split_once(' ')?;
            let mut parts = enc.trim().split('/');
            let name = parts.next()?.to_string();
            let rate = parts.next()?.parse().ok()?;
            let ch = parts.next().and_then(|c| c.parse().ok()).unwrap_or(1);
            Some((pt.trim().parse().ok()?, name, rate, ch))
        })
        .collect()
}

fn connection_addr(c: &Connection) -> Option<IpAddr> {
    c.connection_address
        .split('/')
        .next()
        .and_then(|a| a.trim().parse().ok())
}

/// Answers `offer` (RFC 3264 §6) with our `local` media.
pub fn answer(offer: &[u8], local: &LocalMedia) -> Result<Answer, SdpError> {
    let parsed = std::panic::catch_unwind(|| Session::parse(offer))
        .map_err(|_| SdpError::Unparseable("parser failure".into()))?
        .map_err(|e| SdpError::Unparseable(e.to_string()))?;
    let is_audio = |m: &Media| {
        m.media.eq_ignore_ascii_case("audio")
            && m.port != 0
            && (m.proto.eq_ignore_ascii_case("RTP/AVP") || m.proto.eq_ignore_ascii_case("RTP/AVPF"))
    };
    let idx = parsed
        .medias
        .iter()
        .position(is_audio)
        .ok_or(SdpError::NoAudio)?;
    let m = &parsed.medias[idx];
    let fmts: Vec<u8> = m
        .fmt
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    let maps = rtpmaps(m);
    let lookup = |pt: u8| maps.iter().find(|(p, ..)| *p == pt);
    let offered_names: Vec<String> = fmts
        .iter()
        .map(|pt| match lookup(*pt) {
            Some((_, n, r, _)) => format!("{n}/{r}"),
            None => match pt {
                0 => "PCMU/8000".into(),
                8 => "PCMA/8000".into(),
                other => format!("PT {other}"),
            },
        })
        .collect();
    let chosen = local.codecs.iter().find_map(|codec| {
        fmts.iter().find_map(|pt| {
            let ok = match lookup(*pt) {
                Some((_, name, rate, ch)) => {
                    name.eq_ignore_ascii_case(codec.name())
                        && *rate == codec.clock_rate()
                        && (*codec != Codec::Opus || *ch == 2)
                }
                None => codec.static_pt() == Some(*pt),
            };
            ok.then_some((*codec, *pt))
        })
    });
    let (codec, pt) = chosen.ok_or(SdpError::NoCommonCodec {
        offered: offered_names,
    })?;
    let te_rate = if codec == Codec::Opus { 48_000 } else { 8_000 };
    let telephone_event = fmts.iter().copied().find(|pt| {
        lookup(*pt)
            .is_some_and(|(_, n, r, _)| n.eq_ignore_ascii_case("telephone-event") && *r == te_rate)
    });
    let conn = m
        .connections
        .first()
        .or(parsed.connection.as_ref())
        .ok_or(SdpError::NoConnection)?;
    let ip = connection_addr(conn).ok_or(SdpError::NoConnection)?;
    let theirs = direction_of(&m.attributes)
        .or_else(|| direction_of(&parsed.attributes))
        .unwrap_or(Direction::SendRecv);
    let held_2543 = ip.is_unspecified();
    let mut direction = match theirs {
        Direction::SendRecv => Direction::SendRecv,
        Direction::SendOnly => Direction::RecvOnly,
        Direction::RecvOnly => Direction::SendOnly,
        Direction::Inactive => Direction::Inactive,
    };
    if held_2543 && direction == Direction::SendRecv {
        direction = Direction::RecvOnly;
    }
    let remote = (!held_2543).then(|| SocketAddr::new(ip, m.port));
    let ptime_ms = attr(&m.attributes, "ptime")
        .next()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(local.ptime_ms);
    let opus_fmtp = (codec == Codec::Opus).then(|| format!("{pt} useinbandfec=1"));

    // Build the answer.
    let origin = Origin {
        username: Some(local.username.clone()),
        sess_id: local.session_id.to_string(),
        sess_version: local.session_version,
        nettype: "IN".into(),
        addrtype: if local.addr.is_ipv4() { "IP4" } else { "IP6" }.into(),
        unicast_address: local.addr.to_string(),
    };
    let mut medias = Vec::with_capacity(parsed.medias.len());
    for (i, om) in parsed.medias.iter().enumerate() {
        if i != idx {
            medias.push(Media {
                media: om.media.clone(),
                port: 0,
                num_ports: None,
                proto: om.proto.clone(),
                fmt: om.fmt.clone(),
                media_title: None,
                connections: Vec::new(),
                bandwidths: Vec::new(),
                key: None,
                attributes: Vec::new(),
            });
            continue;
        }
        let mut fmt = pt.to_string();
        let mut attributes = vec![Attribute::with_value(
            "rtpmap",
            match codec {
                Codec::Opus => format!("{pt} opus/48000/2"),
                c => format!("{pt} {}/{}", c.name(), c.clock_rate()),
            },
        )];
        if let Some(f) = &opus_fmtp {
            attributes.push(Attribute::with_value("fmtp", f));
        }
        if let Some(te) = telephone_event {
            fmt.push_str(&format!(" {te}"));
            attributes.push(Attribute::with_value(
                "rtpmap",
                format!("{te} telephone-event/{te_rate}"),
            ));
            attributes.push(Attribute::with_value("fmtp", format!("{te} 0-16")));
        }
        attributes.push(Attribute::with_value("ptime", local.ptime_ms));
        attributes.push(Attribute::new(match direction {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }));
        medias.push(Media {
            media: "audio".into(),
            port: local.port,
            num_ports: None,
            proto: om.proto.clone(),
            fmt,
            media_title: None,
            connections: Vec::new(),
            bandwidths: Vec::new(),
            key: None,
            attributes,
        });
    }
    let session = Session {
        origin,
        session_name: "voxgate".into(),
        session_description: None,
        uri: None,
        emails: Vec::new(),
        phones: Vec::new(),
        connection: Some(Connection {
            nettype: "IN".into(),
            addrtype: if local.addr.is_ipv4() { "IP4" } else { "IP6" }.into(),
            connection_address: local.addr.to_string(),
        }),
        bandwidths: Vec::new(),
        times: vec![Time {
            start_time: 0,
            stop_time: 0,
            repeats: Vec::new(),
        }],
        time_zones: Vec::new(),
        key: None,
        attributes: Vec::new(),
        medias,
    };
    let mut sdp = Vec::with_capacity(512);
    session
        .write(&mut sdp)
        .map_err(|e| SdpError::Unparseable(e.to_string()))?;
    Ok(Answer {
        sdp,
        negotiated: Negotiated {
            codec,
            payload_type: pt,
            clock_rate: codec.clock_rate(),
            channels: codec.channels(),
            telephone_event,
            remote,
            direction,
            ptime_ms,
            opus_fmtp,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(codecs: &[Codec]) -> LocalMedia {
        LocalMedia {
            addr: "127.0.0.1".parse().expect("ip"),
            port: 20_000,
            codecs: codecs.to_vec(),
            ptime_ms: 20,
            session_id: 42,
            session_version: 1,
            username: "voxgate".into(),
        }
    }

    fn offer(media: &str, session_c: bool) -> Vec<u8> {
        let c = if session_c {
            "c=IN IP4 192.0.2.10\r\n"
        } else {
            ""
        };
        format!("v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\n{c}t=0 0\r\n{media}").into_bytes()
    }

    const PCMU_PCMA_TE: &str = "m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:30\r\n";

    const ALL: [Codec; 3] = [Codec::Pcmu, Codec::Pcma, Codec::Opus];

    #[test]
    fn codec_choice_follows_our_preference() {
        let o = offer(PCMU_PCMA_TE, true);
        let a = answer(&o, &local(&ALL)).expect("answer");
        assert_eq!(
            (a.negotiated.codec, a.negotiated.payload_type),
            (Codec::Pcmu, 0)
        );
        assert_eq!(a.negotiated.telephone_event, Some(101));
        assert_eq!(a.negotiated.ptime_ms, 30);
        assert_eq!(
            a.negotiated.remote,
            Some("192.0.2.10:4000".parse().expect("addr"))
        );
        let a = answer(&o, &local(&[Codec::Pcma, Codec::Pcmu])).expect("answer");
        assert_eq!(a.negotiated.codec, Codec::Pcma);
        let text = String::from_utf8(a.sdp).expect("utf8");
        assert!(text.contains("m=audio 20000 RTP/AVP 8 101\r\n"), "{text}");
        assert!(text.contains("a=rtpmap:101 telephone-event/8000"), "{text}");
        assert!(text.contains("a=sendrecv"), "{text}");
    }

    #[test]
    fn opus_keeps_the_offered_payload_type() {
        let o = offer(
            "m=audio 4000 RTP/AVP 111 0\r\na=rtpmap:111 opus/48000/2\r\n",
            true,
        );
        let a = answer(&o, &local(&[Codec::Opus, Codec::Pcmu])).expect("answer");
        assert_eq!(
            (a.negotiated.codec, a.negotiated.payload_type),
            (Codec::Opus, 111)
        );
        assert_eq!(a.negotiated.channels, 2);
        let text = String::from_utf8(a.sdp).expect("utf8");
        assert!(text.contains("a=rtpmap:111 opus/48000/2"), "{text}");
    }

    #[test]
    fn rejections_table() {
        let cases: [(&str, bool, u16); 5] = [
            (
                "m=audio 4000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n",
                true,
                488,
            ),
            ("m=audio 4000 RTP/SAVP 0\r\n", true, 488),
            ("m=video 4002 RTP/AVP 96\r\n", true, 488),
            ("m=audio 4000 RTP/AVP 0\r\n", false, 488),
            ("", true, 488),
        ];
        for (media, c, code) in cases {
            let e = answer(&offer(media, c), &local(&ALL)).expect_err(media);
            assert_eq!(e.status_code(), code, "{media}: {e}");
        }
        let e = answer(b"\x00\x01garbage", &local(&ALL)).expect_err("garbage");
        assert_eq!(e.status_code(), 400);
    }

    #[test]
    fn other_streams_are_rejected_in_place() {
        let o = offer(
            "m=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\nm=audio 4000 RTP/AVP 0\r\n",
            true,
        );
        let a = answer(&o, &local(&ALL)).expect("answer");
        let reparsed = Session::parse(&a.sdp).expect("answer re-parses");
        assert_eq!(reparsed.medias.len(), 2);
        assert_eq!(reparsed.medias[0].port, 0);
        assert_eq!(reparsed.medias[1].port, 20_000);
    }

    #[test]
    fn media_level_connection_wins() {
        let o = offer("m=audio 4000 RTP/AVP 0\r\nc=IN IP4 198.51.100.7\r\n", true);
        let a = answer(&o, &local(&ALL)).expect("answer");
        assert_eq!(
            a.negotiated.remote,
            Some("198.51.100.7:4000".parse().expect("addr"))
        );
    }

    #[test]
    fn directions_mirror_and_hold() {
        let table = [
            ("a=sendonly\r\n", Direction::RecvOnly, "a=recvonly"),
            ("a=recvonly\r\n", Direction::SendOnly, "a=sendonly"),
            ("a=inactive\r\n", Direction::Inactive, "a=inactive"),
            ("a=sendrecv\r\n", Direction::SendRecv, "a=sendrecv"),
        ];
        for (attr, dir, line) in table {
            let o = offer(&format!("m=audio 4000 RTP/AVP 0\r\n{attr}"), true);
            let a = answer(&o, &local(&ALL)).expect("answer");
            assert_eq!(a.negotiated.direction, dir, "{attr}");
            assert!(String::from_utf8_lossy(&a.sdp).contains(line), "{attr}");
        }
        // RFC 2543 hold: c=0.0.0.0.
        let o = b"v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
        let a = answer(o, &local(&ALL)).expect("answer");
        assert_eq!(a.negotiated.remote, None);
        assert_eq!(a.negotiated.direction, Direction::RecvOnly);
    }
}
