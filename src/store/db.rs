//! The two database backends behind one type, migrations, and the idempotent writes.
//!
//! [`Db`] is PostgreSQL (production) or SQLite (embedded default). Both run the same SQL text
//! (`$n` placeholders work in both); what differs is only how values are bound: SQLite keeps uuids
//! as hyphenated text so the file reads well in `sqlite3`. [`on_db!`] writes a body once and
//! type-checks it for each backend.
//!
//! Every write is an upsert that commutes with the others, so records may arrive twice and out of
//! order (queue vs. spool) and still give the same rows:
//! - `CallStarted` inserts the call or fills in a stub (it owns the "start" columns);
//! - `CallAnswered`, `CallEnded`, events and tickets insert a stub call (`id`, `started_at` = their
//!   own time) if there is none, then set only their own columns;
//! - events are keyed by `(call_id, seq)` and tickets by `id` / `idempotency_key`: `DO NOTHING`.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::types::Json;

use super::record::{Record, TicketRecord};
use super::StoreError;

static PG_MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");
static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// Runs `$body` with `$pool` bound to the backend's pool and `$uid` to a function that turns a
/// `Uuid` into the value that backend stores (Postgres: `uuid`; SQLite: hyphenated text).
macro_rules! on_db {
    ($db:expr, $pool:ident, $uid:ident => $body:expr) => {
        match $db {
            $crate::store::db::Db::Postgres($pool) => {
                #[allow(unused)]
                let $uid = |u: ::uuid::Uuid| u;
                $body
            }
            $crate::store::db::Db::Sqlite($pool) => {
                #[allow(unused)]
                let $uid = |u: ::uuid::Uuid| u.hyphenated();
                $body
            }
        }
    };
}
pub(crate) use on_db;

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `postgres://` or `postgresql://`.
    Postgres,
    /// `sqlite:`.
    Sqlite,
}

impl Backend {
    /// The backend for `url`, or an error naming the supported schemes.
    pub fn of_url(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else {
            Err(StoreError::UnsupportedUrl(redact(url)))
        }
    }
}

/// A connection pool to the call log database.
#[derive(Debug, Clone)]
pub enum Db {
    /// PostgreSQL.
    Postgres(PgPool),
    /// SQLite (WAL mode, foreign keys on).
    Sqlite(SqlitePool),
}

/// How to open a pool.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OpenMode {
    /// Create the SQLite file if it is missing (the daemon does; the CLI does not).
    pub create: bool,
    /// Connect on first use instead of now (the daemon must start while the database is down).
    pub lazy: bool,
    /// How long to wait for a connection.
    pub acquire_timeout: Duration,
}

