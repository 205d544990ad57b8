//! Function calls that do real work, end to end: the simulator's script makes the model call
//! each tool during a real SIPp call. Asserted: a bad call gets an error output (not a crash),
//! the ticket row has the right fields, the ticketing system got the signed ticket exactly
//! once despite one forced failure, a webhook look-up reached its server, and SIPp saw the
//! REFER with the context headers, answered 202 + NOTIFY 200, and then got voxgate's BYE.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{calls, scratch, sim_script, sipp, sipp_pcap, speech_pcap, Daemon, Seg};

/// One request received by the fake ticketing system.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    status: u16,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A tiny HTTP/1.1 server: `/tickets` fails the first request with 503, then answers 201 with
/// an external id; `/lookup` answers 200 with an order status.
fn http_server() -> (u16, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind http");
    let port = listener.local_addr().expect("addr").port();
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    headers.push((k.trim().to_string(), v.trim().to_string()));
                }
            }
            let len = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.parse::<usize>().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let mut all = log.lock().expect("lock");
            let tickets_before = all
                .iter()
                .filter(|s| s.path.starts_with("/tickets"))
                .count();
            let (status, answer) = if path.starts_with("/tickets") {
                if tickets_before == 0 {
                    (503, "{\"error\":\"busy\"}".to_string())
                } else {
                    (201, "{\"id\":\"EXT-42\"}".to_string())
                }
            } else {
                (
                    200,
                    "{\"order\":\"A-1\",\"status\":\"shipped\"}".to_string(),
                )
            };
            all.push(Seen {
                path,
                headers,
                body,
                status,
            });
            drop(all);
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (port, seen)
}

const SECRET: &str = "test-signing-secret-5e3c";

