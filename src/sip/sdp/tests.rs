//! Table-driven RFC 3264 offer/answer cases. Offers follow RFC 4317 where it has an example,
//! with its FQDNs replaced by RFC 5737/3849 documentation addresses (we do not resolve names).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::*;

const G711: &[Codec] = &[Codec::Pcmu, Codec::Pcma];
const A_LAW_FIRST: &[Codec] = &[Codec::Pcma, Codec::Pcmu];
const OPUS_FIRST: &[Codec] = &[Codec::Opus, Codec::Pcmu, Codec::Pcma];

fn local(codecs: &[Codec]) -> LocalMedia {
    LocalMedia {
        addr: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 5)),
        port: 40_000,
        codecs: codecs.to_vec(),
        ptime_ms: 20,
        session_id: 42,
        session_version: 7,
        username: "voxgate".to_owned(),
    }
}

/// Offers are written with `\n` for legibility; peers send CRLF, so convert.
fn crlf(offer: &str) -> Vec<u8> {
    offer.replace('\n', "\r\n").into_bytes()
}

/// Session header shared by most offers: session-level c= at 192.0.2.10.
const HEAD: &str =
    "v=0\no=alice 2890844526 2890844526 IN IP4 192.0.2.10\ns=-\nc=IN IP4 192.0.2.10\nt=0 0\n";

fn offer(media: &str) -> String {
    format!("{HEAD}{media}")
}

/// What a successful case must negotiate.
struct Want {
    codec: Codec,
    pt: u8,
    te: Option<u8>,
    remote: Option<&'static str>,
    direction: Direction,
    ptime: u32,
    /// The answer's m= ports, in offer order (40000 is ours, 0 rejected).
    ports: &'static [u16],
}

impl Want {
    /// Plain sendrecv G.711 answer on the one audio line at 192.0.2.10:49170.
    fn audio(codec: Codec, pt: u8) -> Self {
        Want {
            codec,
            pt,
            te: None,
            remote: Some("192.0.2.10:49170"),
            direction: Direction::SendRecv,
            ptime: 20,
            ports: &[40_000],
        }
    }
}

struct Case {
    name: &'static str,
    offer: String,
    prefs: &'static [Codec],
    want: Result<Want, SdpError>,
}

fn case(
    name: &'static str,
    offer: String,
    prefs: &'static [Codec],
    want: Result<Want, SdpError>,
) -> Case {
    Case {
        name,
        offer,
        prefs,
        want,
    }
}

