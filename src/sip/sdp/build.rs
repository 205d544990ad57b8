//! Writing the answer (RFC 3264 §6.1) through sdp-types, so it always re-parses.

use sdp_types::{Attribute, Connection, Media, Origin, Session};

use super::{LocalMedia, Negotiated, TELEPHONE_EVENTS};

/// The answer body: our `o=`/`c=`, the offer's `t=`, and one `m=` line per offered one, all
/// rejected with port 0 except the accepted audio stream at `accepted`.
pub(super) fn answer_sdp(
    offer: &Session,
    accepted: usize,
    negotiated: &Negotiated,
    local: &LocalMedia,
) -> Vec<u8> {
    let mut origin = Origin::with_ip_addr(local.session_id, local.session_version, local.addr);
    origin.set_username(origin_username(&local.username));
    let mut session = Session::new(origin, "voxgate");
    session.connection = Some(Connection::from_ip_addr(local.addr));
    // RFC 3264 §6: "The t= line in the answer MUST equal that of the offer." Without one, the
    // writer puts t=0 0.
    session.times = offer.times.clone();
    session.medias = offer
        .medias
        .iter()
        .enumerate()
        .map(|(i, offered)| {
            if i == accepted {
                audio_media(offered, negotiated, local)
            } else {
                rejected_media(offered)
            }
        })
        .collect();
    let mut sdp = Vec::new();
    session
        .write(&mut sdp)
        .expect("writing SDP into a Vec<u8> cannot fail");
    sdp
}

/// RFC 3264 §6: a rejected stream keeps its media type, transport and format list, port 0.
fn rejected_media(offered: &Media) -> Media {
    Media {
        media: offered.media.clone(),
        port: 0,
        num_ports: None,
        proto: offered.proto.clone(),
        fmt: offered.fmt.clone(),
        media_title: None,
        connections: Vec::new(),
        bandwidths: Vec::new(),
        key: None,
        attributes: Vec::new(),
    }
}

/// The accepted stream: our port, the chosen codec and telephone-event under the offerer's
/// payload types, our ptime and our direction.
fn audio_media(offered: &Media, negotiated: &Negotiated, local: &LocalMedia) -> Media {
    let codec = negotiated.codec;
    let pt = negotiated.payload_type;
    let mut fmt = pt.to_string();
    let rtpmap = match codec.channels() {
        1 => format!("{pt} {}/{}", codec.encoding_name(), codec.clock_rate()),
        ch => format!("{pt} {}/{}/{ch}", codec.encoding_name(), codec.clock_rate()),
    };
    let mut attributes = vec![Attribute::with_value("rtpmap", rtpmap)];
    if let Some(fmtp) = &negotiated.opus_fmtp {
        attributes.push(Attribute::with_value("fmtp", format!("{pt} {fmtp}")));
    }
    if let Some(te) = negotiated.telephone_event {
        fmt.push_str(&format!(" {te}"));
        attributes.push(Attribute::with_value(
            "rtpmap",
            format!("{te} telephone-event/{}", codec.clock_rate()),
        ));
        attributes.push(Attribute::with_value(
            "fmtp",
            format!("{te} {TELEPHONE_EVENTS}"),
        ));
    }
    attributes.push(Attribute::with_value("ptime", local.ptime_ms));
    attributes.push(Attribute::new(negotiated.direction.as_str()));
    Media {
        media: "audio".to_owned(),
        port: local.port,
        num_ports: None,
        // Same profile as offered: RTP/AVP or RTP/AVPF (RFC 3264 §6.1).
        proto: offered.proto.clone(),
        fmt,
        media_title: None,
        connections: Vec::new(),
        bandwidths: Vec::new(),
        key: None,
        attributes,
    }
}

/// RFC 4566 §5.2: the username must not contain spaces; "-" when there is none.
fn origin_username(configured: &str) -> String {
    let joined = configured.split_whitespace().collect::<Vec<_>>().join("_");
    if joined.is_empty() {
        "-".to_owned()
    } else {
        joined
    }
}
