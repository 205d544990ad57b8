//! The model on the line, end to end: SIPp places a real call with generated caller audio,
//! voxgate bridges it over a real WebSocket to the built-in Realtime simulator (`model.url:
//! sim`, driven by a script per test), and the assertions read counts from voxgate's call
//! summary and transcript log lines: audio appended in real time, committed turns, agent audio
//! sent as RTP, barge-in with cancel + truncate, and the fallback when the model fails.

mod common;

use common::{sim_script, sipp_pcap, speech_pcap, Daemon, Seg};

fn n(v: &serde_json::Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or(0)
}

fn start(name: &str, script: &str) -> Daemon {
    let path = sim_script(name, script);
    Daemon::start_env(name, "", &[("VOXGATE_MODEL_SIM_SCRIPT", path.as_str())])
}

#[test]
fn conversation_flows_both_ways() {
    let d = start(
        "model-conversation",
        "voice: tone\ngreeting_reply: \"Hello there.\"\nturns:\n  - reply: \"Let me check that for you.\"\n    transcript: \"my internet is down\"\n",
    );
    let pcap = speech_pcap(
        &d.dir,
        "turn",
        &[Seg::Quiet(2500), Seg::Talk(1000), Seg::Quiet(3500)],
    );
    let run = sipp_pcap("uac_basic.xml", d.addr, &pcap, &["-key", "hold_ms", "7500"]);
    assert!(run.status.success(), "sipp: {}", run.stderr);
    let end = &d.call_ends(1)[0];
    // 7 s of caller audio in 20 ms appends, sent as it arrived.
    assert!(n(end, "model_appends") >= 300, "{end}");
    assert!(n(end, "model_speech_started") >= 1, "{end}");
    assert!(n(end, "model_commits") >= 1, "{end}");
    assert!(n(end, "model_responses") >= 2, "greeting and reply: {end}");
    assert!(n(end, "agent_frames") >= 50, "{end}");
    assert!(
        n(end, "rtp_out") >= n(end, "agent_frames") * 9 / 10,
        "{end}"
    );
    assert_eq!(n(end, "barge_ins"), 0, "{end}");
    let transcripts = d.all_logs();
    let said = |role: &str, text: &str| {
        transcripts
            .iter()
            .any(|l| l["event"] == "transcript" && l["role"] == role && l["text"] == text)
    };
    assert!(
        said("caller", "my internet is down"),
        "caller transcript missing"
    );
    assert!(
        said("agent", "Let me check that for you."),
        "agent transcript missing"
    );
}

#[test]
fn caller_barging_in_cuts_the_agent_off() {
    let long =
        "This is a very long answer that goes on and on about every detail of your account, \
                your bills, your orders and our opening hours, so that the caller has plenty of \
                time to interrupt it.";
    let d = start(
        "model-barge-in",
        &format!("voice: tone\ngreeting_reply: \"Hi.\"\nturns:\n  - reply: \"{long}\"\n"),
    );
    // Quiet while the greeting plays, a turn, then the caller talks over the long answer.
    let pcap = speech_pcap(
        &d.dir,
        "barge",
        &[
            Seg::Quiet(2500),
            Seg::Talk(1000),
            Seg::Quiet(2000),
            Seg::Talk(1500),
            Seg::Quiet(2000),
        ],
    );
    let run = sipp_pcap("uac_basic.xml", d.addr, &pcap, &["-key", "hold_ms", "9500"]);
    assert!(run.status.success(), "sipp: {}", run.stderr);
    let end = &d.call_ends(1)[0];
    assert!(n(end, "barge_ins") >= 1, "{end}");
    assert!(n(end, "truncates") >= 1, "{end}");
    assert!(
        d.wait_log(std::time::Duration::from_secs(1), |l| l["message"]
            == "barge-in: agent stopped")
            .is_some(),
        "barge-in log line"
    );
}

#[test]
fn model_drop_reconnects_once_then_plays_fallback_and_hangs_up() {
    // Every connection to the simulator drops on the caller's first turn: the first drop is
    // answered by one reconnect (the agent apologises: the greeting reply), the second by the
    // fallback.
    let d = start(
        "model-drop",
        "voice: tone\ngreeting_reply: \"Hi.\"\nturns:\n  - fail: close\n",
    );
    let pcap = speech_pcap(
        &d.dir,
        "drop",
        &[
            Seg::Quiet(2000),
            Seg::Talk(1000),
            Seg::Quiet(3000),
            Seg::Talk(1000),
            Seg::Quiet(8000),
        ],
    );
    let run = sipp_pcap("uac_play_wait_bye.xml", d.addr, &pcap, &[]);
    assert!(
        run.status.success(),
        "sipp must receive voxgate's BYE: {}",
        run.stderr
    );
    let end = &d.call_ends(1)[0];
    assert_eq!(end["end_reason"], "model_failure", "{end}");
    let logs = d.all_logs();
    let count = |m: &str| logs.iter().filter(|l| l["message"] == m).count();
    assert_eq!(count("model connection dropped: reconnecting once"), 1);
    assert_eq!(
        logs.iter()
            .filter(|l| l["event"] == "transcript" && l["text"] == "Hi.")
            .count(),
        2,
        "greeting, then the apology after the reconnect"
    );
    // The greeting plus 1.5 s of fallback tones went out as RTP: the caller was never left
    // in silence.
    assert!(n(end, "rtp_out") >= 80, "{end}");
}

#[test]
fn refused_handshake_plays_fallback_then_hangs_up() {
    let d = start(
        "model-refused",
        "voice: tone\nrequire_key: \"not-what-voxgate-sends\"\n",
    );
    let pcap = speech_pcap(&d.dir, "quiet", &[Seg::Quiet(6000)]);
    let run = sipp_pcap("uac_play_wait_bye.xml", d.addr, &pcap, &[]);
    assert!(run.status.success(), "sipp: {}", run.stderr);
    let end = &d.call_ends(1)[0];
    assert_eq!(end["end_reason"], "model_failure", "{end}");
    assert!(n(end, "rtp_out") >= 70, "1.5 s of fallback tones: {end}");
}
