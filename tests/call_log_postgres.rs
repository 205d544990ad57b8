//! No call lost when Postgres goes away: SIPp places 12 model calls (each with a caller and an
//! agent transcript) while the test stops the Postgres cluster after the first calls and starts
//! it again later. Every call and every transcript event must end up in Postgres exactly once
//! (written directly, or spooled and replayed).

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{sim_script, sipp, speech_pcap, Daemon, Seg};

const CALLS: usize = 12;

fn pg(cmd: &str, dir: &Path) -> String {
    let mut c = Command::new(common::repo().join("scripts/pg"));
    c.arg(cmd).arg(dir);
    if cmd == "start" {
        c.arg("--watch").arg(std::process::id().to_string());
    }
    let out = c.output().expect("scripts/pg");
    assert!(
        out.status.success(),
        "scripts/pg {cmd} failed (is postgresql installed? run scripts/setup): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn calls(url: &str, args: &[&str]) -> Option<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_voxgate"))
        .arg("calls")
        .arg("--json")
        .args(args)
        .env("DATABASE_URL", url)
        .output()
        .ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

#[test]
fn postgres_outage_mid_run_loses_nothing() {
    // A short path: the cluster's unix socket path must stay under 100 bytes.
    let dir = PathBuf::from(format!("/tmp/vg-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let url = pg("start", &dir);
    let script = sim_script(
        "pg-outage",
        "voice: tone\ngreeting_reply: \"Hi.\"\ndefault_reply: \"Noted.\"\nturns:\n  - reply: \"Noted.\"\n    transcript: \"hello there\"\n",
    );
    // Every call gets the same scripted transcript: the simulator restarts its turns per connection.
    let d = Daemon::start_env(
        "pg-outage",
        "",
        &[
            ("DATABASE_URL", url.as_str()),
            ("VOXGATE_MODEL_SIM_SCRIPT", script.as_str()),
        ],
    );
    let pcap = speech_pcap(
        &d.dir,
        "turn",
        &[Seg::Quiet(800), Seg::Talk(700), Seg::Quiet(1700)],
    );
    let addr = d.addr;
    let pcap_arg = pcap.to_str().expect("path").to_string();
    let run = std::thread::spawn(move || {
        sipp(
            "uac_basic.xml",
            addr,
            "u1",
            &[
                "-m",
                &CALLS.to_string(),
                "-l",
                "2",
                "-r",
                "2",
                "-key",
                "pcap",
                &pcap_arg,
                "-key",
                "hold_ms",
                "3300",
            ],
        )
    });
    // Stop Postgres once a few calls are done, start it again once a few more ended without it.
    assert_eq!(d.call_ends(3).len(), 3);
    pg("stop", &dir);
    assert_eq!(d.call_ends(7).len(), 7);
    pg("start", &dir);
    let sipp_run = run.join().expect("sipp thread");
    assert!(sipp_run.status.success(), "sipp: {}", sipp_run.stderr);
    assert_eq!(d.call_ends(CALLS).len(), CALLS);

    // Replay happens in the background with backoff: wait (bounded) until all rows are in.
    let deadline = Instant::now() + Duration::from_secs(90);
    let rows = loop {
        if let Some(rows) = calls(&url, &["--limit", "100"]) {
            let ended = rows
                .as_array()
                .map(|a| a.iter().filter(|r| !r["ended_at"].is_null()).count())
                .unwrap_or(0);
            if ended >= CALLS {
                break rows;
            }
        }
        assert!(
            Instant::now() < deadline,
            "calls were not all logged in time"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let rows = rows.as_array().expect("array");
    assert_eq!(rows.len(), CALLS, "exactly one row per call: {rows:?}");
    let sip_ids: HashSet<&str> = rows
        .iter()
        .filter_map(|r| r["sip_call_id"].as_str())
        .collect();
    assert_eq!(sip_ids.len(), CALLS, "no duplicate calls");
    for id in sip_ids {
        let detail = calls(&url, &[id]).expect("call detail");
        let transcripts: Vec<&serde_json::Value> = detail["events"]
            .as_array()
            .map(|e| e.iter().filter(|e| e["kind"] == "transcript").collect())
            .unwrap_or_default();
        let caller = transcripts
            .iter()
            .filter(|e| e["data"]["role"] == "caller")
            .count();
        assert_eq!(caller, 1, "{id}: exactly one caller transcript: {detail}");
    }
    pg("stop", &dir);
    let _ = std::fs::remove_dir_all(&dir);
}
