//! The hot-reload driver against a real folder: file changes, SIGHUP, and a broken change that
//! must leave the last good dialplans in place.
//!
//! Every wait is on the driver's own signals (the set channel or the counters) with a timeout
//! that only guards against a hang; nothing sleeps to let things settle.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use voxgate::dialplan::{spawn_reloader, DialplanSet, ReloadStats};

/// Generous: the debounce is 200 ms, but CI machines stall.
const GUARD: Duration = Duration::from_secs(20);

struct Folder(PathBuf);

impl Folder {
    fn new(tag: &str) -> Folder {
        let dir = std::env::temp_dir().join(format!("voxgate-reload-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Folder(dir)
    }

    fn write(&self, file: &str, text: &str) {
        std::fs::write(self.0.join(file), text).expect("write plan");
    }

    fn load(&self) -> Arc<DialplanSet> {
        Arc::new(DialplanSet::load(std::slice::from_ref(&self.0)).expect("valid plans"))
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn plan(name: &str, number: &str) -> String {
    format!("name: {name}\nmatch: {{ numbers: [\"{number}\"] }}\nagent: {{ instructions: Hi. }}\n")
}

async fn wait_stats(
    rx: &mut watch::Receiver<ReloadStats>,
    what: &str,
    f: impl FnMut(&ReloadStats) -> bool,
) {
    let done = matches!(tokio::time::timeout(GUARD, rx.wait_for(f)).await, Ok(Ok(_)));
    assert!(
        done,
        "timed out waiting for {what}; stats now {:?}",
        *rx.borrow()
    );
}

fn names(set: &DialplanSet) -> Vec<String> {
    set.plans().iter().map(|p| p.name.clone()).collect()
}

#[tokio::test]
async fn broken_change_keeps_the_last_good_set_then_a_fix_is_picked_up() {
    let dir = Folder::new("broken");
    dir.write("support.yaml", &plan("support", "100"));
    let initial = dir.load();
    let (mut sets, handle) = spawn_reloader(dir.0.clone(), Arc::clone(&initial));
    let mut stats = handle.stats();

    // An analyst saves a typo.
    dir.write(
        "support.yaml",
        "name: support\nmatch: { numbers: [\"100\"] }\nagent: { intructions: Hi. }\n",
    );
    wait_stats(&mut stats, "the rejected reload", |s| s.rejected >= 1).await;
    assert!(handle.reloads_rejected() >= 1);
    assert!(stats.borrow().last_problems >= 1);
    // The last good plans stay published (SIGHUP from a parallel test may have republished
    // them as a new, equal set, so compare contents, not pointers).
    assert_eq!(names(&sets.borrow_and_update()), ["support"]);
    assert_eq!(initial.plans()[0].agent.instructions, "Hi.");

    // The fix arrives: the new set replaces the old one.
    dir.write("support.yaml", &plan("support-v2", "100"));
    let changed = tokio::time::timeout(GUARD, sets.wait_for(|s| names(s) == ["support-v2"]))
        .await
        .is_ok_and(|r| r.is_ok());
    assert!(changed, "timed out waiting for the fixed set");
    assert!(handle.reloads_ok() >= 1);
}

#[tokio::test]
async fn sighup_and_reload_now_reload_at_once() {
    let dir = Folder::new("sighup");
    dir.write("a.yaml", &plan("a", "200"));
    let (sets, handle) = spawn_reloader(dir.0.clone(), dir.load());
    let mut stats = handle.stats();

    // Reloading unchanged files succeeds and republishes.
    let before = handle.reloads_ok();
    handle.reload_now();
    wait_stats(&mut stats, "reload_now", |s| s.ok > before).await;

    // SIGHUP (the operator's `kill -HUP`) also reloads. The handler was installed by
    // spawn_reloader, so the signal cannot terminate the test process.
    let before = handle.reloads_ok();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    wait_stats(&mut stats, "the SIGHUP reload", |s| s.ok > before).await;
    assert_eq!(names(&sets.borrow()), ["a"]);
}

#[tokio::test]
async fn a_new_file_adds_a_plan() {
    let dir = Folder::new("add");
    dir.write("a.yaml", &plan("a", "300"));
    let (mut sets, _handle) = spawn_reloader(dir.0.clone(), dir.load());
    dir.write("b.yml", &plan("b", "301"));
    let changed = tokio::time::timeout(GUARD, sets.wait_for(|s| s.len() == 2))
        .await
        .is_ok_and(|r| r.is_ok());
    assert!(changed, "timed out waiting for the new plan");
    assert_eq!(names(&sets.borrow()), ["a", "b"]);
}

/// Log lines captured from a `tracing` subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().map(|v| v.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_string)
            .collect()
    }
}

#[tokio::test]
async fn a_rejected_reload_logs_each_problem_and_one_summary_line() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // current_thread runtime: the driver task logs on this thread, under this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);

    let dir = Folder::new("logs");
    dir.write("a.yaml", &plan("a", "400"));
    let (_sets, handle) = spawn_reloader(dir.0.clone(), dir.load());
    let mut stats = handle.stats();
    dir.write("a.yaml", "name: a\nmatch: { numbers: [\"400\"] }\nagent: { instructions: Hi., voice: marine }\nlimits: { silence: 30 }\n");
    wait_stats(&mut stats, "the rejected reload", |s| s.rejected >= 1).await;

    // The WARN lines logged since the previous reload, and the first rejected summary line.
    // (A SIGHUP sent by a parallel test may add other reloads before or after; skip those.)
    let lines = logs.lines();
    let mut problems: Vec<&String> = Vec::new();
    let mut summary = None;
    for line in &lines {
        if line.contains("event=\"dialplan_reload\"") {
            if line.contains("result=\"rejected\"") {
                summary = Some(line);
                break;
            }
            problems.clear();
        } else if line.contains("WARN") {
            problems.push(line);
        }
    }
    let file = dir.0.join("a.yaml").display().to_string();
    assert_eq!(problems.len(), 2, "{lines:#?}");
    assert!(
        problems[0].contains(&format!("{file}:3:36: 'agent.voice' must be one of")),
        "{lines:#?}"
    );
    assert!(
        problems[1].contains(&format!("{file}:4:20: 'limits.silence': '30' needs a unit")),
        "{lines:#?}"
    );
    let summary = summary.expect("a rejected summary line");
    assert!(summary.contains("INFO"), "{summary}");
    assert!(
        summary.contains("result=\"rejected\" plans=1 problems=2"),
        "{summary}"
    );
}
