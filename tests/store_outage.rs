//! No record is lost when the database goes away: it is unreachable at start, locked (slow),
//! stopped in the middle of a stream, or the daemon restarts with a spool left by a crash.

#[path = "store_support/mod.rs"]
mod support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use support::{count, pg_cluster, pg_ctl, wait_clean, Kind, TempDir, TestDb};
use voxgate::store::{kind, CallId, Db, Record, Store, StoreConfig, StoreHandle};

const WAIT: Duration = Duration::from_secs(60);

fn t(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_795_000_000 + secs, 0).unwrap_or_default()
}

fn started(id: CallId) -> Record {
    Record::CallStarted {
        id,
        sip_call_id: format!("{id}@pbx"),
        caller: "+15550123".into(),
        callee: "100".into(),
        dialplan: "acme-support".into(),
        started_at: t(0),
        codec: "PCMA".into(),
        model: "gpt-realtime".into(),
        store_transcripts: true,
    }
}

fn ev(call_id: CallId, seq: u32) -> Record {
    Record::CallEvent {
        call_id,
        seq,
        at: t(i64::from(seq)),
        kind: kind::TRANSCRIPT.into(),
        data: json!({"role": if seq.is_multiple_of(2) { "caller" } else { "agent" }, "text": format!("line {seq}")}),
    }
}

fn submit(h: &StoreHandle, r: Record) {
    h.submit(r).unwrap_or_else(|e| panic!("submit: {e}"));
}

fn spool_files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("spool-"))
                .collect()
        })
        .unwrap_or_default()
}

async fn close(handle: StoreHandle, join: tokio::task::JoinHandle<()>) {
    drop(handle);
    tokio::time::timeout(WAIT, join)
        .await
        .unwrap_or_else(|_| panic!("writer did not stop"))
        .unwrap_or_else(|e| panic!("writer panicked: {e}"));
}

/// The SQLite file's directory does not exist yet: the daemon starts anyway, spools, and writes
/// everything once the directory appears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_unreachable_at_start_spools_then_catches_up() {
    let tmp = TempDir::new("outage");
    let db_dir = tmp.path().join("not-yet");
    let url = format!("sqlite://{}/voxgate.db", db_dir.display());
    let mut cfg = StoreConfig::new(url.clone(), tmp.path().join("spool"));
    cfg.retry_min = Duration::from_millis(20);
    cfg.retry_max = Duration::from_millis(100);
    let (h, join) = Store::open(&cfg)
        .await
        .unwrap_or_else(|e| panic!("open must not fail: {e}"));
    let id = CallId::new();
    submit(&h, started(id));
    for seq in 0..200 {
        submit(&h, ev(id, seq));
    }
    let report = h.sync().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(report.degraded && report.spool_files > 0, "{report:?}");

    std::fs::create_dir_all(&db_dir).unwrap_or_else(|e| panic!("{e}"));
    wait_clean(&h, WAIT).await;
    let db = Db::connect(&url).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(count(&db, "SELECT count(*) FROM calls").await, 1);
    assert_eq!(count(&db, "SELECT count(*) FROM call_events").await, 200);
    assert!(
        spool_files(&cfg.spool_dir).is_empty(),
        "replayed files are deleted"
    );
    close(h, join).await;
}

/// Another process holds the write lock longer than `write_timeout`: batches time out, go to the
/// spool, and are replayed after the lock is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_locked_database_times_out_to_the_spool_then_recovers() {
    let Some(tdb) = TestDb::new(Kind::Sqlite).await else {
        return;
    };
    let mut cfg = tdb.config();
    cfg.write_timeout = Duration::from_millis(300);
    let (h, join) = Store::open(&cfg).await.unwrap_or_else(|e| panic!("{e}"));
    let id = CallId::new();
    submit(&h, started(id));
    wait_clean(&h, WAIT).await;

    let Db::Sqlite(pool) = tdb.db().await else {
        unreachable!("sqlite url")
    };
    let mut locker = pool.acquire().await.unwrap_or_else(|e| panic!("{e}"));
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut *locker)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for seq in 0..100 {
        submit(&h, ev(id, seq));
    }
    let report = h.sync().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        report.degraded,
        "a locked database must count as down: {report:?}"
    );
    assert!(h.stats().spooled > 0);

    sqlx::query("COMMIT")
        .execute(&mut *locker)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    drop(locker);
    wait_clean(&h, WAIT).await;
    let db = tdb.db().await;
    assert_eq!(count(&db, "SELECT count(*) FROM call_events").await, 100);
    close(h, join).await;
}

/// A crash leaves spool files, the last one ending in a torn line. The next start replays the
/// good lines, skips the torn one, and deletes the files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_left_by_a_crash_is_replayed_at_the_next_start() {
    let tmp = TempDir::new("crash");
    let db_dir = tmp.path().join("db");
    let url = format!("sqlite://{}/voxgate.db", db_dir.display());
    let mut cfg = StoreConfig::new(url.clone(), tmp.path().join("spool"));
    cfg.retry_min = Duration::from_millis(20);
    cfg.retry_max = Duration::from_millis(100);

    // First run: database unreachable the whole time, 50 records end up in the spool.
    let (h, join) = Store::open(&cfg).await.unwrap_or_else(|e| panic!("{e}"));
    let id = CallId::new();
    submit(&h, started(id));
    for seq in 0..49 {
        submit(&h, ev(id, seq));
    }
    close(h, join).await;
    let mut files = spool_files(&cfg.spool_dir);
    files.sort();
    assert!(!files.is_empty(), "records must be on disk after shutdown");
    // The crash: half a line at the end of the newest file.
    let last = cfg
        .spool_dir
        .join(files.last().map(String::as_str).unwrap_or_default());
    let mut bytes = std::fs::read(&last).unwrap_or_else(|e| panic!("{e}"));
    bytes.extend_from_slice(b"173 deadbeef {\"type\":\"call_event\",\"call_id\":");
    std::fs::write(&last, bytes).unwrap_or_else(|e| panic!("{e}"));

    // Second run: the database is there.
    std::fs::create_dir_all(&db_dir).unwrap_or_else(|e| panic!("{e}"));
    let (h, join) = Store::open(&cfg).await.unwrap_or_else(|e| panic!("{e}"));
    wait_clean(&h, WAIT).await;
    let db = Db::connect(&url).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(count(&db, "SELECT count(*) FROM calls").await, 1);
    assert_eq!(count(&db, "SELECT count(*) FROM call_events").await, 49);
    assert!(spool_files(&cfg.spool_dir).is_empty());
    assert_eq!(h.stats().replayed, 50);
    close(h, join).await;
}

