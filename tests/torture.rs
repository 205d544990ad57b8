//! RFC 4475 SIP torture messages, table-driven (`tests/torture/cases.tsv`), over both the parser
//! and a running daemon: valid messages parse, invalid ones are refused with 400 or dropped, and
//! after every message the daemon still answers OPTIONS with 200.

mod common;

use std::time::Duration;

use common::{options, status_of, udp_exchange, Daemon};
use voxgate::sip::message::parse;

struct Case {
    file: String,
    kind: String,
    expect: String,
    bytes: Vec<u8>,
}

fn cases() -> Vec<Case> {
    let dir = common::repo().join("tests").join("torture");
    let table = std::fs::read_to_string(dir.join("cases.tsv")).expect("cases.tsv");
    table
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#') && !l.starts_with("file\t"))
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert!(cols.len() >= 3, "bad row: {l}");
            let bytes = std::fs::read(dir.join(cols[0])).expect("torture file");
            Case {
                file: cols[0].to_string(),
                kind: cols[1].to_string(),
                expect: cols[2].to_string(),
                bytes,
            }
        })
        .collect()
}

#[test]
fn parser_table() {
    let cases = cases();
    assert!(cases.len() >= 20, "torture table is too small");
    let mut failures = Vec::new();
    for c in &cases {
        let result = parse(&c.bytes);
        match c.kind.as_str() {
            "valid" => {
                // A valid message either parses, or is refused only for a method we do not
                // implement (a 501 is still an answer, not a parse failure).
                if let Err(e) = &result {
                    // Refusing a valid message is fine when it is answered as the table
                    // expects (501 for an unknown method, 416 for an unknown URI scheme…).
                    let code = e.response.as_deref().and_then(status_of);
                    let answered_as_expected = match c.expect.as_str() {
                        "response:any" => code.is_some(),
                        x => x
                            .strip_prefix("response:")
                            .and_then(|n| n.parse::<u16>().ok())
                            .is_some_and(|want| code == Some(want)),
                    };
                    if !answered_as_expected {
                        failures.push(format!("{}: valid message refused: {}", c.file, e.reason));
                    }
                }
            }
            "invalid" => {
                if let Ok(msg) = &result {
                    // Some invalid messages are only invalid at a level above parsing
                    // (e.g. semantics of a header we never read); accept those explicitly.
                    if !(c.expect.starts_with("response:") || c.expect == "maybe-drop") {
                        failures.push(format!("{}: invalid message accepted: {msg}", c.file));
                    }
                }
            }
            other => panic!("{}: unknown kind {other}", c.file),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn daemon_survives_every_torture_message() {
    let mut d = Daemon::start("torture", "media:\n  answer_delay: 0s\n");
    let mut failures = Vec::new();
    for (i, c) in cases().iter().enumerate() {
        let reply = udp_exchange(d.addr, &c.bytes, Duration::from_millis(700));
        let code = reply.as_deref().and_then(status_of);
        let ok = match c.expect.as_str() {
            "drop" => reply.is_none(),
            "maybe-drop" => code.is_none() || code == Some(400),
            "response:any" => code.is_some(),
            e if e.starts_with("response:") => {
                let want: u16 = e["response:".len()..].parse().expect("code in table");
                code == Some(want)
            }
            other => panic!("{}: unknown expectation {other}", c.file),
        };
        if !ok {
            failures.push(format!("{}: expected {}, got {code:?}", c.file, c.expect));
        }
        assert!(d.alive(), "{}: daemon died", c.file);
        let probe = options(&format!("probe{i}"));
        let ok = udp_exchange(d.addr, probe.as_bytes(), Duration::from_secs(5));
        assert_eq!(
            ok.as_deref().and_then(status_of),
            Some(200),
            "{}: OPTIONS not answered afterwards",
            c.file
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn garbage_datagrams_never_stop_the_daemon() {
    let mut d = Daemon::start("garbage", "");
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let mut seed = 0x1234_5678u32;
    for len in [0usize, 1, 3, 17, 100, 1400, 9000] {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (seed >> 16) as u8
            })
            .collect();
        sock.send_to(&bytes, d.addr).expect("send");
    }
    for raw in [
        &b"INVITE sip:x SIP/2.0\r\n\r\n"[..],
        b"SIP/2.0 200 OK\r\n\r\n",
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nContent-Length: 99999\r\n\r\n",
        b"\x00\x01\x02\r\n\r\n",
    ] {
        sock.send_to(raw, d.addr).expect("send");
    }
    let ok = udp_exchange(
        d.addr,
        options("after-garbage").as_bytes(),
        Duration::from_secs(5),
    );
    assert_eq!(ok.as_deref().and_then(status_of), Some(200));
    assert!(d.alive());
}