fn cases() -> Vec<Case> {
    use Codec::*;
    use Direction::*;
    let pcmu = || Ok(Want::audio(Pcmu, 0));
    vec![
        // --- codec choice (RFC 3264 §6.1: answerer's preference among the offered) ---
        case("pcmu only, static PT without rtpmap", offer("m=audio 49170 RTP/AVP 0\n"), G711, pcmu()),
        case("pcma+pcmu, we prefer pcmu", offer("m=audio 49170 RTP/AVP 8 0\n"), G711, pcmu()),
        case("pcma+pcmu, we prefer pcma", offer("m=audio 49170 RTP/AVP 0 8\n"), A_LAW_FIRST, Ok(Want::audio(Pcma, 8))),
        case(
            "opus+pcmu, opus keeps the offered PT and 48k telephone-event",
            offer("m=audio 49170 RTP/AVP 111 0 101\na=rtpmap:111 opus/48000/2\na=rtpmap:0 PCMU/8000\na=rtpmap:101 telephone-event/48000\na=fmtp:101 0-16\n"),
            OPUS_FIRST,
            Ok(Want { te: Some(101), ..Want::audio(Opus, 111) }),
        ),
        case(
            "opus not first in our list loses to pcmu",
            offer("m=audio 49170 RTP/AVP 111 0\na=rtpmap:111 opus/48000/2\n"),
            G711,
            pcmu(),
        ),
        case(
            "opus must be /48000/2 (RFC 7587 §7)",
            offer("m=audio 49170 RTP/AVP 111 0\na=rtpmap:111 opus/48000\n"),
            OPUS_FIRST,
            pcmu(),
        ),
        case(
            "8k telephone-event does not go with opus",
            offer("m=audio 49170 RTP/AVP 111 101\na=rtpmap:111 OPUS/48000/2\na=rtpmap:101 telephone-event/8000\n"),
            OPUS_FIRST,
            Ok(Want::audio(Opus, 111)),
        ),
        case(
            "telephone-event kept with the offerer's PT",
            offer("m=audio 49170 RTP/AVP 0 96\na=rtpmap:96 telephone-event/8000\na=fmtp:96 0-15\n"),
            G711,
            Ok(Want { te: Some(96), ..Want::audio(Pcmu, 0) }),
        ),
        case(
            "dynamic PT, lower-case encoding name",
            offer("m=audio 49170 RTP/AVP 97\na=rtpmap:97 pcma/8000\n"),
            G711,
            Ok(Want::audio(Pcma, 97)),
        ),
        case(
            "unreadable rtpmap is skipped, not fatal",
            offer("m=audio 49170 RTP/AVP 96 0\na=rtpmap:96 opus\na=rtpmap:x\n"),
            OPUS_FIRST,
            pcmu(),
        ),
        case(
            "G.729 only",
            offer("m=audio 49170 RTP/AVP 18\n"),
            OPUS_FIRST,
            Err(SdpError::NoCommonCodec { offered: vec!["G729/8000".into()] }),
        ),
        case(
            "RFC 4317 §2.2-like: unsupported codecs listed in the error",
            offer("m=audio 49170 RTP/AVP 18 98 97 x\na=rtpmap:97 iLBC/8000\n"),
            G711,
            Err(SdpError::NoCommonCodec {
                offered: vec!["G729/8000".into(), "PT 98".into(), "iLBC/8000".into()],
            }),
        ),
        case(
            "operator configured no codec",
            offer("m=audio 49170 RTP/AVP 0\n"),
            &[],
            Err(SdpError::NoCommonCodec { offered: vec!["PCMU/8000".into()] }),
        ),
        // --- stream selection (RFC 3264 §6: same m= lines, same order) ---
        case(
            "RFC 4317 §2.1: audio and video, video rejected",
            offer("m=audio 49170 RTP/AVP 0 8 97\na=rtpmap:0 PCMU/8000\na=rtpmap:8 PCMA/8000\na=rtpmap:97 iLBC/8000\nm=video 51372 RTP/AVP 31 32\na=rtpmap:31 H261/90000\na=rtpmap:32 MPV/90000\n"),
            G711,
            Ok(Want { ports: &[40_000, 0], ..Want::audio(Pcmu, 0) }),
        ),
        case(
            "RFC 4317 §2.4: second audio stream rejected",
            offer("m=audio 49170 RTP/AVP 0 97\na=rtpmap:97 iLBC/8000\nm=audio 49172 RTP/AVP 98\na=rtpmap:98 telephone-event/8000\na=sendonly\n"),
            G711,
            Ok(Want { ports: &[40_000, 0], ..Want::audio(Pcmu, 0) }),
        ),
        case(
            "video first, audio second",
            offer("m=video 51372 RTP/AVP 31\nm=audio 49170 RTP/AVP 0\n"),
            G711,
            Ok(Want { ports: &[0, 40_000], ..Want::audio(Pcmu, 0) }),
        ),
        case(
            "SRTP-only audio",
            offer("m=audio 49170 RTP/SAVP 0\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\n"),
            G711,
            Err(SdpError::UnsupportedTransport { offered: vec!["RTP/SAVP".into()] }),
        ),
        case(
            "best-effort SRTP: SAVP line rejected, AVP line accepted",
            offer("m=audio 49170 RTP/SAVP 0\nm=audio 49170 RTP/AVP 0\n"),
            G711,
            Ok(Want { ports: &[0, 40_000], ..Want::audio(Pcmu, 0) }),
        ),
        case(
            "WebRTC profile rejected",
            offer("m=audio 9 UDP/TLS/RTP/SAVPF 111\na=rtpmap:111 opus/48000/2\n"),
            OPUS_FIRST,
            Err(SdpError::UnsupportedTransport { offered: vec!["UDP/TLS/RTP/SAVPF".into()] }),
        ),
        case("RTP/AVPF accepted", offer("m=audio 49170 RTP/AVPF 0\n"), G711, pcmu()),
        case(
            "first audio without a common codec, second with one",
            offer("m=audio 49170 RTP/AVP 18\nm=audio 49170 RTP/AVP 8\n"),
            G711,
            Ok(Want { ports: &[0, 40_000], ..Want::audio(Pcma, 8) }),
        ),
        case("RFC 3264 §8.2: removed audio stays removed", offer("m=audio 0 RTP/AVP 0\n"), G711, Err(SdpError::NoAudio)),
        case(
            "removed audio then a new one",
            offer("m=audio 0 RTP/AVP 0\nm=audio 49170 RTP/AVP 0\n"),
            G711,
            Ok(Want { ports: &[0, 40_000], ..Want::audio(Pcmu, 0) }),
        ),
        case("video only", offer("m=video 51372 RTP/AVP 31\n"), G711, Err(SdpError::NoAudio)),
        case("no m= lines", HEAD.to_owned(), G711, Err(SdpError::NoAudio)),
        // --- connection (RFC 4566 §5.7) ---
        case(
            "media-level c= overrides session-level",
            offer("m=audio 49170 RTP/AVP 0\nc=IN IP4 198.51.100.7\n"),
            G711,
            Ok(Want { remote: Some("198.51.100.7:49170"), ..Want::audio(Pcmu, 0) }),
        ),
        case(
            "media-level c= only",
            "v=0\no=- 1 1 IN IP4 192.0.2.10\ns=-\nt=0 0\nm=audio 5004 RTP/AVP 0\nc=IN IP4 198.51.100.7\n".into(),
            G711,
            Ok(Want { remote: Some("198.51.100.7:5004"), ..Want::audio(Pcmu, 0) }),
        ),
        case(
            "no c= anywhere",
            "v=0\no=- 1 1 IN IP4 192.0.2.10\ns=-\nt=0 0\nm=audio 5004 RTP/AVP 0\n".into(),
            G711,
            Err(SdpError::NoConnection),
        ),
        case(
            "IPv6",
            "v=0\no=- 1 1 IN IP6 2001:db8::10\ns=-\nc=IN IP6 2001:db8::10\nt=0 0\nm=audio 49170 RTP/AVP 0\n".into(),
            G711,
            Ok(Want { remote: Some("[2001:db8::10]:49170"), ..Want::audio(Pcmu, 0) }),
        ),
        case(
            "FQDN (RFC 4317 style) is not resolved",
            offer("m=audio 49170 RTP/AVP 0\nc=IN IP4 host.atlanta.example.com\n"),
            G711,
            Err(SdpError::UnsupportedConnection { address: "IN IP4 host.atlanta.example.com".into() }),
        ),
        case(
            "multicast",
            offer("m=audio 49170 RTP/AVP 0\nc=IN IP4 224.2.1.1/127\n"),
            G711,
            Err(SdpError::UnsupportedConnection { address: "IN IP4 224.2.1.1/127".into() }),
        ),
        case(
            "IP4 label on an IPv6 address",
            offer("m=audio 49170 RTP/AVP 0\nc=IN IP4 2001:db8::1\n"),
            G711,
            Err(SdpError::UnsupportedConnection { address: "IN IP4 2001:db8::1".into() }),
        ),
        // --- direction, hold and resume (RFC 3264 §6.1, §8.4; RFC 4317 §3.1) ---
        case(
            "RFC 4317 §3.1: hold with sendonly, we answer recvonly",
            offer("m=audio 49170 RTP/AVP 0\na=sendonly\n"),
            G711,
            Ok(Want { direction: RecvOnly, ..Want::audio(Pcmu, 0) }),
        ),
        case(
            "recvonly offer, we only send",
            offer("m=audio 49170 RTP/AVP 0\na=recvonly\n"),
            G711,
            Ok(Want { direction: SendOnly, ..Want::audio(Pcmu, 0) }),
        ),
        case(
            "inactive",
            offer("m=audio 49170 RTP/AVP 0\na=inactive\n"),
            G711,
            Ok(Want { direction: Inactive, ..Want::audio(Pcmu, 0) }),
        ),
        case(
            "RFC 4317 §3.1: resume with sendrecv",
            offer("m=audio 49170 RTP/AVP 0\na=sendrecv\n"),
            G711,
            pcmu(),
        ),
        case(
            "session-level sendonly applies to the stream",
            format!("{HEAD}a=sendonly\nm=audio 49170 RTP/AVP 0\n"),
            G711,
            Ok(Want { direction: RecvOnly, ..Want::audio(Pcmu, 0) }),
        ),
        case(
            "media-level direction wins over session-level",
            format!("{HEAD}a=sendonly\nm=audio 49170 RTP/AVP 0\na=SENDRECV\n"),
            G711,
            pcmu(),
        ),
        case(
            "RFC 2543 hold: c=0.0.0.0",
            offer("m=audio 49170 RTP/AVP 0\nc=IN IP4 0.0.0.0\n"),
            G711,
            Ok(Want { remote: None, direction: RecvOnly, ..Want::audio(Pcmu, 0) }),
        ),
        case(
            "c=0.0.0.0 and recvonly: nobody can send",
            offer("m=audio 49170 RTP/AVP 0\nc=IN IP4 0.0.0.0\na=recvonly\n"),
            G711,
            Ok(Want { remote: None, direction: Inactive, ..Want::audio(Pcmu, 0) }),
        ),
        // --- ptime (RFC 4566 §6) ---
        case(
            "offered ptime carried",
            offer("m=audio 49170 RTP/AVP 0\na=ptime:30\n"),
            G711,
            Ok(Want { ptime: 30, ..Want::audio(Pcmu, 0) }),
        ),
        case(
            "decimal ptime rounded",
            offer("m=audio 49170 RTP/AVP 0\na=ptime:40.0\n"),
            G711,
            Ok(Want { ptime: 40, ..Want::audio(Pcmu, 0) }),
        ),
        case(
            "session-level ptime",
            format!("{HEAD}a=ptime:60\nm=audio 49170 RTP/AVP 0\n"),
            G711,
            Ok(Want { ptime: 60, ..Want::audio(Pcmu, 0) }),
        ),
        case("garbage ptime ignored", offer("m=audio 49170 RTP/AVP 0\na=ptime:soon\n"), G711, pcmu()),
        case("ptime 0 ignored", offer("m=audio 49170 RTP/AVP 0\na=ptime:0\n"), G711, pcmu()),
        // --- parse failures ---
        case("not SDP", "INVITE sip:bob@example.com SIP/2.0\n".into(), G711, Err(SdpError::Unparseable(String::new()))),
    ]
}

