//! The spool: an append-only, fsync'd file log of records the database has not taken yet.
//!
//! Format: files `spool-YYYYMMDDHH-NNNNNN.jsonl` in `spool_dir` (UTC hour of the first append,
//! then a counter that only grows, so sorting names sorts records by arrival). Each line is
//! `<len> <crc32 hex> <json>\n`: `len` is the byte length of the JSON, the CRC-32 (IEEE) is over the
//! JSON. A crash can leave a torn last line; the reader detects it (missing newline, wrong length or
//! checksum), skips it with a warning, and reads everything before it. A bad line that is not the
//! last one keeps the file as `*.corrupt` after replay instead of deleting it, for a human to read.
//! Records that the database rejects for good (constraint, bad data) go to `rejected-YYYYMMDD.jsonl`
//! in the same line format, as `{"error": "...", "record": {...}}`; they are never replayed.
//!
//! One OS thread (not a tokio task: all of this is blocking file I/O) owns the files. It takes
//! messages from an unbounded std channel, appends, and fsyncs once per group of messages it
//! drains (group commit). `Seal` closes the file being written and lists every spool file, so the
//! writer can replay and delete them while later appends go to a new file. If the disk refuses a
//! write, the records stay in memory in this thread and are retried every second.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::oneshot;

use super::record::Record;

/// Messages to the spool thread.
pub(crate) enum SpoolMsg {
    /// Append these records (in order).
    Append(Vec<Record>),
    /// Append to the dead-letter file with the database's reason.
    Reject(Vec<(Record, String)>),
    /// Fsync and close the current file; answer with all spool files, oldest first.
    Seal(oneshot::Sender<io::Result<Vec<PathBuf>>>),
    /// Fsync; answer with the number of records held in memory because the disk failed.
    Flush(oneshot::Sender<usize>),
}

/// Starts the spool thread for `dir` (created if missing). `dirty` is set whenever the spool
/// holds records, including files left by an earlier run.
pub(crate) fn spawn(
    dir: PathBuf,
    dirty: Arc<AtomicBool>,
) -> io::Result<(mpsc::Sender<SpoolMsg>, std::thread::JoinHandle<()>)> {
    fs::create_dir_all(&dir)?;
    let existing = list_spool_files(&dir)?;
    if !existing.is_empty() {
        tracing::info!(files = existing.len(), dir = %dir.display(), "spool holds records from an earlier run; they will be replayed");
        dirty.store(true, Ordering::SeqCst);
    }
    let next_n = existing
        .iter()
        .filter_map(|p| file_counter(p))
        .max()
        .map_or(0, |n| n + 1);
    let (tx, rx) = mpsc::channel();
    let spool = Spool {
        dir,
        current: None,
        next_n,
        held: Vec::new(),
        dirty,
    };
    let join = std::thread::Builder::new()
        .name("voxgate-spool".into())
        .spawn(move || spool.run(rx))?;
    Ok((tx, join))
}

struct Spool {
    dir: PathBuf,
    /// The file being appended to and the UTC hour (`YYYYMMDDHH`) it was opened in.
    current: Option<(String, File)>,
    /// Counter for the next file name.
    next_n: u64,
    /// Records the disk refused; retried before any new append so order is kept.
    held: Vec<Record>,
    dirty: Arc<AtomicBool>,
}