#[test]
fn the_agent_files_a_ticket_looks_up_an_order_and_transfers_the_caller() {
    let (http, seen) = http_server();
    let dir = scratch("tools-calls");
    let plans = dir.join("dialplans");
    std::fs::create_dir_all(&plans).expect("dialplans dir");
    std::fs::write(
        plans.join("support.yaml"),
        format!(
            r#"
name: support
match: {{ default: true }}
agent:
  instructions: You help callers.
  greeting: Hello.
  tools: [create_ticket, lookup_order, transfer_to_human, end_call]
tickets:
  category: support
  webhook:
    url: http://127.0.0.1:{http}/tickets
    secret_env: TEST_TICKET_SECRET
    retries: 2
transfer:
  to: "sip:queue@127.0.0.1"
  announcement: Putting you through now.
  headers: {{ ticket: X-Ticket-Id, reason: X-Why }}
webhooks:
  lookup_order:
    description: Look up an order.
    url: http://127.0.0.1:{http}/lookup
    method: GET
    parameters:
      type: object
      properties:
        order_number: {{ type: string }}
      required: [order_number]
"#
        ),
    )
    .expect("dialplan");
    let script = sim_script(
        "tools-calls",
        r#"
voice: tone
greeting_reply: "Hello."
turns:
  - reply: "One moment."
    transcript: "my router is broken and I want a person"
    function_call: { name: create_ticket, arguments: { summary: "ab" } }
  - function_call: { name: create_ticket, arguments: { summary: "Router broken", priority: high } }
  - function_call: { name: lookup_order, arguments: { order_number: "A-1" } }
  - function_call: { name: transfer_to_human, arguments: { reason: "router broken, wants a person" } }
  - reply: "Putting you through now."
"#,
    );
    let d = Daemon::start_with_plans(
        "tools-calls",
        dir,
        "",
        &[
            ("VOXGATE_MODEL_SIM_SCRIPT", script.as_str()),
            ("TEST_TICKET_SECRET", SECRET),
        ],
    );
    let pcap = speech_pcap(
        &d.dir,
        "turn",
        &[Seg::Quiet(1000), Seg::Talk(1000), Seg::Quiet(1500)],
    );
    let trace = d.dir.join("sipp-messages.log");
    let run = sipp_pcap(
        "uac_refer.xml",
        d.addr,
        &pcap,
        &["-trace_msg", "-message_file", trace.to_str().expect("path")],
    );
    assert!(
        run.status.success(),
        "sipp (REFER with context headers, then BYE): {}\nlogs: {:?}",
        run.stderr,
        d.all_logs()
    );
    let end = &d.call_ends(1)[0];
    assert_eq!(end["end_reason"], "transferred", "{end}");
    let sip_call_id = end["span"]["sip_call_id"]
        .as_str()
        .expect("span")
        .to_string();

    // The call log: call row, tool events, ticket with the external reference.
    let deadline = Instant::now() + Duration::from_secs(30);
    let detail = loop {
        let detail = calls(&d.dir, &["--json", &sip_call_id]);
        if detail.contains("EXT-42") && detail.contains("transferred") {
            break detail;
        }
        assert!(Instant::now() < deadline, "not logged: {detail}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let v: serde_json::Value = serde_json::from_str(&detail).expect("json");
    let tickets = v["tickets"].as_array().expect("tickets");
    assert_eq!(tickets.len(), 1, "one ticket: {detail}");
    let t = &tickets[0];
    assert_eq!(t["summary"], "Router broken");
    assert_eq!(t["priority"], "high");
    assert_eq!(t["category"], "support", "the line's default");
    assert_eq!(t["caller"], "sipp");
    assert_eq!(t["external_ref"], "EXT-42");
    // SIPp saw the REFER with the call's context in the dialplan's header names.
    let msgs = std::fs::read_to_string(&trace).expect("sipp trace");
    let refer = msgs
        .split("\nREFER ")
        .nth(1)
        .and_then(|m| m.split("\n\n").next())
        .expect("REFER in the trace");
    let refer = refer.replace('\r', "");
    assert!(
        refer.contains("\nRefer-To: <sip:queue@127.0.0.1>"),
        "{refer}"
    );
    let reference = t["reference"].as_str().expect("reference");
    assert!(
        refer.contains(&format!("\nX-Ticket-Id: {reference}")),
        "{refer}"
    );
    assert!(
        refer.contains("\nX-Why: router broken, wants a person"),
        "{refer}"
    );
    assert_eq!(
        v["call"]["transfer_target"], "sip:queue@127.0.0.1",
        "{detail}"
    );
    let events = v["events"].as_array().expect("events");
    let results: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["kind"] == "tool_result")
        .collect();
    assert_eq!(results.len(), 4, "{detail}");
    assert_eq!(
        results[0]["data"]["ok"], false,
        "invalid arguments: {detail}"
    );
    assert!(
        results[0]["data"]["output"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("'summary' must have at least 3 characters")),
        "{detail}"
    );
    assert_eq!(results[1]["data"]["ok"], true);
    assert_eq!(results[2]["data"]["output"]["body"]["status"], "shipped");
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "transfer" && e["data"]["status"] == "completed"),
        "{detail}"
    );

    // The ticketing system: one forced failure, then exactly one success, same key, signed.
    let seen = seen.lock().expect("lock").clone();
    let posts: Vec<&Seen> = seen.iter().filter(|s| s.path == "/tickets").collect();
    assert_eq!(posts.len(), 2, "one failure, one retry: {posts:?}");
    assert_eq!(posts.iter().filter(|s| s.status == 201).count(), 1);
    let key = posts[0].header("Idempotency-Key").expect("idempotency key");
    assert_eq!(posts[1].header("Idempotency-Key"), Some(key));
    for p in &posts {
        let ts: i64 = p
            .header("X-Voxgate-Timestamp")
            .and_then(|t| t.parse().ok())
            .expect("timestamp");
        assert_eq!(
            p.header("X-Voxgate-Signature"),
            Some(voxgate::tools::http::signature(SECRET.as_bytes(), ts, &p.body).as_str()),
            "signature over the exact body"
        );
    }
    let body: serde_json::Value = serde_json::from_slice(&posts[1].body).expect("json body");
    assert_eq!(body["summary"], "Router broken");
    let lookups: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.path.starts_with("/lookup"))
        .collect();
    assert_eq!(lookups.len(), 1);
    assert_eq!(lookups[0].path, "/lookup?order_number=A-1");
    // Tool calls are counted by tool and outcome.
    let (_, body) = common::http_get(d.http, "/metrics");
    for (series, want) in [
        (
            "voxgate_tool_calls_total{outcome=\"invalid\",tool=\"create_ticket\"}",
            1.0,
        ),
        (
            "voxgate_tool_calls_total{outcome=\"ok\",tool=\"create_ticket\"}",
            1.0,
        ),
        (
            "voxgate_tool_calls_total{outcome=\"ok\",tool=\"lookup_order\"}",
            1.0,
        ),
        (
            "voxgate_tool_calls_total{outcome=\"ok\",tool=\"transfer_to_human\"}",
            1.0,
        ),
    ] {
        assert_eq!(
            common::metric(&body, series),
            Some(want),
            "{series}\n{body}"
        );
    }
    assert!(!body.contains(SECRET), "secret in the metrics");
    // The secret never reaches the logs.
    let logs = std::fs::read_to_string(d.dir.join("voxgate.log")).expect("log");
    assert!(!logs.contains(SECRET), "secret in logs");
}