/// Postgres database missing at start (as after a failover to an empty server): spool, then
/// migrate and replay once it exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_database_missing_at_start_spools_then_catches_up() {
    let Some(base) = pg_cluster("pg") else { return };
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let url = base.replacen("/postgres?", &format!("/{name}?"), 1);
    let tmp = TempDir::new("pgmissing");
    let mut cfg = StoreConfig::new(url.clone(), tmp.path().join("spool"));
    cfg.retry_min = Duration::from_millis(20);
    cfg.retry_max = Duration::from_millis(100);
    let (h, join) = Store::open(&cfg)
        .await
        .unwrap_or_else(|e| panic!("open must not fail: {e}"));
    let id = CallId::new();
    submit(&h, started(id));
    for seq in 0..100 {
        submit(&h, ev(id, seq));
    }
    let report = h.sync().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(report.degraded, "{report:?}");

    let admin = Db::connect(&base).await.unwrap_or_else(|e| panic!("{e}"));
    if let Db::Postgres(p) = &admin {
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(p)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    wait_clean(&h, WAIT).await;
    let db = Db::connect(&url).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(count(&db, "SELECT count(*) FROM call_events").await, 100);
    close(h, join).await;
}

/// The acceptance test: a steady stream of records, the Postgres cluster stopped a third of the
/// way in and started again at two thirds. Every record is in the database exactly once, and no
/// submit stalled meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_mid_stream_then_restarted_loses_nothing() {
    // Its own cluster: stopping it must not disturb the other tests of this binary.
    let Some(base) = pg_cluster("pg-outage") else {
        return;
    };
    let url = support::fresh_pg_database(&base).await;
    let tmp = TempDir::new("pgoutage");
    let mut cfg = StoreConfig::new(url.clone(), tmp.path().join("spool"));
    cfg.retry_min = Duration::from_millis(50);
    cfg.retry_max = Duration::from_millis(400);
    cfg.write_timeout = Duration::from_secs(2);
    let (h, join) = Store::open(&cfg).await.unwrap_or_else(|e| panic!("{e}"));

    let calls: Vec<CallId> = (0..10).map(|_| CallId::new()).collect();
    for id in &calls {
        submit(&h, started(*id));
    }
    let n: u32 = 1500;
    let mut slowest = Duration::ZERO;
    let mut stopper = None;
    let mut starter = None;
    for seq in 0..n {
        if seq == n / 3 {
            stopper = Some(tokio::task::spawn_blocking(|| pg_ctl("pg-outage", "stop")));
        }
        if seq == 2 * n / 3 {
            if let Some(s) = stopper.take() {
                s.await.unwrap_or_else(|e| panic!("{e}"));
            }
            // Make sure the writer has met the outage before the database comes back.
            let deadline = tokio::time::Instant::now() + WAIT;
            while h.stats().db_failures == 0 {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "writer never noticed the outage"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            starter = Some(tokio::task::spawn_blocking(|| pg_ctl("pg-outage", "start")));
        }
        let call = calls[(seq % 10) as usize];
        let t0 = std::time::Instant::now();
        submit(&h, ev(call, seq / 10));
        slowest = slowest.max(t0.elapsed());
        if seq.is_multiple_of(10) {
            tokio::time::sleep(Duration::from_millis(2)).await; // a stream, not a burst
        }
    }
    if let Some(s) = starter.take() {
        s.await.unwrap_or_else(|e| panic!("{e}"));
    }
    for id in &calls {
        submit(
            &h,
            Record::CallEnded {
                id: *id,
                ended_at: t(500),
                end_reason: "bye".into(),
                hangup_by: Some("agent".into()),
                transfer_target: None,
                usage: json!({"input_tokens": 1}),
            },
        );
    }
    wait_clean(&h, WAIT).await;
    let stats = h.stats();
    let db = Db::connect(&url).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(count(&db, "SELECT count(*) FROM calls").await, 10);
    assert_eq!(
        count(&db, "SELECT count(*) FROM call_events").await,
        i64::from(n)
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM calls WHERE ended_at IS NOT NULL AND caller IS NOT NULL"
        )
        .await,
        10
    );
    assert!(
        stats.spooled > 0,
        "the outage must have sent records to the spool: {stats:?}"
    );
    assert!(spool_files(&cfg.spool_dir).is_empty());
    // The database timeout is 2 s; a submit that waited on it would show. Scheduling noise on a
    // loaded 2-core CI machine stays far below this bound.
    assert!(
        slowest < Duration::from_millis(500),
        "a submit took {slowest:?}"
    );
    eprintln!("slowest submit {slowest:?}; {stats:?}");
    close(h, join).await;
}