impl Db {
    /// Connects now; a missing SQLite file is an error (nothing is created).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::open(
            url,
            OpenMode {
                create: false,
                lazy: false,
                acquire_timeout: Duration::from_secs(10),
            },
        )
        .await
    }

    pub(crate) async fn open(url: &str, mode: OpenMode) -> Result<Self, StoreError> {
        match Backend::of_url(url)? {
            Backend::Postgres => {
                let opts = PgConnectOptions::from_str(url)?;
                let pool = PgPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(mode.acquire_timeout);
                Ok(Db::Postgres(if mode.lazy {
                    pool.connect_lazy_with(opts)
                } else {
                    pool.connect_with(opts).await?
                }))
            }
            Backend::Sqlite => {
                let opts = SqliteConnectOptions::from_str(url)?
                    .create_if_missing(mode.create)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(5));
                let pool = SqlitePoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(mode.acquire_timeout);
                Ok(Db::Sqlite(if mode.lazy {
                    pool.connect_lazy_with(opts)
                } else {
                    pool.connect_with(opts).await?
                }))
            }
        }
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match self {
            Db::Postgres(_) => Backend::Postgres,
            Db::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Closes the pool.
    pub async fn close(&self) {
        on_db!(self, p, _u => p.close().await)
    }

    fn migrator(&self) -> &'static Migrator {
        match self {
            Db::Postgres(_) => &PG_MIGRATOR,
            Db::Sqlite(_) => &SQLITE_MIGRATOR,
        }
    }

    /// Highest schema version this binary knows for this backend.
    pub fn known_version(&self) -> i64 {
        self.migrator().iter().map(|m| m.version).max().unwrap_or(0)
    }

    /// Highest applied schema version (0 for an empty database).
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        let q = "SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success";
        let res: Result<i64, sqlx::Error> =
            on_db!(self, p, _u => sqlx::query_scalar(q).fetch_one(p).await);
        match res {
            Ok(v) => Ok(v),
            Err(sqlx::Error::Database(e))
                if e.code().as_deref() == Some("42P01")
                    || e.message().contains("no such table") =>
            {
                Ok(0)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Applies pending migrations; refuses a database newer than this binary.
    pub async fn migrate(&self) -> Result<SchemaVersion, StoreError> {
        let before = self.schema_version().await?;
        let known = self.known_version();
        if before > known {
            return Err(StoreError::SchemaTooNew { db: before, known });
        }
        on_db!(self, p, _u => self.migrator().run(p).await)?;
        Ok(SchemaVersion {
            before,
            after: self.schema_version().await?,
        })
    }

    /// Writes `records` in one transaction.
    pub(crate) async fn write_records(&self, records: &[Record]) -> Result<(), sqlx::Error> {
        on_db!(self, pool, uid => {
            let mut tx = pool.begin().await?;
            for record in records {
                match record {
                    Record::CallStarted { id, sip_call_id, caller, callee, dialplan, started_at,
                                          codec, model, store_transcripts } => {
                        sqlx::query(SQL_CALL_STARTED)
                            .bind(uid(id.0)).bind(sip_call_id).bind(caller).bind(callee)
                            .bind(dialplan).bind(started_at).bind(codec).bind(model)
                            .bind(store_transcripts)
                            .execute(&mut *tx).await?;
                        if !*store_transcripts {
                            // Transcripts that got in before this record (reordering) go now.
                            sqlx::query(SQL_DROP_TRANSCRIPTS).bind(uid(id.0)).execute(&mut *tx).await?;
                        }
                    }
                    Record::CallAnswered { id, at } => {
                        sqlx::query(SQL_CALL_ANSWERED).bind(uid(id.0)).bind(at)
                            .execute(&mut *tx).await?;
                    }
                    Record::CallEvent { call_id, seq, at, kind, data } => {
                        sqlx::query(SQL_CALL_STUB).bind(uid(call_id.0)).bind(at)
                            .execute(&mut *tx).await?;
                        sqlx::query(SQL_EVENT)
                            .bind(uid(call_id.0)).bind(i64::from(*seq)).bind(at).bind(kind)
                            .bind(Json(data))
                            .execute(&mut *tx).await?;
                    }
                    Record::CallEnded { id, ended_at, end_reason, hangup_by, transfer_target, usage } => {
                        sqlx::query(SQL_CALL_ENDED)
                            .bind(uid(id.0)).bind(ended_at).bind(end_reason).bind(hangup_by)
                            .bind(transfer_target).bind(Json(usage))
                            .execute(&mut *tx).await?;
                    }
                    Record::Ticket(t) => {
                        let TicketRecord { id, reference, call_id, created_at, caller, category,
                            priority, summary, details, status, external_ref, idempotency_key } = t;
                        if let Some(call_id) = call_id {
                            sqlx::query(SQL_CALL_STUB).bind(uid(call_id.0)).bind(created_at)
                                .execute(&mut *tx).await?;
                        }
                        sqlx::query(SQL_TICKET)
                            .bind(uid(*id)).bind(reference).bind(call_id.map(|c| uid(c.0)))
                            .bind(created_at).bind(caller).bind(category).bind(priority)
                            .bind(summary).bind(details).bind(status).bind(external_ref)
                            .bind(idempotency_key)
                            .execute(&mut *tx).await?;
                    }
                }
            }
            tx.commit().await
        })
    }
}

/// Schema versions before and after [`Db::migrate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaVersion {
    /// Applied version before (0 = empty database).
    pub before: i64,
    /// Applied version after.
    pub after: i64,
}

