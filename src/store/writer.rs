//! The writer task and the handle the call flow submits records through.
//!
//! Path of a record:
//! 1. [`StoreHandle::submit`] drops opted-out transcripts, then `try_send`s into a bounded queue.
//!    If the queue is full it hands the record to the spool thread's channel instead (a plain send
//!    on an unbounded std channel: never awaits, never blocks). That channel is the one unbounded
//!    buffer, and it drains at disk speed on its own thread, independent of the database.
//! 2. The writer task collects up to `batch_max` records or waits `batch_wait`, whichever first,
//!    and writes them in one transaction bounded by `write_timeout`.
//! 3. A failed or timed-out batch goes to the spool, and the writer turns *degraded*: later batches
//!    go straight to the spool (no time wasted on a dead database) and a retry with exponential
//!    backoff (`retry_min` .. `retry_max`) seals the spool and replays its files in order, deleting
//!    each one once all its records are in the database. When the spool is empty, it is healthy
//!    again. A healthy writer also replays whenever the spool got records from the overflow path.
//! 4. A record the database rejects for good (constraint, bad data) is isolated from its batch and
//!    written to the dead-letter file, so one bad record cannot block the spool forever.
//!
//! Because every write is an idempotent, order-independent upsert (see `db.rs`), a batch that timed
//! out but committed later, a spool replayed twice, or records overtaking each other via the
//! overflow path all end in the same rows.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::{timeout, timeout_at, Instant};

use super::db::{is_permanent, Db};
use super::record::{kind, CallId, NewTicket, Record, TicketId};
use super::spool::{self, SpoolMsg};
use super::{StoreConfig, StoreError};

/// What travels on the writer queue.
// Records are the common case; boxing them to shrink the rare `Sync` would cost an allocation each.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Msg {
    Record(Record),
    Sync(oneshot::Sender<SyncReport>),
}

/// State of the store after [`StoreHandle::sync`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncReport {
    /// The last write or replay attempt failed; records are going to the spool.
    pub degraded: bool,
    /// Spool files still waiting to be replayed.
    pub spool_files: usize,
    /// Records held in memory because the spool disk refused them.
    pub held_in_memory: usize,
}

impl SyncReport {
    /// Everything submitted before the sync is in the database.
    pub fn is_clean(&self) -> bool {
        !self.degraded && self.spool_files == 0 && self.held_in_memory == 0
    }
}

/// Counters since start (for metrics: `voxgate_store_*_total`).
#[derive(Debug, Default)]
pub(crate) struct Stats {
    submitted: AtomicU64,
    overflowed: AtomicU64,
    suppressed: AtomicU64,
    written: AtomicU64,
    spooled: AtomicU64,
    replayed: AtomicU64,
    rejected: AtomicU64,
    db_failures: AtomicU64,
    /// Mirrors the writer's `degraded` flag (records are going to the spool).
    degraded: AtomicBool,
}

/// A snapshot of the store's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Records accepted by `submit`.
    pub submitted: u64,
    /// Records that found the queue full and went straight to the spool.
    pub overflowed: u64,
    /// Transcript events dropped because their call opted out.
    pub suppressed: u64,
    /// Records written to the database from the queue.
    pub written: u64,
    /// Records the writer sent to the spool (database down or slow).
    pub spooled: u64,
    /// Records written to the database from spool files.
    pub replayed: u64,
    /// Records the database refused for good (in `rejected-*.jsonl`).
    pub rejected: u64,
    /// Failed or timed-out batch writes and replays.
    pub db_failures: u64,
    /// The last write or replay failed: records are going to the spool until the database is back.
    pub degraded: bool,
}

/// Cheap-to-clone front of the store: `submit` never awaits, never blocks, never drops a record.
#[derive(Debug, Clone)]
pub struct StoreHandle {
    queue: mpsc::Sender<Msg>,
    spool: std_mpsc::Sender<SpoolMsg>,
    db: Db,
    /// Calls started with `store_transcripts: false` and not yet ended. Touched once per record
    /// under a std lock that is never held across an await.
    quiet: Arc<RwLock<HashSet<CallId>>>,
    stats: Arc<Stats>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Msg::Record(r) => f.debug_tuple("Record").field(r).finish(),
            Msg::Sync(_) => f.write_str("Sync"),
        }
    }
}