/// Checks the answer's shape against RFC 3264 §6 and re-parses it with sdp-types.
fn assert_answer_shape(name: &str, offer: &[u8], answer: &Answer, want: &Want) {
    let text = std::str::from_utf8(&answer.sdp).expect("answer is UTF-8");
    assert!(text.ends_with("\r\n"), "{name}: answer ends with CRLF");
    assert!(
        text.split("\r\n").all(|line| !line.contains('\n')),
        "{name}: every line ends with CRLF"
    );
    let offer = sdp_types::Session::parse(offer).expect("offer parsed once already");
    let parsed = sdp_types::Session::parse(&answer.sdp)
        .unwrap_or_else(|e| panic!("{name}: answer does not re-parse: {e}\n{text}"));
    assert_eq!(
        parsed.medias.len(),
        offer.medias.len(),
        "{name}: m= line count"
    );
    let ports: Vec<u16> = parsed.medias.iter().map(|m| m.port).collect();
    assert_eq!(ports, want.ports, "{name}: m= ports");
    for (ours, theirs) in parsed.medias.iter().zip(&offer.medias) {
        assert_eq!(ours.media, theirs.media, "{name}: media type");
        assert_eq!(ours.proto, theirs.proto, "{name}: transport");
        if ours.port == 0 {
            assert_eq!(
                ours.fmt, theirs.fmt,
                "{name}: rejected stream keeps its formats"
            );
            continue;
        }
        let pts: Vec<u8> = std::iter::once(want.pt).chain(want.te).collect();
        let fmt = pts.iter().map(u8::to_string).collect::<Vec<_>>().join(" ");
        assert_eq!(ours.fmt, fmt, "{name}: accepted formats");
        for pt in pts {
            assert!(
                ours.attributes_typed::<sdp_types::RtpMap>()
                    .flatten()
                    .any(|m| m.payload_type == pt),
                "{name}: rtpmap for {pt}"
            );
        }
        assert_eq!(
            ours.get_first_attribute_value("ptime"),
            Some(Some("20")),
            "{name}: our ptime"
        );
        assert!(
            ours.has_attribute(want.direction.as_str()),
            "{name}: direction attribute"
        );
    }
    assert_eq!(
        parsed.times, offer.times,
        "{name}: t= copied from the offer"
    );
}