/// Deletes call events older than `days` days; returns how many went.
pub async fn apply_retention(db: &Db, days: u32) -> Result<u64, StoreError> {
    let cutoff: DateTime<Utc> = Utc::now() - chrono::Duration::days(i64::from(days));
    let q = "DELETE FROM call_events WHERE at < $1";
    let done = on_db!(db, p, _u => sqlx::query(q).bind(cutoff).execute(p).await?.rows_affected());
    Ok(done)
}

/// Whether a failed write will fail again however often it is retried (bad data, constraint),
/// as opposed to the database being unreachable, slow, locked or shutting down.
pub(crate) fn is_permanent(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Encode(_) => true,
        sqlx::Error::Database(db) => {
            if !matches!(db.kind(), sqlx::error::ErrorKind::Other) {
                return true; // unique / foreign key / not null / check violation
            }
            let code = db.code().unwrap_or_default();
            if code.len() == 5 && code.chars().all(|c| c.is_ascii_alphanumeric()) {
                // SQLSTATE class 22 = data exception, 23 = integrity constraint violation.
                code.starts_with("22") || code.starts_with("23")
            } else {
                // SQLite: primary result code is the low byte of the extended code.
                // 18 TOOBIG, 19 CONSTRAINT, 20 MISMATCH, 25 RANGE.
                code.parse::<i32>()
                    .is_ok_and(|c| matches!(c & 0xff, 18 | 19 | 20 | 25))
            }
        }
        _ => false,
    }
}

/// `url` without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

const SQL_CALL_STARTED: &str = "\
INSERT INTO calls (id, sip_call_id, caller, callee, dialplan, started_at, codec, model, store_transcripts)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (id) DO UPDATE SET
    sip_call_id = excluded.sip_call_id, caller = excluded.caller, callee = excluded.callee,
    dialplan = excluded.dialplan, started_at = excluded.started_at, codec = excluded.codec,
    model = excluded.model, store_transcripts = excluded.store_transcripts";

const SQL_DROP_TRANSCRIPTS: &str =
    "DELETE FROM call_events WHERE call_id = $1 AND kind = 'transcript'";

const SQL_CALL_STUB: &str =
    "INSERT INTO calls (id, started_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING";

const SQL_CALL_ANSWERED: &str = "\
INSERT INTO calls (id, started_at, answered_at) VALUES ($1, $2, $2)
ON CONFLICT (id) DO UPDATE SET answered_at = excluded.answered_at";

const SQL_CALL_ENDED: &str = "\
INSERT INTO calls (id, started_at, ended_at, end_reason, hangup_by, transfer_target, usage)
VALUES ($1, $2, $2, $3, $4, $5, $6)
ON CONFLICT (id) DO UPDATE SET
    ended_at = excluded.ended_at, end_reason = excluded.end_reason,
    hangup_by = excluded.hangup_by, transfer_target = excluded.transfer_target,
    usage = excluded.usage";

// The WHERE drops transcripts of calls that opted out (defence in depth: the handle already
// filters them before they reach the queue or the spool).
const SQL_EVENT: &str = "\
INSERT INTO call_events (call_id, seq, at, kind, data)
SELECT $1, $2, $3, $4, $5
WHERE $4 <> 'transcript'
   OR NOT EXISTS (SELECT 1 FROM calls WHERE id = $1 AND NOT store_transcripts)
ON CONFLICT (call_id, seq) DO NOTHING";

const SQL_TICKET: &str = "\
INSERT INTO tickets (id, reference, call_id, created_at, caller, category, priority, summary,
                     details, status, external_ref, idempotency_key)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (id) DO UPDATE SET external_ref = COALESCE(excluded.external_ref, tickets.external_ref)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://vox:secret@db:5432/voxgate"),
            "postgres://vox:***@db:5432/voxgate"
        );
        assert_eq!(redact("postgres://vox@db/v"), "postgres://vox@db/v");
        assert_eq!(redact("sqlite://voxgate.db"), "sqlite://voxgate.db");
    }

    #[test]
    fn backend_from_url() {
        assert_eq!(Backend::of_url("sqlite://x.db").ok(), Some(Backend::Sqlite));
        assert_eq!(
            Backend::of_url("postgresql://h/d").ok(),
            Some(Backend::Postgres)
        );
        assert!(Backend::of_url("mysql://h/d").is_err());
    }
}
