//! Every call on record: a real SIPp call through the model is written to the embedded SQLite
//! call log, and `voxgate calls` lists it and shows its transcript.

mod common;

use std::time::{Duration, Instant};

use common::{calls, sim_script, sipp, sipp_pcap, speech_pcap, Daemon, Seg};

#[test]
fn a_model_call_is_logged_with_its_transcript() {
    let script = sim_script(
        "call-log",
        "voice: tone\ngreeting_reply: \"Hello.\"\nturns:\n  - reply: \"Let me look.\"\n    transcript: \"where is my order\"\n",
    );
    let d = Daemon::start_env(
        "call-log",
        "",
        &[("VOXGATE_MODEL_SIM_SCRIPT", script.as_str())],
    );
    let pcap = speech_pcap(
        &d.dir,
        "turn",
        &[Seg::Quiet(1500), Seg::Talk(1000), Seg::Quiet(2500)],
    );
    let run = sipp_pcap("uac_basic.xml", d.addr, &pcap, &["-key", "hold_ms", "5000"]);
    assert!(run.status.success(), "sipp: {}", run.stderr);
    let end = &d.call_ends(1)[0];
    let sip_call_id = end["span"]["sip_call_id"]
        .as_str()
        .expect("span")
        .to_string();
    // The writer batches off the call path; wait (bounded) for the row and the transcript.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (list, detail) = loop {
        let list = calls(&d.dir, &["--json"]);
        let detail = calls(&d.dir, &["--json", &sip_call_id]);
        if list.contains("caller_hangup") && detail.contains("where is my order") {
            break (list, detail);
        }
        assert!(
            Instant::now() < deadline,
            "call not logged: {list}\n{detail}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let rows: serde_json::Value = serde_json::from_str(&list).expect("json list");
    assert_eq!(rows.as_array().map(|a| a.len()), Some(1), "{list}");
    assert!(
        detail.contains("Let me look."),
        "agent transcript: {detail}"
    );
    assert!(
        detail.contains("\"dialplan\":\"default\"") || detail.contains("default"),
        "{detail}"
    );
    // The human-readable view prints the transcript as a conversation.
    let text = calls(&d.dir, &[&sip_call_id]);
    assert!(text.contains("caller: where is my order"), "{text}");
}

#[test]
fn a_line_that_keeps_no_transcripts_keeps_none() {
    let script = sim_script(
        "call-log-private",
        "voice: tone\ngreeting_reply: \"Hello.\"\nturns:\n  - reply: \"Let me look.\"\n    transcript: \"my card number is secret\"\n",
    );
    let dir = common::scratch("call-log-private");
    std::fs::create_dir_all(dir.join("dialplans")).expect("dir");
    std::fs::write(
        dir.join("dialplans/private.yaml"),
        "name: private\nmatch: { default: true }\nprivacy: { store_transcripts: false }\nagent:\n  instructions: Help.\n",
    )
    .expect("plan");
    let d = Daemon::start_with_plans(
        "call-log-private",
        dir,
        "",
        &[("VOXGATE_MODEL_SIM_SCRIPT", script.as_str())],
    );
    let pcap = speech_pcap(
        &d.dir,
        "turn",
        &[Seg::Quiet(1500), Seg::Talk(1000), Seg::Quiet(2500)],
    );
    let run = sipp_pcap("uac_basic.xml", d.addr, &pcap, &["-key", "hold_ms", "5000"]);
    assert!(run.status.success(), "sipp: {}", run.stderr);
    let end = &d.call_ends(1)[0];
    assert!(
        end["model_commits"].as_u64().unwrap_or(0) >= 1,
        "a turn happened: {end}"
    );
    let sip_call_id = end["span"]["sip_call_id"]
        .as_str()
        .expect("span")
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    let detail = loop {
        let detail = calls(&d.dir, &["--json", &sip_call_id]);
        if detail.contains("caller_hangup") {
            break detail;
        }
        assert!(Instant::now() < deadline, "call not logged: {detail}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(!detail.contains("secret"), "transcript stored: {detail}");
    assert!(
        !detail.contains("\"transcript\""),
        "transcript event stored: {detail}"
    );
    let logs = std::fs::read_to_string(d.dir.join("voxgate.log")).expect("log");
    assert!(
        !logs.contains("my card number is secret"),
        "transcript in the logs"
    );
}

#[test]
fn a_call_refused_for_overload_still_gets_a_row() {
    let d = Daemon::start_env(
        "call-log-503",
        "media:\n  mode: echo\n",
        &[("VOXGATE_SIP_MAX_CALLS", "1")],
    );
    let pcap = common::tone_pcap(&d.dir, 500);
    let addr = d.addr;
    let pcap_arg = pcap.to_str().expect("path").to_string();
    let first = std::thread::spawn(move || {
        sipp(
            "uac_basic.xml",
            addr,
            "u1",
            &[
                "-m", "1", "-key", "pcap", &pcap_arg, "-key", "hold_ms", "3000",
            ],
        )
    });
    d.wait_log(Duration::from_secs(20), |l| l["message"] == "answering")
        .expect("first call answered");
    let codes = common::udp_request_codes(
        d.addr,
        common::invite("100", "overload-1").as_bytes(),
        Duration::from_secs(5),
    );
    assert_eq!(codes.last(), Some(&503), "{codes:?}");
    assert!(first.join().expect("sipp").status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let detail = calls(&d.dir, &["--json", "overload-1"]);
        if detail.contains("rejected_503_overloaded") {
            break;
        }
        assert!(Instant::now() < deadline, "503 not logged: {detail}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