#[test]
fn offer_answer_table() {
    for Case {
        name,
        offer,
        prefs,
        want,
    } in cases()
    {
        let offer = crlf(&offer);
        let got = answer(&offer, &local(prefs));
        match (got, want) {
            (Ok(got), Ok(want)) => {
                let n = &got.negotiated;
                assert_eq!(n.codec, want.codec, "{name}: codec");
                assert_eq!(n.payload_type, want.pt, "{name}: payload type");
                assert_eq!(n.clock_rate, want.codec.clock_rate(), "{name}: clock rate");
                assert_eq!(n.channels, want.codec.channels(), "{name}: channels");
                assert_eq!(n.telephone_event, want.te, "{name}: telephone-event");
                assert_eq!(
                    n.remote,
                    want.remote.map(|r| r.parse().expect("test address")),
                    "{name}: remote"
                );
                assert_eq!(n.direction, want.direction, "{name}: direction");
                assert_eq!(n.ptime_ms, want.ptime, "{name}: ptime");
                let fmtp = (want.codec == Codec::Opus).then(|| OPUS_FMTP.to_owned());
                assert_eq!(n.opus_fmtp, fmtp, "{name}: opus fmtp");
                assert_answer_shape(name, &offer, &got, &want);
            }
            (Err(SdpError::Unparseable(_)), Err(SdpError::Unparseable(_))) => {}
            (Err(got), Err(want)) => assert_eq!(got, want, "{name}"),
            (got, want) => panic!("{name}: got {got:?}, want {:?}", want.map(|_| "an answer")),
        }
    }
}

