//! Faults, SIPp-driven: the model's handshake hangs, it sends malformed JSON or an `error`,
//! the caller hangs up while a tool runs. For each: the caller hears what the dialplan says
//! (the fallback prompt, then BYE), the daemon serves the next call, and exactly one complete
//! call record exists per call. Also: the API key and webhook secrets never show in the logs
//! or the call log.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{calls, scratch, sim_script, sipp_pcap, speech_pcap, Daemon, Seg};

const API_KEY: &str = "sk-test-DO-NOT-LOG-7f3a9c";
const HOOK_SECRET: &str = "whsec-DO-NOT-LOG-51b2";

/// Waits until the call log holds `n` ended calls; returns them.
fn ended_calls(d: &Daemon, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = calls(&d.dir, &["--json", "--limit", "100"]);
        let rows: Vec<serde_json::Value> = serde_json::from_str(&list).unwrap_or_default();
        if rows.len() >= n && rows.iter().all(|r| !r["end_reason"].is_null()) {
            return rows;
        }
        assert!(Instant::now() < deadline, "calls not logged: {list}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Two calls in a row that must each get the fallback and voxgate's BYE.
fn two_fallback_calls(d: &Daemon) {
    for i in 0..2 {
        let pcap = speech_pcap(
            &d.dir,
            &format!("turn{i}"),
            &[Seg::Quiet(800), Seg::Talk(800), Seg::Quiet(2500)],
        );
        let run = sipp_pcap("uac_play_wait_bye.xml", d.addr, &pcap, &[]);
        assert!(
            run.status.success(),
            "call {i}: sipp must hear the fallback and get BYE: {}",
            run.stderr
        );
    }
    let ends = d.call_ends(2);
    for end in &ends {
        assert_eq!(end["end_reason"], "model_failure", "{end}");
        // 1.5 s of fallback tones reached the caller: never a dead line.
        assert!(end["rtp_out"].as_u64().unwrap_or(0) >= 70, "{end}");
    }
    let rows = ended_calls(d, 2);
    assert_eq!(rows.len(), 2, "exactly one record per call: {rows:?}");
    for r in &rows {
        assert_eq!(r["end_reason"], "model_failure", "{r}");
    }
}

#[test]
fn a_hanging_model_handshake_gets_the_fallback_and_the_key_stays_secret() {
    // Accepts TCP and never answers the WebSocket upgrade.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in silent.incoming().flatten() {
            held.push(s);
        }
    });
    let d = Daemon::start_env(
        "fault-handshake",
        "",
        &[
            (
                "VOXGATE_MODEL_URL",
                &format!("ws://127.0.0.1:{port}/v1/realtime"),
            ),
            ("VOXGATE_MODEL_CONNECT_TIMEOUT", "2s"),
            ("OPENAI_API_KEY", API_KEY),
        ],
    );
    two_fallback_calls(&d);
    let logs = std::fs::read_to_string(d.dir.join("voxgate.log")).expect("log");
    assert!(logs.contains("model connection failed"), "reason is logged");
    assert!(!logs.contains(API_KEY), "API key in the logs");
    let (_, metrics) = common::http_get(d.http, "/metrics");
    assert!(!metrics.contains(API_KEY), "API key in the metrics");
    assert!(
        common::metric(
            &metrics,
            "voxgate_model_errors_total{kind=\"handshake_timeout\"}"
        )
        .is_some_and(|n| n >= 2.0),
        "{metrics}"
    );
    let detail = calls(&d.dir, &["--json", "--limit", "100"]);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&detail).expect("json");
    for r in rows {
        let id = r["id"].as_str().expect("id");
        assert!(
            !calls(&d.dir, &["--json", id]).contains(API_KEY),
            "API key in the call log"
        );
    }
}

#[test]
fn malformed_json_from_the_model_gets_the_fallback() {
    let script = sim_script(
        "fault-garbage",
        "voice: tone\ngreeting_reply: \"Hello.\"\nturns:\n  - fail: garbage\n  - fail: garbage\n",
    );
    let d = Daemon::start_env(
        "fault-garbage",
        "",
        &[
            ("VOXGATE_MODEL_SIM_SCRIPT", script.as_str()),
            ("VOXGATE_AGENT_RESPONSE_TIMEOUT", "3s"),
        ],
    );
    two_fallback_calls(&d);
    assert!(d
        .all_logs()
        .iter()
        .any(|l| l["message"] == "undecodable model event skipped"));
}

#[test]
fn a_model_error_event_gets_the_fallback() {
    let script = sim_script(
        "fault-error",
        "voice: tone\ngreeting_reply: \"Hello.\"\nturns:\n  - fail: error\n  - fail: error\n",
    );
    let d = Daemon::start_env(
        "fault-error",
        "",
        &[("VOXGATE_MODEL_SIM_SCRIPT", script.as_str())],
    );
    two_fallback_calls(&d);
}

#[test]
fn the_caller_hanging_up_during_a_slow_tool_leaves_one_clean_record() {
    // A look-up service that takes 4 s to answer.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let http = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut r = BufReader::new(s.try_clone().expect("clone"));
                let mut line = String::new();
                while r.read_line(&mut line).unwrap_or(0) > 2 {
                    line.clear();
                }
                std::thread::sleep(Duration::from_secs(4));
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
                );
            });
        }
    });
    let dir = scratch("fault-bye-in-tool");
    std::fs::create_dir_all(dir.join("dialplans")).expect("dir");
    std::fs::write(
        dir.join("dialplans/support.yaml"),
        format!(
            "name: support\nmatch: {{ default: true }}\nagent:\n  instructions: help\n  greeting: Hello.\n  tools: [slow_lookup]\n\
             webhooks:\n  slow_lookup:\n    description: slow\n    url: http://127.0.0.1:{http}/slow\n    method: GET\n    timeout: 10s\n    secret_env: HOOK_SECRET\n"
        ),
    )
    .expect("plan");
    let script = sim_script(
        "fault-bye-in-tool",
        "voice: tone\ngreeting_reply: \"Hello.\"\nturns:\n  - reply: \"One moment.\"\n    function_call: { name: slow_lookup, arguments: {} }\n",
    );
    let d = Daemon::start_with_plans(
        "fault-bye-in-tool",
        dir,
        "",
        &[
            ("VOXGATE_MODEL_SIM_SCRIPT", script.as_str()),
            ("HOOK_SECRET", HOOK_SECRET),
        ],
    );
    for i in 0..2 {
        let pcap = speech_pcap(
            &d.dir,
            &format!("turn{i}"),
            &[Seg::Quiet(800), Seg::Talk(800), Seg::Quiet(2000)],
        );
        // Hangs up ~4.5 s in: after the tool call went out, before its answer.
        let run = sipp_pcap("uac_basic.xml", d.addr, &pcap, &["-key", "hold_ms", "4500"]);
        assert!(run.status.success(), "call {i}: {}", run.stderr);
    }
    let ends = d.call_ends(2);
    for end in &ends {
        assert_eq!(end["end_reason"], "caller_hangup", "{end}");
    }
    let rows = ended_calls(&d, 2);
    assert_eq!(rows.len(), 2, "{rows:?}");
    for r in &rows {
        let id = r["id"].as_str().expect("id");
        let detail = calls(&d.dir, &["--json", id]);
        assert!(
            detail.contains("\"tool_call\""),
            "the call was made: {detail}"
        );
        assert!(!detail.contains(HOOK_SECRET), "secret in the call log");
    }
    let logs = std::fs::read_to_string(d.dir.join("voxgate.log")).expect("log");
    assert!(!logs.contains(HOOK_SECRET), "secret in the logs");
}