impl Spool {
    fn run(mut self, rx: mpsc::Receiver<SpoolMsg>) {
        loop {
            let first = match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(msg) => msg,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if !self.held.is_empty() {
                        self.append(Vec::new());
                        self.sync();
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            // Group commit: take everything already queued, then one fsync.
            let mut msg = Some(first);
            let mut wrote = false;
            while let Some(m) = msg.take() {
                match m {
                    SpoolMsg::Append(records) => {
                        self.append(records);
                        wrote = true;
                    }
                    SpoolMsg::Reject(rejected) => self.reject(rejected),
                    SpoolMsg::Seal(reply) => {
                        self.sync();
                        wrote = false;
                        self.current = None;
                        let _ = reply.send(list_spool_files(&self.dir));
                    }
                    SpoolMsg::Flush(reply) => {
                        if wrote {
                            self.sync();
                            wrote = false;
                        }
                        let _ = reply.send(self.held.len());
                    }
                }
                msg = rx.try_recv().ok();
            }
            if wrote {
                self.sync();
            }
        }
        if !self.held.is_empty() {
            self.append(Vec::new());
        }
        self.sync();
        for r in &self.held {
            // Last resort: the disk refused these and we are exiting, so put them in the log.
            let line = serde_json::to_string(r).unwrap_or_default();
            tracing::error!(record = %line, "spool: disk unwritable at exit; record only in this log line");
        }
    }

    /// Appends `held` then `records`; on failure keeps all of them in `held`.
    fn append(&mut self, records: Vec<Record>) {
        self.held.extend(records);
        if self.held.is_empty() {
            return;
        }
        match self.write_lines(&self.held.clone()) {
            Ok(()) => {
                self.held.clear();
                self.dirty.store(true, Ordering::SeqCst);
            }
            Err(e) => {
                // The file may now end in a torn line; start a fresh one next time.
                self.current = None;
                tracing::error!(error = %e, held = self.held.len(), dir = %self.dir.display(),
                    "spool: cannot write; records kept in memory, retrying");
            }
        }
    }

    fn write_lines(&mut self, records: &[Record]) -> io::Result<()> {
        let hour = Utc::now().format("%Y%m%d%H").to_string();
        if self.current.as_ref().is_none_or(|(h, _)| *h != hour) {
            self.sync();
            let path = self
                .dir
                .join(format!("spool-{hour}-{:06}.jsonl", self.next_n));
            self.next_n += 1;
            let file = OpenOptions::new().create(true).append(true).open(&path)?;
            // Make the new name durable too, or a crash could lose the whole file.
            File::open(&self.dir)?.sync_all()?;
            self.current = Some((hour, file));
        }
        let mut buf = Vec::with_capacity(records.len() * 256);
        for r in records {
            let json = serde_json::to_vec(r).map_err(io::Error::other)?;
            encode_line(&json, &mut buf);
        }
        match &mut self.current {
            Some((_, file)) => file.write_all(&buf),
            None => Err(io::Error::other("spool file not open")),
        }
    }

    fn reject(&mut self, rejected: Vec<(Record, String)>) {
        let path = self
            .dir
            .join(format!("rejected-{}.jsonl", Utc::now().format("%Y%m%d")));
        let mut buf = Vec::new();
        for (record, error) in &rejected {
            let v = serde_json::json!({ "error": error, "record": record });
            encode_line(v.to_string().as_bytes(), &mut buf);
        }
        let res = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| {
                f.write_all(&buf)?;
                f.sync_data()
            });
        if let Err(e) = res {
            tracing::error!(error = %e, path = %path.display(), "spool: cannot write rejected records");
            for (record, error) in &rejected {
                let line = serde_json::to_string(record).unwrap_or_default();
                tracing::error!(record = %line, %error, "rejected record only in this log line");
            }
        }
    }

    fn sync(&mut self) {
        if let Some((_, file)) = &self.current {
            if let Err(e) = file.sync_data() {
                tracing::error!(error = %e, "spool: fsync failed");
            }
        }
    }
}

/// Appends `<len> <crc32> <json>\n` to `out`.
pub(crate) fn encode_line(json: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("{} {:08x} ", json.len(), crc32(json)).as_bytes());
    out.extend_from_slice(json);
    out.push(b'\n');
}

/// What reading one spool file found.
#[derive(Debug, Default)]
pub(crate) struct SpoolFile {
    /// Good records, in file order.
    pub records: Vec<Record>,
    /// A torn last line (crash during append) was skipped.
    pub torn_tail: bool,
    /// Bad lines before the last one (should not happen; the file is kept).
    pub corrupt: usize,
}

/// Reads and checks a spool file (blocking).
pub(crate) fn read_spool_file(path: &Path) -> io::Result<SpoolFile> {
    let bytes = fs::read(path)?;
    Ok(decode_spool(&bytes, path))
}

pub(crate) fn decode_spool(bytes: &[u8], path: &Path) -> SpoolFile {
    let mut out = SpoolFile::default();
    let mut lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    // `split` yields a last piece after the final newline: empty if the file ends cleanly.
    let tail = lines.pop().unwrap_or_default();
    if !tail.is_empty() {
        tracing::warn!(path = %path.display(), bytes = tail.len(), "spool: torn last line skipped");
        out.torn_tail = true;
    }
    let n = lines.len();
    for (i, line) in lines.into_iter().enumerate() {
        match decode_line(line) {
            Some(r) => out.records.push(r),
            None if i + 1 == n && !out.torn_tail => {
                tracing::warn!(path = %path.display(), line = i + 1, "spool: torn last line skipped");
                out.torn_tail = true;
            }
            None => {
                tracing::warn!(path = %path.display(), line = i + 1, "spool: corrupt line skipped");
                out.corrupt += 1;
            }
        }
    }
    out
}

fn decode_line(line: &[u8]) -> Option<Record> {
    let s = std::str::from_utf8(line).ok()?;
    let (len, rest) = s.split_once(' ')?;
    let (crc, json) = rest.split_once(' ')?;
    let len: usize = len.parse().ok()?;
    let crc = u32::from_str_radix(crc, 16).ok()?;
    if json.len() != len || crc32(json.as_bytes()) != crc {
        return None;
    }
    serde_json::from_str(json).ok()
}

