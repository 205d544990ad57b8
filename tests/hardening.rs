//! Hardening (issue 8) against a running daemon: admission control (allow_from, scanners,
//! per-source INVITE rate, message limits) and RTP port release under call churn. Absence of a
//! reply is shown by ordering — a dropped request is followed by a probe whose answer must be
//! the first one to come back — never by waiting for a quiet period.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::{free_port, invite, options, sipp, status_of, Daemon};

/// Sends each message in turn from one socket; returns the Call-IDs and codes of every reply
/// up to and including the final reply to the last message (the probe).
fn replies(to: std::net::SocketAddr, msgs: &[String]) -> Vec<(String, u16)> {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    for m in msgs {
        sock.send_to(m.as_bytes(), to).expect("send");
    }
    let probe = call_id_of(msgs.last().expect("a probe"));
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Ok((n, _)) = sock.recv_from(&mut buf) {
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let code = status_of(text.as_bytes()).unwrap_or(0);
        let id = call_id_of(&text);
        out.push((id.clone(), code));
        if id == probe && code >= 200 {
            break;
        }
    }
    out
}

fn call_id_of(msg: &str) -> String {
    msg.lines()
        .find_map(|l| l.strip_prefix("Call-ID:"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn with_ua(msg: &str, ua: &str) -> String {
    msg.replacen(
        "Max-Forwards:",
        &format!("User-Agent: {ua}\r\nMax-Forwards:"),
        1,
    )
}

fn is_refusal(l: &serde_json::Value) -> bool {
    l["message"]
        .as_str()
        .is_some_and(|m| m.contains("refused by admission control"))
}

/// Replaces a message's body, fixing Content-Length.
fn with_body(msg: &str, body: &str) -> String {
    let head = msg.split("\r\n\r\n").next().unwrap_or_default();
    let head: Vec<&str> = head
        .lines()
        .filter(|l| !l.starts_with("Content-Length:"))
        .collect();
    format!(
        "{}\r\nContent-Length: {}\r\n\r\n{body}",
        head.join("\r\n"),
        body.len()
    )
}

#[test]
fn sources_outside_allow_from_get_403_for_invite_and_nothing_else_logged_once() {
    let d = Daemon::start_env(
        "hard-acl",
        "",
        &[("VOXGATE_SIP_ALLOW_FROM", "[10.0.0.0/8, \"2001:db8::/32\"]")],
    );
    let mut msgs: Vec<String> = (0..20).map(|i| options(&format!("acl-opt-{i}"))).collect();
    // A malformed request (bad Content-Length) would get a 400 from an allowed source.
    msgs.push(options("acl-bad").replace("Content-Length: 0", "Content-Length: x"));
    msgs.push(invite("100", "acl-inv-1"));
    let got = replies(d.addr, &msgs);
    assert_eq!(
        got,
        [("acl-inv-1".to_string(), 403)],
        "OPTIONS flood unanswered, INVITE refused"
    );
    // The flood left one log line, not 21 (the 403 was sent after the refusal was logged).
    assert_eq!(d.wait_logs(Duration::from_secs(5), 1, is_refusal).len(), 1);
    assert_eq!(d.all_logs().iter().filter(|l| is_refusal(l)).count(), 1);
}

#[test]
fn scanners_get_no_reply_and_friendly_clients_do() {
    let d = Daemon::start("hard-scan", "");
    let mut msgs = Vec::new();
    for (i, ua) in ["friendly-scanner", "sipvicious", "VaxSIPUserAgent/3.1"]
        .iter()
        .enumerate()
    {
        msgs.push(with_ua(&options(&format!("scan-opt-{i}")), ua));
        msgs.push(with_ua(&invite("100", &format!("scan-inv-{i}")), ua));
    }
    msgs.push(with_ua(&options("scan-probe"), "Linphone/5.2"));
    let got = replies(d.addr, &msgs);
    assert_eq!(got, [("scan-probe".to_string(), 200)]);
}

#[test]
fn invites_over_the_source_rate_get_503_with_retry_after() {
    let d = Daemon::start_env(
        "hard-rate",
        "",
        &[
            (
                "VOXGATE_SIP_RATE_LIMIT",
                "{ invites_per_second: 0.01, burst: 2 }",
            ),
            ("VOXGATE_MEDIA_MODE", "echo"),
        ],
    );
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut finals = Vec::new();
    let mut retry_after = None;
    let mut buf = vec![0u8; 65536];
    for i in 0..4 {
        sock.send_to(invite("100", &format!("rate-{i}")).as_bytes(), d.addr)
            .expect("send");
        // Wait for this INVITE's final answer before the next (200 or 503).
        while let Ok((n, _)) = sock.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let code = status_of(text.as_bytes()).unwrap_or(0);
            if code >= 200 && call_id_of(&text) == format!("rate-{i}") {
                if code == 503 {
                    retry_after = text
                        .lines()
                        .find_map(|l| l.strip_prefix("Retry-After:"))
                        .map(|v| v.trim().to_string());
                }
                finals.push(code);
                break;
            }
        }
    }
    assert_eq!(finals, [200, 200, 503, 503]);
    assert_eq!(retry_after.as_deref(), Some("100"), "1 / 0.01 per second");
}

#[test]
fn oversized_messages_get_513_and_413() {
    let d = Daemon::start_env(
        "hard-size",
        "",
        &[
            ("VOXGATE_SIP_MAX_MESSAGE_SIZE", "2048"),
            ("VOXGATE_SIP_MAX_BODY_SIZE", "1024"),
            ("VOXGATE_SIP_MAX_HEADERS", "20"),
        ],
    );
    let big = options("size-big").replacen(
        "Max-Forwards:",
        &format!("X-Pad: {}\r\nMax-Forwards:", "x".repeat(3000)),
        1,
    );
    let many = options("size-many").replacen(
        "Max-Forwards:",
        &format!("{}Max-Forwards:", "X-A: 1\r\n".repeat(30)),
        1,
    );
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\na=x:{}\r\nm=audio 9 RTP/AVP 0\r\n",
        "y".repeat(1200)
    );
    let body = with_body(&invite("100", "size-body"), &sdp);
    assert_eq!(replies(d.addr, &[big]), [("size-big".to_string(), 513)]);
    assert_eq!(replies(d.addr, &[many]), [("size-many".to_string(), 513)]);
    assert_eq!(replies(d.addr, &[body]), [("size-body".to_string(), 413)]);
    assert_eq!(
        replies(d.addr, &[options("size-ok")]),
        [("size-ok".to_string(), 200)]
    );
}

/// 1,000 short calls in a row through a pool of 20 RTP ports: a leak of even one port per
/// 50 calls would exhaust it and turn calls into 503s. Then 20 calls held at once must all be
/// answered: every port came back.
#[test]
fn a_thousand_calls_give_every_rtp_port_back() {
    let base = (free_port() & !1).min(65_000);
    let (min, max) = (base.to_string(), (base + 40).to_string());
    let d = Daemon::start_env(
        "hard-ports",
        "",
        &[
            ("VOXGATE_RTP_PORT_MIN", min.as_str()),
            ("VOXGATE_RTP_PORT_MAX", max.as_str()),
            ("VOXGATE_SIP_RATE_LIMIT_INVITES_PER_SECOND", "0"),
            // Ended calls still absorbing retransmissions (timer J, 32 s) must not count
            // against max_calls: 1,000 calls at 10 concurrent fit under a limit of 20.
            ("VOXGATE_SIP_MAX_CALLS", "20"),
            ("VOXGATE_MEDIA_MODE", "echo"),
            ("VOXGATE_LOG_LEVEL", "info"),
        ],
    );
    let run = sipp(
        "uac_short.xml",
        d.addr,
        "u1",
        &[
            "-m", "1000", "-r", "100", "-l", "10", "-key", "hold_ms", "50",
        ],
    );
    assert!(run.status.success(), "sipp failed: {}", run.stderr);
    let ends = d.call_ends(1000);
    assert_eq!(ends.len(), 1000);
    let answered = ends
        .iter()
        .filter(|e| e["end_reason"] == "caller_hangup")
        .count();
    assert_eq!(answered, 1000, "every call answered and ended by BYE");
    // Every port is free again: as many calls as the pool holds, all at once.
    let run = sipp(
        "uac_short.xml",
        d.addr,
        "u1",
        &[
            "-m", "20", "-r", "1000", "-l", "20", "-key", "hold_ms", "3000",
        ],
    );
    assert!(run.status.success(), "sipp failed: {}", run.stderr);
    assert_eq!(d.call_ends(1020).len(), 1020);
}

/// Packets from a second source, with a bogus payload type, empty, oversized or not RTP at all
/// are counted and ignored; the call goes on and ends normally.
#[test]
fn rtp_from_strangers_and_bogus_packets_is_ignored_and_counted() {
    let d = Daemon::start_env("hard-rtp", "", &[("VOXGATE_MEDIA_MODE", "echo")]);
    let sip = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sip.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let media = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let stranger = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let mport = media.local_addr().expect("addr").port();
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {mport} RTP/AVP 0\r\n"
    );
    sip.send_to(
        with_body(&invite("100", "rtp-bogus"), &sdp).as_bytes(),
        d.addr,
    )
    .expect("send");
    let mut buf = vec![0u8; 65536];
    let ok = loop {
        let (n, _) = sip.recv_from(&mut buf).expect("a 200 OK");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if status_of(text.as_bytes()) == Some(200) {
            break text;
        }
    };
    let to = ok
        .lines()
        .find(|l| l.starts_with("To:"))
        .expect("To")
        .to_string();
    let rtp_port: u16 = ok
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .expect("m= port");
    let in_dialog = |method: &str, cseq: u32| {
        format!(
            "{method} sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{method}{cseq};rport\r\n\
             From: <sip:caller@127.0.0.1>;tag=c1\r\n{to}\r\nCall-ID: rtp-bogus\r\nCSeq: {cseq} {method}\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
    };
    sip.send_to(in_dialog("ACK", 1).as_bytes(), d.addr)
        .expect("ack");
    let target = std::net::SocketAddr::from(([127, 0, 0, 1], rtp_port));
    let packet = |seq: u16, pt: u8, len: usize| {
        let mut p = vec![0x80, pt];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        p.resize(12 + len, 0xff);
        p
    };
    let mut seq = 100u16;
    let send = |sock: &UdpSocket, p: Vec<u8>| {
        sock.send_to(&p, target).expect("rtp");
    };
    for i in 0..50 {
        send(&media, packet(seq, 0, 160)); // latches on the first one
        seq += 1;
        match i {
            5..=14 => send(&stranger, packet(seq + 1000, 0, 160)),
            20..=24 => send(&media, packet(seq, 96, 160)),
            30..=32 => send(&media, packet(seq, 0, 0)),
            40..=41 => send(&media, vec![0x13; 40]),
            _ => {}
        }
    }
    // The BYE travels on another socket and could overtake RTP still queued: wait until the
    // echo of our audio has started and then gone quiet, i.e. voxgate has read every packet.
    media
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut echoed = 0;
    let mut rtp_buf = vec![0u8; 2048];
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        match media.recv_from(&mut rtp_buf) {
            Ok(_) => echoed += 1,
            Err(_) if echoed > 0 => break,
            Err(_) => {}
        }
    }
    assert!(echoed > 0, "no echo came back");
    // The BYE goes from the INVITE's socket: that is where the dialog answers.
    sip.send_to(in_dialog("BYE", 2).as_bytes(), d.addr)
        .expect("bye");
    loop {
        let (n, _) = sip.recv_from(&mut buf).expect("a 200 for the BYE");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.contains("CSeq: 2 BYE") && status_of(text.as_bytes()).is_some_and(|c| c >= 200) {
            assert_eq!(status_of(text.as_bytes()), Some(200), "{text}");
            break;
        }
    }
    let end = d.call_ends(1).pop().expect("call_end");
    assert_eq!(end["end_reason"], "caller_hangup", "{end}");
    // 10 from the stranger, 5 with payload type 96, 2 that are not RTP.
    assert_eq!(end["rtp_ignored"], 17, "{end}");
    // From the latched peer: 50 audio, 5 with the bogus payload type, 3 empty.
    assert_eq!(end["rtp_in"], 58, "{end}");
}