impl StoreHandle {
    /// Queues `record` for the database; the spool takes it if the queue is full. Errs only when
    /// the store has shut down.
    pub fn submit(&self, record: Record) -> Result<(), StoreError> {
        if !self.admit(&record) {
            self.stats.suppressed.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        self.stats.submitted.fetch_add(1, Ordering::Relaxed);
        let record = match self.queue.try_send(Msg::Record(record)) {
            Ok(()) => return Ok(()),
            Err(mpsc::error::TrySendError::Full(Msg::Record(r)))
            | Err(mpsc::error::TrySendError::Closed(Msg::Record(r))) => r,
            Err(_) => return Ok(()), // not reachable: we only sent a Record
        };
        self.stats.overflowed.fetch_add(1, Ordering::Relaxed);
        self.spool
            .send(SpoolMsg::Append(vec![record]))
            .map_err(|_| StoreError::Closed)
    }

    /// Makes the ticket's id and reference here and now, then submits it (fire-and-forget): the
    /// agent can read the reference to the caller before the row is written.
    pub fn create_ticket(&self, ticket: NewTicket) -> Result<TicketId, StoreError> {
        let (id, record) = ticket.into_record();
        self.submit(record)?;
        Ok(id)
    }

    /// Waits until everything submitted before is in the database or the spool, tries a replay
    /// now if the spool has records, and reports. For tests and shutdown, not for the call path.
    pub async fn sync(&self) -> Result<SyncReport, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.queue
            .send(Msg::Sync(tx))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)
    }

    /// The database pool (for retention and reads).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Counters since start.
    pub fn stats(&self) -> StoreStats {
        let s = &self.stats;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StoreStats {
            submitted: get(&s.submitted),
            overflowed: get(&s.overflowed),
            suppressed: get(&s.suppressed),
            written: get(&s.written),
            spooled: get(&s.spooled),
            replayed: get(&s.replayed),
            rejected: get(&s.rejected),
            db_failures: get(&s.db_failures),
            degraded: s.degraded.load(Ordering::Relaxed),
        }
    }

    /// Records waiting in the writer's queue (for metrics).
    pub fn queue_depth(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// The writer has stopped: records can no longer be taken.
    pub fn is_closed(&self) -> bool {
        self.queue.is_closed()
    }

    /// Tracks the per-call transcript switch; false = drop this record.
    fn admit(&self, record: &Record) -> bool {
        match record {
            Record::CallStarted {
                id,
                store_transcripts: false,
                ..
            } => {
                self.quiet
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(*id);
                true
            }
            Record::CallEvent {
                call_id, kind: k, ..
            } if k == kind::TRANSCRIPT => !self
                .quiet
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(call_id),
            Record::CallEnded { id, .. } => {
                let mut quiet = self.quiet.write().unwrap_or_else(PoisonError::into_inner);
                if !quiet.is_empty() {
                    quiet.remove(id);
                }
                true
            }
            _ => true,
        }
    }
}

/// Starts the spool thread and the writer task; `migrated` says whether the schema is in place.
pub(crate) fn start(
    db: Db,
    cfg: &StoreConfig,
    migrated: bool,
) -> Result<(StoreHandle, tokio::task::JoinHandle<()>), StoreError> {
    let dirty = Arc::new(AtomicBool::new(false));
    let (spool_tx, spool_join) =
        spool::spawn(cfg.spool_dir.clone(), dirty.clone()).map_err(|source| StoreError::Spool {
            path: cfg.spool_dir.clone(),
            source,
        })?;
    let (queue, rx) = mpsc::channel(cfg.queue_capacity.max(1));
    let stats = Arc::new(Stats::default());
    let handle = StoreHandle {
        queue,
        spool: spool_tx.clone(),
        db: db.clone(),
        quiet: Arc::default(),
        stats: stats.clone(),
    };
    let writer = Writer {
        db,
        rx,
        spool: spool_tx,
        spool_dir: cfg.spool_dir.clone(),
        dirty,
        cfg: cfg.clone(),
        migrated,
        degraded: false,
        backoff: cfg.retry_min,
        next_retry: Instant::now(),
        stats,
    };
    let join = tokio::spawn(async move {
        writer.run().await;
        // All senders are gone once the writer returns; the spool thread fsyncs and exits.
        if tokio::task::spawn_blocking(move || spool_join.join())
            .await
            .is_err()
        {
            tracing::error!("store: spool thread panicked");
        }
    });
    Ok((handle, join))
}

