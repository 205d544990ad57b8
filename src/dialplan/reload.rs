//! The hot-reload driver: watches the dialplan folder and SIGHUP, reloads, and publishes each good
//! set on a `watch` channel.
//!
//! A change is reloaded ~200 ms after the last file event, so an editor's burst of writes (temp
//! file, rename, chmod) gives one reload. SIGHUP and [`ReloadHandle::reload_now`] reload at once.
//! Files are read on the blocking pool. An invalid change is rejected: every problem is logged
//! with `warn!` (one line each, `file:line:col: message`), the last good set stays published, and
//! the next change is tried again. Each reload logs one `info!` line with
//! `event = "dialplan_reload"`, `result = "ok"` or `"rejected"`, and the plan count.
//!
//! Calls in progress are not affected: they hold the `Arc<Dialplan>` they were routed with.
//! Only this driver reads the clock (for the debounce); loading and routing never do.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::load::DialplanSet;

/// Quiet time after the last file event before reloading.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// Reload counters, published on a watch channel (for metrics, and for tests to wait on).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReloadStats {
    /// Reloads that produced a new set.
    pub ok: u64,
    /// Reloads rejected because of problems (the previous set was kept).
    pub rejected: u64,
    /// Problems found by the last rejected reload.
    pub last_problems: usize,
}

/// Controls a running reloader. Dropping it stops the reloader (the last set stays published).
#[derive(Debug)]
pub struct ReloadHandle {
    stats: watch::Receiver<ReloadStats>,
    trigger: mpsc::Sender<()>,
    task: JoinHandle<()>,
}

impl ReloadHandle {
    /// Number of successful reloads so far.
    pub fn reloads_ok(&self) -> u64 {
        self.stats.borrow().ok
    }

    /// Number of rejected reloads so far.
    pub fn reloads_rejected(&self) -> u64 {
        self.stats.borrow().rejected
    }

    /// A receiver of the counters; `changed()` fires after every reload attempt.
    pub fn stats(&self) -> watch::Receiver<ReloadStats> {
        self.stats.clone()
    }

    /// Ask for a reload now (as SIGHUP does). Never blocks; requests made while one is pending
    /// are merged into it.
    pub fn reload_now(&self) {
        let _ = self.trigger.try_send(());
    }
}

impl Drop for ReloadHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Start watching `dir`. Returns the receiver of the current set (starting with `initial`) and
/// the handle. Must be called inside a tokio runtime. If the folder cannot be watched, or SIGHUP
/// cannot be caught, a warning is logged and the other triggers still work.
pub fn spawn_reloader(
    dir: PathBuf,
    initial: Arc<DialplanSet>,
) -> (watch::Receiver<Arc<DialplanSet>>, ReloadHandle) {
    let (set_tx, set_rx) = watch::channel(initial);
    let (stats_tx, stats_rx) = watch::channel(ReloadStats::default());
    let (trigger_tx, trigger_rx) = mpsc::channel(1);
    // Capacity 1 is enough: a pending event already means "reload when quiet".
    let (fs_tx, fs_rx) = mpsc::channel(1);
    let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if res.as_ref().is_ok_and(is_relevant) {
            let _ = fs_tx.try_send(());
        }
    })
    .and_then(|mut w| w.watch(&dir, RecursiveMode::Recursive).map(|()| w));
    let watcher = match watcher {
        Ok(w) => Some(w),
        Err(e) => {
            warn!(event = "dialplan_watch_failed", dir = %dir.display(), error = %e,
                  "cannot watch the dialplan folder; reload with SIGHUP");
            None
        }
    };
    // Register SIGHUP now, not in the task, so a signal sent right after this returns is caught.
    let hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            warn!(event = "dialplan_sighup_failed", error = %e, "cannot catch SIGHUP");
            None
        }
    };
    let driver = Driver {
        dir,
        set_tx,
        stats_tx,
        _watcher: watcher,
    };
    let task = tokio::spawn(driver.run(fs_rx, trigger_rx, hangup));
    let handle = ReloadHandle {
        stats: stats_rx,
        trigger: trigger_tx,
        task,
    };
    (set_rx, handle)
}

/// Dialplans, prompts, and renames/removals (whose paths may no longer say what they were).
fn is_relevant(ev: &notify::Event) -> bool {
    if ev.kind.is_access() {
        return false;
    }
    ev.paths.iter().any(|p| {
        matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "wav") | None
        )
    })
}

struct Driver {
    dir: PathBuf,
    set_tx: watch::Sender<Arc<DialplanSet>>,
    stats_tx: watch::Sender<ReloadStats>,
    /// Kept alive for as long as the driver runs; dropping it stops the events.
    _watcher: Option<notify::RecommendedWatcher>,
}

impl Driver {
    async fn run(
        self,
        mut fs: mpsc::Receiver<()>,
        mut trigger: mpsc::Receiver<()>,
        mut hangup: Option<tokio::signal::unix::Signal>,
    ) {
        loop {
            tokio::select! {
                Some(()) = fs.recv() => {
                    // Debounce: wait until the folder has been quiet for DEBOUNCE.
                    while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, fs.recv()).await {}
                }
                Some(()) = trigger.recv() => {}
                Some(()) = recv_signal(&mut hangup) => {
                    info!(event = "dialplan_sighup", "SIGHUP: reloading dialplans");
                }
                else => return,
            }
            self.reload().await;
        }
    }

    async fn reload(&self) {
        let dir = self.dir.clone();
        let loaded = tokio::task::spawn_blocking(move || DialplanSet::load(&[dir])).await;
        let result = match loaded {
            Ok(r) => r,
            Err(e) => {
                warn!(event = "dialplan_reload", result = "rejected", error = %e,
                      "dialplan loading panicked or was cancelled");
                return;
            }
        };
        match result {
            Ok(set) => {
                let plans = set.len();
                self.set_tx.send_replace(Arc::new(set));
                self.stats_tx.send_modify(|s| s.ok += 1);
                info!(
                    event = "dialplan_reload",
                    result = "ok",
                    plans,
                    "dialplans reloaded"
                );
            }
            Err(e) => {
                for p in &e.problems {
                    warn!(event = "dialplan_problem", "{p}");
                }
                let plans = self.set_tx.borrow().len();
                let problems = e.problems.len();
                self.stats_tx.send_modify(|s| {
                    s.rejected += 1;
                    s.last_problems = problems;
                });
                info!(
                    event = "dialplan_reload",
                    result = "rejected",
                    plans,
                    problems,
                    "dialplan change rejected; keeping the previous dialplans"
                );
            }
        }
    }
}

/// The next SIGHUP, or never when SIGHUP is not caught.
async fn recv_signal(sig: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match sig {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}
