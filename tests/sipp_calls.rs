//! Real SIPp calls against a real voxgate on loopback: UDP and TCP, audio both ways, CANCEL,
//! BYE from either side, OPTIONS, DTMF, re-INVITE, unknown dialogs. Assertions are on SIPp's
//! exit status and on counts in voxgate's per-call summary log line — never on timings.

mod common;

use common::{sipp, tone_pcap, Daemon};

fn field(v: &serde_json::Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or(0)
}

fn assert_ok(run: &common::Sipp, what: &str, d: &Daemon) {
    assert!(
        run.status.success(),
        "{what}: sipp failed ({:?}): {}\nvoxgate log: {}",
        run.status,
        run.stderr,
        d.dir.join("voxgate.log").display()
    );
}

/// Echo mode: SIPp plays 2 s of tone; voxgate must receive it and send it back.
fn basic_call(transport: &str) {
    let d = Daemon::start(&format!("basic-{transport}"), "media:\n  mode: echo\n");
    let pcap = tone_pcap(&d.dir, 2000);
    let run = sipp(
        "uac_basic.xml",
        d.addr,
        transport,
        &[
            "-m",
            "1",
            "-key",
            "pcap",
            pcap.to_str().expect("path"),
            "-key",
            "hold_ms",
            "3000",
        ],
    );
    assert_ok(&run, "basic call", &d);
    let ends = d.call_ends(1);
    assert_eq!(ends.len(), 1, "one call summary expected");
    let end = &ends[0];
    assert_eq!(end["end_reason"], "caller_hangup", "{end}");
    // 2 s of 20 ms packets = 100; allow for start-up at both ends.
    assert!(
        field(end, "rtp_in") >= 90,
        "voxgate got too little audio: {end}"
    );
    assert!(
        field(end, "rtp_out") >= 80,
        "voxgate echoed too little audio: {end}"
    );
}

#[test]
fn basic_call_udp_two_way_audio() {
    basic_call("u1");
}

#[test]
fn basic_call_tcp_two_way_audio() {
    basic_call("t1");
}

/// Prompt mode with SIPp echoing RTP back: voxgate's own packets return, which proves SIPp
/// received them.
#[test]
fn prompt_reaches_the_caller() {
    let dir = common::scratch("prompt-wav");
    let wav = dir.join("prompt.wav");
    common::write_wav(&wav, &common::pcap::tone(660.0, 1000, 6000)).expect("wav");
    // voxgate plays the prompt and hangs up after 3 s; SIPp echoes every RTP packet it gets.
    let d = Daemon::start(
        "prompt",
        &format!(
            "media:\n  mode: prompt\n  prompt: \"{}\"\n  max_call: 3s\n",
            wav.display()
        ),
    );
    let run = sipp("uac_wait_bye.xml", d.addr, "u1", &["-m", "1", "-rtp_echo"]);
    assert_ok(&run, "prompt call", &d);
    let ends = d.call_ends(1);
    let end = &ends[0];
    assert_eq!(end["end_reason"], "max_duration", "{end}");
    assert!(field(end, "rtp_out") >= 50, "{end}");
    assert!(
        field(end, "rtp_echoed") >= 25,
        "SIPp did not echo our audio back: {end}"
    );
}

#[test]
fn cancel_before_answer() {
    let d = Daemon::start("cancel", "media:\n  answer_delay: 5s\n");
    let run = sipp("uac_cancel.xml", d.addr, "u1", &["-m", "1"]);
    assert_ok(&run, "cancel", &d);
    let ends = d.call_ends(1);
    assert_eq!(ends[0]["end_reason"], "cancelled", "{}", ends[0]);
}

#[test]
fn bye_from_voxgate_on_rtp_timeout() {
    let d = Daemon::start_env("rtp-timeout", "", &[("VOXGATE_RTP_TIMEOUT", "2s")]);
    let run = sipp("uac_wait_bye.xml", d.addr, "u1", &["-m", "1"]);
    assert_ok(&run, "wait for BYE", &d);
    let ends = d.call_ends(1);
    assert_eq!(ends[0]["end_reason"], "rtp_timeout", "{}", ends[0]);
}

#[test]
fn options_answered() {
    let d = Daemon::start("options", "");
    let run = sipp("uac_options.xml", d.addr, "u1", &["-m", "1"]);
    assert_ok(&run, "options udp", &d);
    let run = sipp("uac_options.xml", d.addr, "t1", &["-m", "1"]);
    assert_ok(&run, "options tcp", &d);
}

#[test]
fn dtmf_digit_seen_once() {
    let d = Daemon::start("dtmf", "");
    let run = sipp(
        "uac_dtmf.xml",
        d.addr,
        "u1",
        &[
            "-m",
            "1",
            "-key",
            "pcap",
            "/usr/share/sip-tester/dtmf_2833_1.pcap",
            "-key",
            "hold_ms",
            "2000",
        ],
    );
    assert_ok(&run, "dtmf", &d);
    let ends = d.call_ends(1);
    assert_eq!(ends[0]["digits"], "1", "{}", ends[0]);
}

#[test]
fn reinvite_hold_and_resume() {
    let d = Daemon::start("reinvite", "");
    let run = sipp(
        "uac_reinvite.xml",
        d.addr,
        "u1",
        &["-m", "1", "-key", "hold_ms", "500"],
    );
    assert_ok(&run, "re-INVITE", &d);
    let ends = d.call_ends(1);
    assert_eq!(ends[0]["end_reason"], "caller_hangup", "{}", ends[0]);
}

#[test]
fn unknown_dialog_gets_481() {
    let d = Daemon::start("unknown-dialog", "");
    let run = sipp("uac_unknown_dialog.xml", d.addr, "u1", &["-m", "1"]);
    assert_ok(&run, "481", &d);
}

#[test]
fn many_calls_in_a_row_release_ports() {
    // A tiny port range (3 RTP ports, 3 calls at a time): 12 calls only work if ports come back.
    let probe = common::free_port();
    let (lo, hi) = (probe / 2 * 2, probe / 2 * 2 + 5);
    let d = Daemon::start_env(
        "ports",
        "media:\n  mode: echo\n",
        &[
            ("VOXGATE_RTP_PORT_MIN", &lo.to_string()),
            ("VOXGATE_RTP_PORT_MAX", &hi.to_string()),
        ],
    );
    let pcap = tone_pcap(&d.dir, 200);
    let run = sipp(
        "uac_basic.xml",
        d.addr,
        "u1",
        &[
            "-m",
            "12",
            "-l",
            "3",
            "-r",
            "10",
            "-key",
            "pcap",
            pcap.to_str().expect("path"),
            "-key",
            "hold_ms",
            "300",
        ],
    );
    assert_ok(&run, "12 calls", &d);
    assert_eq!(d.call_ends(12).len(), 12);
}