#[test]
fn answer_text_is_exact() {
    let offer = offer(
        "m=audio 49170 RTP/AVP 8 0 101\na=rtpmap:101 telephone-event/8000\na=fmtp:101 0-15\na=ptime:20\nm=video 51372 RTP/AVP 31 32\na=rtpmap:31 H261/90000\n",
    );
    let got = answer(&crlf(&offer), &local(G711)).expect("answerable");
    let want = "v=0\r\n\
                o=voxgate 42 7 IN IP4 203.0.113.5\r\n\
                s=voxgate\r\n\
                c=IN IP4 203.0.113.5\r\n\
                t=0 0\r\n\
                m=audio 40000 RTP/AVP 0 101\r\n\
                a=rtpmap:0 PCMU/8000\r\n\
                a=rtpmap:101 telephone-event/8000\r\n\
                a=fmtp:101 0-16\r\n\
                a=ptime:20\r\n\
                a=sendrecv\r\n\
                m=video 0 RTP/AVP 31 32\r\n";
    assert_eq!(String::from_utf8_lossy(&got.sdp), want);
}

#[test]
fn opus_answer_carries_rtpmap_and_fmtp() {
    let offer = offer(
        "m=audio 49170 RTP/AVP 96 101\na=rtpmap:96 opus/48000/2\na=fmtp:96 useinbandfec=1\na=rtpmap:101 telephone-event/48000\n",
    );
    let got = answer(&crlf(&offer), &local(OPUS_FIRST)).expect("answerable");
    let text = String::from_utf8_lossy(&got.sdp);
    for line in [
        "m=audio 40000 RTP/AVP 96 101\r\n",
        "a=rtpmap:96 opus/48000/2\r\n",
        "a=fmtp:96 stereo=0;sprop-stereo=0\r\n",
        "a=rtpmap:101 telephone-event/48000\r\n",
        "a=fmtp:101 0-16\r\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert_eq!(got.negotiated.opus_fmtp.as_deref(), Some(OPUS_FMTP));
    assert_eq!(
        (got.negotiated.clock_rate, got.negotiated.channels),
        (48_000, 2)
    );
}

#[test]
fn local_identity_goes_into_o_and_c() {
    let v4: IpAddr = Ipv4Addr::new(203, 0, 113, 5).into();
    let v6: IpAddr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 5).into();
    let cases = [
        (
            v4,
            "voxgate",
            "o=voxgate 42 7 IN IP4 203.0.113.5\r\n",
            "c=IN IP4 203.0.113.5\r\n",
        ),
        (
            v6,
            "vox gate",
            "o=vox_gate 42 7 IN IP6 2001:db8::5\r\n",
            "c=IN IP6 2001:db8::5\r\n",
        ),
        (
            v4,
            " ",
            "o=- 42 7 IN IP4 203.0.113.5\r\n",
            "c=IN IP4 203.0.113.5\r\n",
        ),
    ];
    for (addr, username, o_line, c_line) in cases {
        let local = LocalMedia {
            addr,
            username: username.to_owned(),
            ..local(G711)
        };
        let got = answer(&crlf(&offer("m=audio 49170 RTP/AVP 0\n")), &local).expect("answerable");
        let text = String::from_utf8_lossy(&got.sdp);
        for line in [o_line, c_line] {
            assert!(
                text.contains(line),
                "{username:?}: missing {line:?} in\n{text}"
            );
        }
        sdp_types::Session::parse(&got.sdp).expect("answer re-parses");
    }
}