/// A scratch dir with one default dialplan `support` made of `body` (YAML after `match`).
fn line(name: &str, body: &str) -> std::path::PathBuf {
    let dir = scratch(name);
    let plans = dir.join("dialplans");
    std::fs::create_dir_all(&plans).expect("dialplans dir");
    std::fs::write(
        plans.join("support.yaml"),
        format!("name: support\nmatch: {{ default: true }}\n{body}"),
    )
    .expect("dialplan");
    dir
}

fn start(name: &str, body: &str, script: &str) -> Daemon {
    let dir = line(name, body);
    let script = sim_script(name, script);
    Daemon::start_with_plans(
        name,
        dir,
        "",
        &[("VOXGATE_MODEL_SIM_SCRIPT", script.as_str())],
    )
}

fn detail_when(d: &Daemon, sip_call_id: &str, done: impl Fn(&str) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let detail = calls(&d.dir, &["--json", sip_call_id]);
        if done(&detail) {
            return serde_json::from_str(&detail).expect("json");
        }
        assert!(Instant::now() < deadline, "not logged: {detail}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn said(d: &Daemon, role: &str, text: &str) -> bool {
    d.all_logs()
        .iter()
        .any(|l| l["event"] == "transcript" && l["role"] == role && l["text"] == text)
}

const AGENT: &str = "agent:\n  instructions: You help callers.\n  greeting: Hello.\n  tools: [create_ticket, end_call]\n";
const TRANSFER_AGENT: &str = "agent:\n  instructions: You help callers.\n  greeting: Hello.\n  tools: [create_ticket, transfer_to_human, end_call]\n";

#[test]
fn end_call_hangs_up_after_the_goodbye_has_played() {
    let d = start(
        "tools-end-call",
        AGENT,
        "voice: tone\ngreeting_reply: \"Hello.\"\nturns:\n  - reply: \"Glad I could help. Goodbye!\"\n    function_call: { name: end_call, arguments: { reason: \"answered\" } }\n",
    );
    let pcap = speech_pcap(
        &d.dir,
        "turn",
        &[Seg::Quiet(1000), Seg::Talk(800), Seg::Quiet(2500)],
    );
    let run = sipp_pcap("uac_play_wait_bye.xml", d.addr, &pcap, &[]);
    assert!(
        run.status.success(),
        "sipp must get voxgate's BYE: {}",
        run.stderr
    );
    let end = &d.call_ends(1)[0];
    assert_eq!(end["end_reason"], "agent_hangup", "{end}");
    // Every agent frame (greeting and goodbye) went out before the BYE: playout drained.
    let frames = end["agent_frames"].as_u64().unwrap_or(0);
    assert!(frames >= 50, "{end}");
    assert!(end["rtp_out"].as_u64().unwrap_or(0) >= frames, "{end}");
    assert!(said(&d, "agent", "Glad I could help. Goodbye!"));
}

#[test]
fn a_refused_transfer_is_explained_to_the_caller_and_the_call_goes_on() {
    let d = start(
        "tools-refer-refused",
        &format!("{TRANSFER_AGENT}transfer: {{ to: \"sip:queue@127.0.0.1\" }}\n"),
        "voice: tone\ngreeting_reply: \"Hello.\"\nturns:\n  - function_call: { name: transfer_to_human, arguments: { reason: \"wants a person\" } }\n  - reply: \"Transferring you now.\"\n  - reply: \"Sorry, nobody is free. Shall I file a ticket?\"\n",
    );
    let pcap = speech_pcap(
        &d.dir,
        "turn",
        &[Seg::Quiet(1000), Seg::Talk(800), Seg::Quiet(2500)],
    );
    let run = sipp_pcap(
        "uac_refer_fail.xml",
        d.addr,
        &pcap,
        &["-key", "refer_code", "603", "-key", "hold_ms", "5000"],
    );
    assert!(run.status.success(), "sipp: {}", run.stderr);
    let end = &d.call_ends(1)[0];
    assert_eq!(end["end_reason"], "caller_hangup", "{end}");
    assert!(
        said(&d, "agent", "Sorry, nobody is free. Shall I file a ticket?"),
        "the agent must be told and answer"
    );
    let sip_call_id = end["span"]["sip_call_id"]
        .as_str()
        .expect("span")
        .to_string();
    let v = detail_when(&d, &sip_call_id, |s| s.contains("caller_hangup"));
    let failed = v["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["kind"] == "transfer" && e["data"]["status"] == "failed")
        .cloned()
        .expect("a failed transfer event");
    assert!(
        failed["data"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("603")),
        "{failed}"
    );
    assert!(v["call"]["transfer_target"].is_null());
}

#[test]
fn a_refer_without_notify_times_out_and_the_agent_takes_over() {
    let d = start(
        "tools-refer-no-notify",
        &format!("{TRANSFER_AGENT}transfer: {{ to: \"sip:queue@127.0.0.1\", timeout: 5s }}\n"),
        "voice: tone\ngreeting_reply: \"Hello.\"\nturns:\n  - function_call: { name: transfer_to_human }\n  - reply: \"Transferring you now.\"\n  - reply: \"Nobody picked up, sorry.\"\n",
    );
    let pcap = speech_pcap(
        &d.dir,
        "turn",
        &[Seg::Quiet(1000), Seg::Talk(800), Seg::Quiet(2500)],
    );
    let run = sipp_pcap(
        "uac_refer_fail.xml",
        d.addr,
        &pcap,
        &["-key", "refer_code", "202", "-key", "hold_ms", "9000"],
    );
    assert!(run.status.success(), "sipp: {}", run.stderr);
    let end = &d.call_ends(1)[0];
    assert_eq!(end["end_reason"], "caller_hangup", "{end}");
    assert!(
        said(&d, "agent", "Nobody picked up, sorry."),
        "agent resumes"
    );
    assert!(d
        .all_logs()
        .iter()
        .any(|l| l["message"] == "transfer failed"
            && l["reason"].as_str().is_some_and(|r| r.contains("in time"))));
}

#[test]
fn a_key_press_transfers_without_the_agent() {
    let d = start(
        "tools-key-transfer",
        &format!(
            "{AGENT}transfer: {{ to: \"sip:queue@127.0.0.1\" }}\nkeys: {{ \"1\": transfer }}\n"
        ),
        "voice: tone\ngreeting_reply: \"Hello.\"\n",
    );
    let trace = d.dir.join("sipp-messages.log");
    let run = sipp(
        "uac_refer.xml",
        d.addr,
        "u1",
        &[
            "-m",
            "1",
            "-key",
            "pcap",
            "/usr/share/sip-tester/dtmf_2833_1.pcap",
            "-trace_msg",
            "-message_file",
            trace.to_str().expect("path"),
        ],
    );
    assert!(run.status.success(), "sipp: {}", run.stderr);
    let end = &d.call_ends(1)[0];
    assert_eq!(end["end_reason"], "transferred", "{end}");
    let msgs = std::fs::read_to_string(&trace).expect("sipp trace");
    assert!(
        msgs.contains("X-Voxgate-Reason: the caller pressed 1"),
        "default header name"
    );
}

#[test]
fn when_the_model_fails_the_fallback_files_a_call_back_ticket() {
    let d = start(
        "tools-fallback-ticket",
        &format!("{AGENT}tickets: {{ category: callbacks, priority: high }}\nfallback: {{ then: ticket }}\n"),
        "voice: tone\ngreeting_reply: \"Hello.\"\nturns:\n  - fail: error\n",
    );
    let pcap = speech_pcap(
        &d.dir,
        "turn",
        &[Seg::Quiet(1000), Seg::Talk(800), Seg::Quiet(2500)],
    );
    let run = sipp_pcap("uac_play_wait_bye.xml", d.addr, &pcap, &[]);
    assert!(
        run.status.success(),
        "sipp must get voxgate's BYE: {}",
        run.stderr
    );
    let end = &d.call_ends(1)[0];
    assert_eq!(end["end_reason"], "model_failure", "{end}");
    let sip_call_id = end["span"]["sip_call_id"]
        .as_str()
        .expect("span")
        .to_string();
    let v = detail_when(&d, &sip_call_id, |s| s.contains("Call-back requested"));
    let t = &v["tickets"][0];
    assert_eq!(
        t["summary"],
        "Call-back requested: the voice agent was unavailable"
    );
    assert_eq!(
        (t["category"].as_str(), t["priority"].as_str()),
        (Some("callbacks"), Some("high"))
    );
    assert_eq!(t["caller"], "sipp");
}

#[test]
fn a_silent_caller_gets_a_goodbye_then_bye() {
    let d = start(
        "limits-silence",
        &format!("{AGENT}limits: {{ silence: 5s }}\n"),
        "voice: tone\ngreeting_reply: \"Hello.\"\ndefault_reply: \"I will end the call now. Goodbye.\"\n",
    );
    let pcap = speech_pcap(&d.dir, "quiet", &[Seg::Quiet(15000)]);
    let run = sipp_pcap("uac_play_wait_bye.xml", d.addr, &pcap, &[]);
    assert!(
        run.status.success(),
        "sipp must get voxgate's BYE: {}",
        run.stderr
    );
    let end = &d.call_ends(1)[0];
    assert_eq!(end["end_reason"], "silence", "{end}");
    assert!(said(&d, "agent", "I will end the call now. Goodbye."));
}
