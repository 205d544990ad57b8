//! The example dialplans in `dialplans/` must pass `voxgate check` and route as documented.
//!
//! Their prompts are generated, not committed: when one is missing this test runs
//! `scripts/gen-prompts` (espeak-ng and sox, installed by scripts/setup in CI).

use std::path::{Path, PathBuf};
use std::process::Command;

use voxgate::dialplan::{check_paths, CallFacts, DialplanSet, RouteDecision, Then};

const PROMPTS: [&str; 4] = ["closed", "unavailable", "transfer", "goodbye"];

fn ensure_prompts() {
    let dir = Path::new("dialplans/prompts");
    if PROMPTS
        .iter()
        .all(|p| dir.join(format!("{p}.wav")).is_file())
    {
        return;
    }
    let out = Command::new("scripts/gen-prompts")
        .output()
        .expect("run scripts/gen-prompts");
    assert!(
        out.status.success(),
        "scripts/gen-prompts failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn examples_pass_check_and_route() {
    ensure_prompts();
    let dir = PathBuf::from("dialplans");
    let report = check_paths(std::slice::from_ref(&dir));
    let listing: String = report.problems.iter().map(|p| format!("{p}\n")).collect();
    assert!(report.is_ok(), "{listing}");
    assert_eq!(report.summary(), "ok: 3 dialplans in 3 files");

    let set = DialplanSet::load(&[dir]).expect("examples load");
    let route = |callee: &str, now: &str| {
        set.route(&CallFacts {
            callee,
            to_user: None,
            caller: "+1 555 0123",
            trunk: None,
            now: now.parse().expect("time"),
        })
    };
    // Tuesday 2026-06-02, 15:00 UTC: 11:00 in New York, 17:00 in Berlin.
    let tue = "2026-06-02T15:00:00Z";
    assert!(matches!(route("+15550100", tue), RouteDecision::Open(p) if p.name == "acme-support"));
    // Billing closes at 17:00 Berlin time: the closed prompt, then a callback ticket.
    match route("200", tue) {
        RouteDecision::Closed { plan, action } => {
            assert_eq!(plan.name, "acme-billing");
            assert_eq!(action.then, Then::Ticket);
            assert!(action
                .play
                .is_some_and(|p| p.ends_with("prompts/closed.wav")));
        }
        other => panic!("billing should be closed: {other:?}"),
    }
    assert!(matches!(route("999", tue), RouteDecision::Open(p) if p.name == "minimal"));

    let support = set.get("acme-support").expect("support plan");
    let zero = support.keys.get(&'0').expect("key 0");
    assert_eq!(zero.then, Then::Transfer);
    assert_eq!(
        zero.to.as_deref(),
        Some("sip:support-queue@pbx.example.com")
    );
    assert_eq!(support.fallback.then, Then::Transfer);
    let now = "2026-06-02T15:00:00Z".parse().expect("time");
    let instructions = support.render_instructions("+15550123", "100", now);
    assert!(instructions.contains("The caller's number is +15550123;"));
    assert!(instructions.contains("today is Tuesday 2026-06-02, it is 11:00 EDT."));
}

#[test]
fn gen_prompts_says_what_is_missing() {
    let empty = std::env::temp_dir().join(format!("voxgate-nopath-{}", std::process::id()));
    std::fs::create_dir_all(&empty).expect("temp dir");
    let out = Command::new("/bin/bash")
        .arg("scripts/gen-prompts")
        .arg(empty.join("out"))
        .env("PATH", &empty)
        .output()
        .expect("run bash");
    let _ = std::fs::remove_dir_all(&empty);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "gen-prompts: missing espeak-ng sox; install with scripts/setup or 'apt-get install \
         espeak-ng sox'\n"
    );
}