struct Writer {
    db: Db,
    rx: mpsc::Receiver<Msg>,
    spool: std_mpsc::Sender<SpoolMsg>,
    spool_dir: PathBuf,
    /// Set by the spool thread when it holds records; cleared by a replay.
    dirty: Arc<AtomicBool>,
    cfg: StoreConfig,
    /// Migrations ran (at open, or at the first replay that reached the database).
    migrated: bool,
    /// The database failed last time: new batches go to the spool until a replay succeeds.
    degraded: bool,
    backoff: Duration,
    next_retry: Instant,
    stats: Arc<Stats>,
}

/// Why a write did not happen.
enum WriteFail {
    Db(sqlx::Error),
    Timeout,
    Schema(StoreError),
}

impl std::fmt::Display for WriteFail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteFail::Db(e) => e.fmt(f),
            WriteFail::Timeout => f.write_str("timed out"),
            WriteFail::Schema(e) => e.fmt(f),
        }
    }
}

impl Writer {
    async fn run(mut self) {
        let mut batch: Vec<Record> = Vec::with_capacity(self.cfg.batch_max);
        let mut syncs: Vec<oneshot::Sender<SyncReport>> = Vec::new();
        let mut open = true;
        while open {
            let wants_replay = self.degraded || self.dirty.load(Ordering::SeqCst);
            let first = tokio::select! {
                m = self.rx.recv() => m,
                _ = tokio::time::sleep_until(self.next_retry), if wants_replay => {
                    self.replay().await;
                    continue;
                }
            };
            let Some(first) = first else { break };
            let deadline = Instant::now() + self.cfg.batch_wait;
            let mut next = Some(first);
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Record(r) => batch.push(r),
                    Msg::Sync(tx) => {
                        syncs.push(tx);
                        break; // write what we have now
                    }
                }
                if batch.len() >= self.cfg.batch_max {
                    break;
                }
                match timeout_at(deadline, self.rx.recv()).await {
                    Ok(Some(m)) => next = Some(m),
                    Ok(None) => open = false,
                    Err(_) => {}
                }
            }
            self.flush_batch(&mut batch).await;
            if !syncs.is_empty() {
                let report = self.sync().await;
                for tx in syncs.drain(..) {
                    let _ = tx.send(report);
                }
            }
        }
        // Queue closed: everything is written or spooled; one last try to empty the spool.
        if self.dirty.load(Ordering::SeqCst) && !self.degraded {
            self.replay().await;
        }
        // The pool is not closed here: a retention task or a reader may still hold a clone.
    }

    async fn flush_batch(&mut self, batch: &mut Vec<Record>) {
        if batch.is_empty() {
            return;
        }
        let records = std::mem::take(batch);
        if self.degraded {
            self.spill(records);
            return;
        }
        match self.write(&records).await {
            Ok(()) => {
                self.stats
                    .written
                    .fetch_add(records.len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                self.fail(&e);
                self.spill(records);
            }
        }
    }

    fn spill(&mut self, records: Vec<Record>) {
        self.stats
            .spooled
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        if self.spool.send(SpoolMsg::Append(records)).is_err() {
            tracing::error!("store: spool thread is gone; records lost");
        }
    }

    /// Writes one batch (migrating first if that never happened); isolates permanently bad records.
    async fn write(&mut self, records: &[Record]) -> Result<(), WriteFail> {
        if !self.migrated {
            match timeout(self.cfg.write_timeout, self.db.migrate()).await {
                Ok(Ok(v)) => {
                    tracing::info!(version = v.after, "store: database schema ready");
                    self.migrated = true;
                }
                Ok(Err(StoreError::Database(e))) => return Err(WriteFail::Db(e)),
                Ok(Err(e)) => return Err(WriteFail::Schema(e)),
                Err(_) => return Err(WriteFail::Timeout),
            }
        }
        match timeout(self.cfg.write_timeout, self.db.write_records(records)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) if is_permanent(&e) && records.len() > 1 => {
                for r in records {
                    Box::pin(self.write(std::slice::from_ref(r))).await?;
                }
                Ok(())
            }
            Ok(Err(e)) if is_permanent(&e) => {
                tracing::error!(error = %e, "store: database rejected a record; kept in rejected-*.jsonl");
                let rejected: Vec<_> = records.iter().map(|r| (r.clone(), e.to_string())).collect();
                self.stats
                    .rejected
                    .fetch_add(rejected.len() as u64, Ordering::Relaxed);
                let _ = self.spool.send(SpoolMsg::Reject(rejected));
                Ok(())
            }
            Ok(Err(e)) => Err(WriteFail::Db(e)),
            Err(_) => Err(WriteFail::Timeout),
        }
    }

    fn fail(&mut self, e: &WriteFail) {
        self.stats.db_failures.fetch_add(1, Ordering::Relaxed);
        if self.degraded {
            self.backoff = (self.backoff * 2).min(self.cfg.retry_max);
            tracing::debug!(error = %e, retry_in = ?self.backoff, "store: database still unavailable");
        } else {
            self.backoff = self.cfg.retry_min;
            tracing::warn!(error = %e, retry_in = ?self.backoff,
                "store: database write failed; spooling records until it is back");
        }
        if let WriteFail::Schema(e) = e {
            tracing::error!(error = %e, "store: cannot use this database; records stay in the spool");
        }
        self.degraded = true;
        self.stats.degraded.store(true, Ordering::Relaxed);
        self.next_retry = Instant::now() + self.backoff;
    }

    /// Seals the spool and writes its files to the database in order, deleting each when done.
    async fn replay(&mut self) {
        self.dirty.store(false, Ordering::SeqCst);
        let (tx, rx) = oneshot::channel();
        if self.spool.send(SpoolMsg::Seal(tx)).is_err() {
            return;
        }
        let files = match rx.await {
            Ok(Ok(files)) => files,
            Ok(Err(e)) => {
                tracing::error!(error = %e, dir = %self.spool_dir.display(), "store: cannot list spool");
                self.dirty.store(true, Ordering::SeqCst);
                self.next_retry = Instant::now() + self.cfg.retry_max;
                return;
            }
            Err(_) => return,
        };
        if files.is_empty() && self.degraded {
            // Nothing spooled yet (e.g. down since start): probe the database with the migration.
            if let Err(e) = self.write(&[]).await {
                self.fail(&e);
                return;
            }
        }
        for path in files {
            let p = path.clone();
            let read = match tokio::task::spawn_blocking(move || spool::read_spool_file(&p)).await {
                Ok(Ok(read)) => read,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, path = %path.display(), "store: cannot read spool file");
                    self.dirty.store(true, Ordering::SeqCst);
                    self.next_retry = Instant::now() + self.cfg.retry_max;
                    return;
                }
                Err(_) => return,
            };
            for chunk in read.records.chunks(self.cfg.batch_max.max(1)) {
                if let Err(e) = self.write(chunk).await {
                    self.fail(&e);
                    self.dirty.store(true, Ordering::SeqCst);
                    return;
                }
                self.stats
                    .replayed
                    .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
            let corrupt = read.corrupt > 0;
            let done = tokio::task::spawn_blocking(move || {
                if corrupt {
                    let mut kept = path.clone().into_os_string();
                    kept.push(".corrupt");
                    std::fs::rename(&path, kept).map(|()| path)
                } else {
                    std::fs::remove_file(&path).map(|()| path)
                }
            })
            .await;
            match done {
                Ok(Ok(path)) => {
                    tracing::info!(path = %path.display(), records = read.records.len(), "store: spool file replayed");
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "store: cannot remove replayed spool file")
                }
                Err(_) => {}
            }
        }
        if self.degraded {
            tracing::info!("store: database is back; spool replayed");
        }
        self.degraded = false;
        self.stats.degraded.store(false, Ordering::Relaxed);
        self.backoff = self.cfg.retry_min;
    }

    async fn sync(&mut self) -> SyncReport {
        let held = self.spool_flush().await;
        if self.dirty.load(Ordering::SeqCst) || self.degraded {
            self.replay().await;
        }
        let held = held.max(self.spool_flush().await);
        let dir = self.spool_dir.clone();
        let spool_files = tokio::task::spawn_blocking(move || {
            spool::list_spool_files(&dir).map_or(0, |f| f.len())
        })
        .await
        .unwrap_or(0);
        SyncReport {
            degraded: self.degraded,
            spool_files,
            held_in_memory: held,
        }
    }

    async fn spool_flush(&self) -> usize {
        let (tx, rx) = oneshot::channel();
        if self.spool.send(SpoolMsg::Flush(tx)).is_err() {
            return 0;
        }
        rx.await.unwrap_or(0)
    }
}