#[test]
fn offers_with_bare_lf_and_a_non_zero_t_line_are_answered() {
    let offer = "v=0\no=- 1 1 IN IP4 192.0.2.10\ns=-\nc=IN IP4 192.0.2.10\nt=3034423619 3042462419\nm=audio 49170 RTP/AVP 0\n";
    let got = answer(offer.as_bytes(), &local(G711)).expect("answerable");
    assert!(String::from_utf8_lossy(&got.sdp).contains("t=3034423619 3042462419\r\n"));
}

#[test]
fn status_codes() {
    let table = [
        (SdpError::Unparseable("x".into()), 400),
        (SdpError::NoAudio, 488),
        (SdpError::UnsupportedTransport { offered: vec![] }, 488),
        (SdpError::NoCommonCodec { offered: vec![] }, 488),
        (SdpError::NoConnection, 488),
        (
            SdpError::UnsupportedConnection {
                address: String::new(),
            },
            488,
        ),
    ];
    for (err, code) in table {
        assert_eq!(err.status_code(), code, "{err}");
    }
}

#[test]
fn garbage_bodies_are_rejected_not_panicked_on() {
    let table: [(&[u8], u16); 9] = [
        (b"", 400),
        (b"hello", 400),
        (b"v=1\r\n", 400),
        (b"\xff\xfe\x00\x01garbage\x00", 400),
        (b"v=0\r\nm=audio\r\n", 400),
        (b"v=0\r\nm=audio 99999 RTP/AVP 0\r\n", 400),
        (b"v=0\r\nc=IN\r\n", 400),
        // Lax but structurally valid: no o=/s=/t=, which sdp-types accepts.
        (b"v=0\r\n", 488),
        (
            b"v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 1 RTP/AVP 300 -1 ab\r\n",
            488,
        ),
    ];
    for (body, code) in table {
        let err = answer(body, &local(G711)).expect_err("not answerable");
        assert_eq!(
            err.status_code(),
            code,
            "{:?}: {err}",
            String::from_utf8_lossy(body)
        );
    }
}

/// Every prefix of a rich offer, and every single-byte corruption of it with bytes that matter
/// to the grammar, gives an answer or an error, never a panic.
#[test]
fn truncated_and_corrupted_offers_never_panic() {
    let rich = crlf(&format!(
        "{HEAD}a=sendonly\na=ptime:20\nm=audio 49170/2 RTP/AVP 111 0 8 101\nc=IN IP6 2001:db8::1\na=rtpmap:111 opus/48000/2\na=fmtp:111 minptime=10\na=rtpmap:101 telephone-event/48000\na=ptime:40.5\na=recvonly\nm=video 51372 RTP/SAVP 31\n"
    ));
    let local = local(OPUS_FIRST);
    let mut answered = 0;
    for end in 0..=rich.len() {
        answered += usize::from(answer(&rich[..end], &local).is_ok());
    }
    for at in 0..rich.len() {
        for byte in [0u8, b' ', b'/', b':', b'\n', b'=', b'9', 0xff] {
            let mut body = rich.clone();
            body[at] = byte;
            answered += usize::from(answer(&body, &local).is_ok());
        }
    }
    assert!(answered > 0, "some variants are still answerable");
}
