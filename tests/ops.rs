//! Operations: `/metrics` after a real SIPp call (and `promtool check metrics` on it when
//! promtool is installed), `/healthz` and `/readyz`, and graceful drain on SIGTERM (503 with
//! Retry-After to new INVITEs and OPTIONS, live calls finish or are hung up at the deadline,
//! exit status 0). Waits are bounded polls on conditions, never timed assertions.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{http_get, metric, sipp, tone_pcap, Daemon};

/// Polls `/metrics` until `series` reaches `at_least`; returns the last body.
fn wait_metric(d: &Daemon, series: &str, at_least: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, body) = http_get(d.http, "/metrics");
        assert_eq!(code, 200, "{body}");
        if metric(&body, series).is_some_and(|v| v >= at_least) || Instant::now() >= deadline {
            return body;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[test]
fn metrics_health_and_readiness_after_a_call() {
    let d = Daemon::start("ops-metrics", "media:\n  mode: echo\n");

    let (code, body) = http_get(d.http, "/healthz");
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["status"], "alive", "{body}");

    let (code, body) = http_get(d.http, "/readyz");
    let ready = json(&body);
    assert_eq!(code, 200, "{body}");
    assert_eq!(ready["status"], "ready", "{body}");
    assert_eq!(ready["sip"], true, "{body}");
    assert_eq!(ready["dialplans"], 1, "{body}");
    assert_eq!(ready["store"], "ok", "{body}");
    assert_eq!(ready["draining"], false, "{body}");

    let pcap = tone_pcap(&d.dir, 1000);
    let run = sipp(
        "uac_basic.xml",
        d.addr,
        "u1",
        &[
            "-m",
            "1",
            "-key",
            "pcap",
            pcap.to_str().expect("path"),
            "-key",
            "hold_ms",
            "1500",
        ],
    );
    assert!(run.status.success(), "sipp: {}", run.stderr);
    assert_eq!(d.call_ends(1).len(), 1);

    let ended = r#"voxgate_calls_total{dialplan="default",end_reason="caller_hangup"}"#;
    let body = wait_metric(&d, ended, 1.0);
    let m = |series: &str| metric(&body, series).unwrap_or(0.0);
    assert_eq!(m(ended), 1.0, "{body}");
    for (series, at_least) in [
        (
            r#"voxgate_sip_requests_total{direction="in",method="INVITE"}"#,
            1.0,
        ),
        (
            r#"voxgate_sip_requests_total{direction="in",method="ACK"}"#,
            1.0,
        ),
        (
            r#"voxgate_sip_requests_total{direction="in",method="BYE"}"#,
            1.0,
        ),
        (
            r#"voxgate_sip_responses_total{code="200",direction="out"}"#,
            2.0,
        ),
        ("voxgate_call_setup_seconds_count", 1.0),
        ("voxgate_call_duration_seconds_count", 1.0),
        (r#"voxgate_rtp_packets_total{direction="in"}"#, 40.0),
        (r#"voxgate_rtp_packets_total{direction="out"}"#, 1.0),
        ("voxgate_dialplans_loaded", 1.0),
        (r#"voxgate_build_info{version="0.1.0"}"#, 1.0),
    ] {
        assert!(m(series) >= at_least, "{series} < {at_least}:\n{body}");
    }
    // The call is over: the gauge is back to zero (the router hears of it just after the
    // call's own summary, so poll for it).
    let active = r#"voxgate_calls_active{dialplan="default"}"#;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut body = body;
    while metric(&body, active) != Some(0.0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        body = http_get(d.http, "/metrics").1;
    }
    assert_eq!(metric(&body, active), Some(0.0), "{body}");
    assert_eq!(metric(&body, "voxgate_draining"), Some(0.0), "{body}");

    promtool_check(&body);
}

/// `promtool check metrics` on the exposition, when promtool is installed (Debian
/// `prometheus`); it exits non-zero on any naming or format problem.
fn promtool_check(body: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        eprintln!("promtool not installed: format check skipped");
        return;
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sends one UDP request; the text of the first final response (≥ 200) within 10 s.
fn final_response(to: SocketAddr, msg: &str) -> Option<String> {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    sock.send_to(msg.as_bytes(), to).expect("send");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = vec![0u8; 65536];
    while Instant::now() < deadline {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            if common::status_of(&buf[..n]).is_some_and(|c| c >= 200) {
                return Some(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    }
    None
}

/// Checks what a draining node answers: 503 + Retry-After to OPTIONS and new INVITEs,
/// `/readyz` 503 with `"status":"draining"`.
fn assert_refuses_new_calls(d: &Daemon) {
    let resp = final_response(d.addr, &common::options("drain-probe")).expect("OPTIONS answer");
    assert_eq!(common::status_of(resp.as_bytes()), Some(503), "{resp}");
    assert!(resp.contains("Retry-After:"), "{resp}");
    let resp =
        final_response(d.addr, &common::invite("100", "drain-invite")).expect("INVITE answer");
    assert_eq!(common::status_of(resp.as_bytes()), Some(503), "{resp}");
    assert!(resp.contains("Retry-After:"), "{resp}");
    let (code, body) = http_get(d.http, "/readyz");
    assert_eq!(code, 503, "{body}");
    assert_eq!(json(&body)["status"], "draining", "{body}");
    assert_eq!(json(&body)["draining"], true, "{body}");
    let (code, body) = http_get(d.http, "/metrics");
    assert_eq!(code, 200);
    assert_eq!(metric(&body, "voxgate_draining"), Some(1.0), "{body}");
    assert!(
        metric(
            &body,
            r#"voxgate_calls_total{dialplan="none",end_reason="rejected_503_draining"}"#
        ) >= Some(1.0),
        "{body}"
    );
}

fn wait_drain_start(d: &Daemon) {
    d.wait_log(Duration::from_secs(20), |l| l["event"] == "drain_start")
        .unwrap_or_else(|| panic!("no drain_start; logs: {:?}", d.all_logs()));
}

fn wait_confirmed(d: &Daemon) {
    d.wait_log(Duration::from_secs(20), |l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.contains("call confirmed"))
    })
    .unwrap_or_else(|| panic!("the call was not answered; logs: {:?}", d.all_logs()));
}

/// A call that outlives the drain timeout is hung up with BYE (end reason `shutdown`); the
/// daemon then exits 0.
#[test]
fn sigterm_hangs_up_calls_still_live_at_the_deadline() {
    let mut d = Daemon::start_env(
        "ops-drain-deadline",
        "media:\n  mode: echo\n",
        &[("VOXGATE_SIP_DRAIN_TIMEOUT", "3s")],
    );
    let addr = d.addr;
    // Sends no RTP and waits for voxgate's BYE (the RTP timeout, 30 s, is far away).
    let call = std::thread::spawn(move || sipp("uac_wait_bye.xml", addr, "u1", &["-m", "1"]));
    wait_confirmed(&d);
    d.signal("TERM");
    wait_drain_start(&d);
    assert_refuses_new_calls(&d);

    let run = call.join().expect("sipp thread");
    assert!(run.status.success(), "sipp must get a BYE: {}", run.stderr);
    let ends = d.call_ends(1);
    assert_eq!(ends[0]["end_reason"], "shutdown", "{}", ends[0]);
    let status = d
        .wait_exit(Duration::from_secs(30))
        .expect("voxgate exits after the drain");
    assert!(status.success(), "exit status {status:?}");
}

/// A call that ends by itself during the drain ends normally, and the daemon exits as soon as
/// it is gone (long before the 60 s deadline).
#[test]
fn sigterm_lets_live_calls_finish() {
    let mut d = Daemon::start_env(
        "ops-drain-finish",
        "media:\n  mode: echo\n",
        &[("VOXGATE_SIP_DRAIN_TIMEOUT", "60s")],
    );
    let pcap = tone_pcap(&d.dir, 1000);
    let addr = d.addr;
    let pcap_arg = pcap.to_str().expect("path").to_string();
    let call = std::thread::spawn(move || {
        sipp(
            "uac_basic.xml",
            addr,
            "u1",
            &[
                "-m", "1", "-key", "pcap", &pcap_arg, "-key", "hold_ms", "4000",
            ],
        )
    });
    wait_confirmed(&d);
    d.signal("TERM");
    wait_drain_start(&d);
    assert_refuses_new_calls(&d);

    let run = call.join().expect("sipp thread");
    assert!(run.status.success(), "sipp: {}", run.stderr);
    let ends = d.call_ends(1);
    assert_eq!(ends[0]["end_reason"], "caller_hangup", "{}", ends[0]);
    // Exits on its own once the call is gone: `drain_done` is logged, not the deadline.
    let status = d
        .wait_exit(Duration::from_secs(30))
        .expect("voxgate exits when the last call ends");
    assert!(status.success(), "exit status {status:?}");
    assert!(
        d.all_logs().iter().any(|l| l["event"] == "drain_done"),
        "drain_done expected"
    );
    assert!(
        !d.all_logs().iter().any(|l| l["event"] == "drain_deadline"),
        "the deadline must not have been reached"
    );
}
