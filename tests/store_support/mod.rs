//! Shared harness for the store tests: a fresh database per test on either backend.
//!
//! SQLite: a file in a fresh temp dir. Postgres: one throwaway cluster per test binary, started by
//! `scripts/pg` under the system temp dir (see `pg_dir`) (stopped by its watchdog when the binary exits),
//! and a fresh `CREATE DATABASE t_<random>` per test so tests run in parallel. Missing Postgres
//! binaries fail the test with a clear message unless `VOXGATE_SKIP_PG=1`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use voxgate::store::{Db, StoreConfig, StoreHandle, SyncReport};

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let p =
            std::env::temp_dir().join(format!("voxgate-{tag}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("temp dir {}: {e}", p.display()));
        Self(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh, empty database and a spool dir for one test.
pub struct TestDb {
    pub kind: Kind,
    pub url: String,
    pub dir: TempDir,
}

impl TestDb {
    /// None only when Postgres is skipped on purpose (`VOXGATE_SKIP_PG=1`).
    pub async fn new(kind: Kind) -> Option<Self> {
        let dir = TempDir::new("store");
        let url = match kind {
            Kind::Sqlite => format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("voxgate.db").display()
            ),
            Kind::Postgres => {
                let base = pg_cluster("pg")?;
                fresh_pg_database(&base).await
            }
        };
        Some(Self { kind, url, dir })
    }

    pub fn spool_dir(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    /// Store settings tuned for tests: small retry delays.
    pub fn config(&self) -> StoreConfig {
        let mut cfg = StoreConfig::new(self.url.clone(), self.spool_dir());
        cfg.retry_min = Duration::from_millis(20);
        cfg.retry_max = Duration::from_millis(200);
        cfg.write_timeout = Duration::from_secs(3);
        cfg
    }

    pub async fn db(&self) -> Db {
        Db::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("connect {}: {e}", self.url))
    }
}

fn skip_pg() -> bool {
    std::env::var("VOXGATE_SKIP_PG").is_ok_and(|v| v == "1")
}

/// Starts (once per binary and `name`) a cluster (see [`pg_dir`]) and returns its base URL.
pub fn pg_cluster(name: &'static str) -> Option<String> {
    static CLUSTERS: OnceLock<std::sync::Mutex<std::collections::HashMap<&'static str, String>>> =
        OnceLock::new();
    if skip_pg() {
        eprintln!("VOXGATE_SKIP_PG=1: Postgres test skipped");
        return None;
    }
    let map = CLUSTERS.get_or_init(Default::default);
    let mut map = map
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(url) = map.get(name) {
        return Some(url.clone());
    }
    let dir = pg_dir(name);
    let out = Command::new(script())
        .arg("start")
        .arg(&dir)
        .arg("--watch")
        .arg(std::process::id().to_string())
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/pg: {e}"));
    if !out.status.success() {
        panic!(
            "Postgres tests need a PostgreSQL server (apt-get install postgresql), or set \
             VOXGATE_SKIP_PG=1 to skip them on purpose.\nscripts/pg start {} failed:\n{}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    map.insert(name, url.clone());
    Some(url)
}

/// Where a test cluster lives: under the system temp dir, not the checkout, because the server
/// runs as the `postgres` user, who cannot enter a checkout under a root-only directory (a CI
/// clone in a `mktemp -d` folder, /root). The checkout path is hashed into the name so parallel
/// clones never share a cluster, and the path stays short for the unix socket (< 100 bytes).
pub fn pg_dir(name: &str) -> PathBuf {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in env!("CARGO_MANIFEST_DIR").bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    std::env::temp_dir().join(format!(
        "vgpg-{:08x}-{name}-{}",
        h as u32,
        env!("CARGO_CRATE_NAME")
    ))
}

pub fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/pg")
}

/// `scripts/pg stop|start` on a named cluster (for outage tests).
pub fn pg_ctl(name: &str, cmd: &str) {
    let out = Command::new(script())
        .arg(cmd)
        .arg(pg_dir(name))
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/pg: {e}"));
    assert!(
        out.status.success(),
        "scripts/pg {cmd} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Creates `t_<random>` on the cluster and returns its URL.
pub async fn fresh_pg_database(base: &str) -> String {
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let admin = Db::connect(base)
        .await
        .unwrap_or_else(|e| panic!("connect {base}: {e}"));
    if let Db::Postgres(p) = &admin {
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(p)
            .await
            .unwrap_or_else(|e| panic!("create database: {e}"));
    }
    admin.close().await;
    base.replacen("/postgres?", &format!("/{name}?"), 1)
}

/// Syncs until everything is in the database, or panics after `limit`.
pub async fn wait_clean(handle: &StoreHandle, limit: Duration) -> SyncReport {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let report = handle.sync().await.unwrap_or_else(|e| panic!("sync: {e}"));
        if report.is_clean() {
            return report;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "store never got clean: {report:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `SELECT count(*) FROM <table> [WHERE …]` on either backend.
pub async fn count(db: &Db, sql: &'static str) -> i64 {
    let res = match db {
        Db::Postgres(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await,
        Db::Sqlite(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await,
    };
    res.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Runs one statement on either backend.
pub async fn exec(db: &Db, sql: &'static str) {
    let res = match db {
        Db::Postgres(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
        Db::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
    };
    res.unwrap_or_else(|e| panic!("{sql}: {e}"));
}
