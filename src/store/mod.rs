//! Call log: calls, call events and tickets in PostgreSQL (production) or SQLite (default).
//!
//! Nothing here may slow a call down. The call flow holds a [`StoreHandle`] and calls
//! [`StoreHandle::submit`] with a [`Record`]; that never awaits and never blocks. A writer task
//! batches records into transactions off the call path; when the database is down or slow, records
//! go to an fsync'd spool on disk and are replayed, in order, once it is back. Every write is an
//! idempotent upsert, so replays and retries never duplicate rows.
//!
//! - [`record`]: what can be written ([`Record`], ids, tickets).
//! - `writer`: the handle, the bounded queue, batching, failover to the spool and replay.
//! - `spool`: the on-disk format (length + CRC-32 per line) and its owning thread.
//! - [`db`]: the two backends, migrations, the upserts, retention.
//! - [`cli`]: `voxgate calls` output.
//!
//! Left out on purpose: reading back on the call path (nothing in a call waits on the database),
//! ticket updates after creation (another system owns a ticket's life), and deleting calls
//! (retention removes events only: the call rows are the audit trail).

pub mod cli;
pub mod db;
pub mod record;
mod spool;
mod writer;

use std::path::PathBuf;
use std::time::Duration;

pub use cli::{
    find_call, list_calls, recent_calls, show_call, CallDetail, CallRow, EventRow, TicketRow,
};
pub use db::{apply_retention, redact, Backend, Db, SchemaVersion};
pub use record::{kind, CallId, NewTicket, Record, TicketId, TicketRecord};
pub use spool::spool_usage;
pub use writer::{StoreHandle, StoreStats, SyncReport};

/// Everything that can go wrong in the store, by who is at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Configuration: the URL names no supported database.
    #[error("unsupported database URL {0:?}: use postgres://… or sqlite://…")]
    UnsupportedUrl(String),
    /// Operator: the database was migrated by a newer voxgate.
    #[error("database schema version {db} is newer than this voxgate (knows up to {known}): upgrade voxgate")]
    SchemaTooNew {
        /// Applied version in the database.
        db: i64,
        /// Highest version this binary knows.
        known: i64,
    },
    /// The database: unreachable, refused a statement, or similar.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The spool directory cannot be used.
    #[error("spool directory {}: {source}", path.display())]
    Spool {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Us: the writer has shut down, nothing can be submitted.
    #[error("the store has shut down")]
    Closed,
    /// The user: no call with that id or SIP Call-ID.
    #[error("no call {0:?}")]
    NotFound(String),
    /// Writing CLI output failed.
    #[error("output: {0}")]
    Output(#[from] std::io::Error),
}

/// Store settings: `database: { url, spool_dir }` from the config plus tuning with defaults.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `postgres://…` or `sqlite://path` (the SQLite file is created if missing).
    pub url: String,
    /// Where records wait while the database is unavailable.
    pub spool_dir: PathBuf,
    /// Bounded queue between `submit` and the writer (default 4096).
    pub queue_capacity: usize,
    /// Most records per transaction (default 256).
    pub batch_max: usize,
    /// How long the writer waits to fill a batch (default 20 ms).
    pub batch_wait: Duration,
    /// A batch that takes longer is treated as failed and spooled (default 5 s).
    pub write_timeout: Duration,
    /// First retry delay after a failure, doubled up to `retry_max` (defaults 500 ms, 30 s).
    pub retry_min: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
}

impl StoreConfig {
    /// Settings with the default tuning.
    pub fn new(url: impl Into<String>, spool_dir: impl Into<PathBuf>) -> Self {
        Self {
            url: url.into(),
            spool_dir: spool_dir.into(),
            queue_capacity: 4096,
            batch_max: 256,
            batch_wait: Duration::from_millis(20),
            write_timeout: Duration::from_secs(5),
            retry_min: Duration::from_millis(500),
            retry_max: Duration::from_secs(30),
        }
    }
}

/// Entry point: opens the call log.
#[derive(Debug)]
pub struct Store;

impl Store {
    /// Opens the database (migrating it), the spool and the writer task. A database that cannot be
    /// reached does not stop the daemon: records are spooled until it can. A database with a newer
    /// schema, a bad URL or an unusable spool directory is an error. The returned task ends after
    /// every handle is dropped and the queue is written out.
    pub async fn open(
        cfg: &StoreConfig,
    ) -> Result<(StoreHandle, tokio::task::JoinHandle<()>), StoreError> {
        let db = Db::open(
            &cfg.url,
            db::OpenMode {
                create: true,
                lazy: true,
                acquire_timeout: cfg.write_timeout,
            },
        )
        .await?;
        let migrated = match tokio::time::timeout(cfg.write_timeout, db.migrate()).await {
            Ok(Ok(v)) => {
                tracing::info!(
                    before = v.before,
                    after = v.after,
                    "store: database schema ready"
                );
                true
            }
            Ok(Err(e @ StoreError::SchemaTooNew { .. })) => return Err(e),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, url = %db::redact(&cfg.url),
                    "store: database unavailable at start; spooling until it is back");
                false
            }
            Err(_) => {
                tracing::warn!(url = %db::redact(&cfg.url),
                    "store: database too slow at start; spooling until it is back");
                false
            }
        };
        writer::start(db, cfg, migrated)
    }
}

/// Applies pending migrations to the database at `url` (creating a SQLite file if missing);
/// `voxgate migrate` and `serve` call this.
pub async fn migrate(url: &str) -> Result<SchemaVersion, StoreError> {
    let db = Db::open(
        url,
        db::OpenMode {
            create: true,
            lazy: false,
            acquire_timeout: Duration::from_secs(10),
        },
    )
    .await?;
    let res = db.migrate().await;
    db.close().await;
    res
}

/// Runs [`apply_retention`] now and then every `every`, deleting events older than `days` days.
/// Holds only the pool, so it does not keep the writer alive.
pub fn spawn_retention(
    handle: &StoreHandle,
    days: u32,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    let db = handle.db().clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match apply_retention(&db, days).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    deleted = n,
                    days,
                    "store: retention removed old call events"
                ),
                Err(e) => tracing::warn!(error = %e, "store: retention failed; will retry"),
            }
        }
    })
}