/// Spool files in `dir`, oldest first.
pub(crate) fn list_spool_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("spool-") && name.ends_with(".jsonl") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Spool files waiting in `dir` and their total size in bytes (blocking; for metrics). A
/// missing folder is an empty spool.
pub fn spool_usage(dir: &Path) -> (usize, u64) {
    let files = list_spool_files(dir).unwrap_or_default();
    let bytes = files
        .iter()
        .filter_map(|f| fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    (files.len(), bytes)
}

fn file_counter(path: &Path) -> Option<u64> {
    let stem = path.file_stem()?.to_str()?;
    stem.rsplit_once('-')?.1.parse().ok()
}

/// CRC-32 (IEEE 802.3, as zlib), table-driven.
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    !bytes.iter().fold(!0u32, |c, b| {
        TABLE[((c ^ u32::from(*b)) & 0xff) as usize] ^ (c >> 8)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::record::CallId;

    fn rec(seq: u32) -> Record {
        Record::CallEvent {
            call_id: CallId(uuid::Uuid::nil()),
            seq,
            at: chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default(),
            kind: "dtmf".into(),
            data: serde_json::json!({"digit": "5"}),
        }
    }

    fn encode(records: &[Record]) -> Vec<u8> {
        let mut buf = Vec::new();
        for r in records {
            encode_line(&serde_json::to_vec(r).unwrap_or_default(), &mut buf);
        }
        buf
    }

    #[test]
    fn crc32_matches_zlib() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn clean_file_reads_back() {
        let recs: Vec<_> = (0..5).map(rec).collect();
        let f = decode_spool(&encode(&recs), Path::new("x"));
        assert_eq!(f.records, recs);
        assert!(!f.torn_tail);
        assert_eq!(f.corrupt, 0);
    }

    #[test]
    fn torn_tail_at_every_cut_is_skipped() {
        let recs: Vec<_> = (0..3).map(rec).collect();
        let full = encode(&recs);
        let two = encode(&recs[..2]).len();
        for cut in two + 1..full.len() {
            let f = decode_spool(&full[..cut], Path::new("x"));
            assert_eq!(f.records, recs[..2], "cut at {cut}");
            assert!(f.torn_tail, "cut at {cut}");
            assert_eq!(f.corrupt, 0, "cut at {cut}");
        }
    }

    #[test]
    fn flipped_byte_in_the_middle_is_corrupt_not_torn() {
        let recs: Vec<_> = (0..3).map(rec).collect();
        let mut bytes = encode(&recs);
        let first = encode(&recs[..1]).len();
        bytes[first + 20] ^= 0x01;
        let f = decode_spool(&bytes, Path::new("x"));
        assert_eq!(f.records, vec![rec(0), rec(2)]);
        assert_eq!(f.corrupt, 1);
        assert!(!f.torn_tail);
    }

    #[test]
    fn thread_appends_seals_and_counts_on() {
        let dir = std::env::temp_dir().join(format!("voxgate-spool-{}", uuid::Uuid::now_v7()));
        let dirty = Arc::new(AtomicBool::new(false));
        let (tx, join) = spawn(dir.clone(), dirty.clone()).unwrap_or_else(|e| panic!("{e}"));
        let _ = tx.send(SpoolMsg::Append(vec![rec(0), rec(1)]));
        let (stx, srx) = oneshot::channel();
        let _ = tx.send(SpoolMsg::Seal(stx));
        let files = srx
            .blocking_recv()
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_default();
        assert_eq!(files.len(), 1);
        assert!(dirty.load(Ordering::SeqCst));
        let _ = tx.send(SpoolMsg::Append(vec![rec(2)]));
        drop(tx);
        let _ = join.join();
        let files = list_spool_files(&dir).unwrap_or_default();
        assert_eq!(files.len(), 2, "a sealed file is never appended to again");
        let all: Vec<_> = files
            .iter()
            .flat_map(|f| read_spool_file(f).map(|s| s.records).unwrap_or_default())
            .collect();
        assert_eq!(all, vec![rec(0), rec(1), rec(2)]);
        // A restart continues the counter, so names keep sorting in arrival order.
        let (tx, join) =
            spawn(dir.clone(), Arc::new(AtomicBool::new(false))).unwrap_or_else(|e| panic!("{e}"));
        let _ = tx.send(SpoolMsg::Append(vec![rec(3)]));
        drop(tx);
        let _ = join.join();
        let files = list_spool_files(&dir).unwrap_or_default();
        assert_eq!(file_counter(&files[2]), Some(2));
        let _ = fs::remove_dir_all(&dir);
    }
}
