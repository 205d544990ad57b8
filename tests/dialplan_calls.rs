//! Dialplans on real calls: a number no plan claims gets 404, closed hours play the plan's
//! prompt and hang up, and a broken edit to a dialplan is rejected while a SIPp call runs —
//! the call completes and the next call still gets the last good plan.

mod common;

use std::time::Duration;

use common::{invite, sipp, speech_pcap, udp_request_codes, Daemon, Seg};

fn plans_dir(name: &str) -> std::path::PathBuf {
    let dir = common::scratch(name);
    std::fs::create_dir_all(dir.join("dialplans")).expect("dir");
    dir
}

#[test]
fn unclaimed_number_gets_404() {
    let dir = plans_dir("dp-404");
    std::fs::write(
        dir.join("dialplans/support.yaml"),
        "name: support\nmatch: { numbers: [\"100\"] }\nagent:\n  instructions: Help.\n",
    )
    .expect("plan");
    let d = Daemon::start_with_plans("dp-404", dir, "", &[]);
    let codes = udp_request_codes(
        d.addr,
        invite("999", "dp404a").as_bytes(),
        Duration::from_secs(5),
    );
    assert_eq!(codes.last(), Some(&404), "{codes:?}");
    let codes = udp_request_codes(
        d.addr,
        invite("100", "dp404b").as_bytes(),
        Duration::from_secs(5),
    );
    assert_eq!(codes.last(), Some(&200), "{codes:?}");
}

#[test]
fn closed_hours_play_the_prompt_then_hang_up() {
    let dir = plans_dir("dp-closed");
    common::write_wav(
        &dir.join("dialplans/closed.wav"),
        &common::pcap::tone(520.0, 1200, 6000),
    )
    .expect("wav");
    let today = chrono::Utc::now().format("%Y-%m-%d");
    std::fs::write(
        dir.join("dialplans/billing.yaml"),
        format!(
            "name: billing\nmatch: {{ default: true }}\nhours:\n  timezone: UTC\n  open: {{ mon-sun: \"00:00-23:59\" }}\n  holidays: [\"{today}\"]\n  when_closed: {{ play: closed.wav, then: hangup }}\nagent:\n  instructions: Help.\n"
        ),
    )
    .expect("plan");
    let d = Daemon::start_with_plans("dp-closed", dir, "", &[]);
    let pcap = speech_pcap(&d.dir, "quiet", &[Seg::Quiet(4000)]);
    let run = sipp(
        "uac_play_wait_bye.xml",
        d.addr,
        "u1",
        &["-m", "1", "-key", "pcap", pcap.to_str().expect("path")],
    );
    assert!(run.status.success(), "sipp: {}", run.stderr);
    let end = &d.call_ends(1)[0];
    assert_eq!(end["end_reason"], "closed", "{end}");
    assert!(
        end["rtp_out"].as_u64().unwrap_or(0) >= 55,
        "1.2 s prompt: {end}"
    );
    assert_eq!(
        end["model_responses"].as_u64().unwrap_or(0),
        0,
        "no model when closed"
    );
}

#[test]
fn broken_edit_is_rejected_while_a_call_runs() {
    let d = Daemon::start("dp-reload", "media:\n  mode: echo\n");
    let pcap = common::tone_pcap(&d.dir, 1000);
    let addr = d.addr;
    let pcap_arg = pcap.to_str().expect("path").to_string();
    let call = std::thread::spawn(move || {
        sipp(
            "uac_basic.xml",
            addr,
            "u1",
            &[
                "-m", "1", "-key", "pcap", &pcap_arg, "-key", "hold_ms", "3000",
            ],
        )
    });
    // The call is up before the edit lands.
    d.wait_log(Duration::from_secs(20), |l| l["message"] == "answering")
        .expect("call answered");
    std::fs::write(
        d.dir.join("dialplans/default.yaml"),
        "name: default\nmatch: { default: true }\nagent:\n  intructions: oops\n",
    )
    .expect("broken edit");
    let rejected = d.wait_log(Duration::from_secs(20), |l| {
        l["event"] == "dialplan_reload" && l["result"] == "rejected"
    });
    assert!(
        rejected.is_some(),
        "the broken edit must be rejected and logged"
    );
    let run = call.join().expect("sipp thread");
    assert!(
        run.status.success(),
        "the running call completes: {}",
        run.stderr
    );
    // The last good plan still answers new calls.
    let codes = udp_request_codes(
        d.addr,
        invite("100", "dpreload2").as_bytes(),
        Duration::from_secs(5),
    );
    assert_eq!(codes.last(), Some(&200), "{codes:?}");
}
