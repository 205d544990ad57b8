//! Integration-test harness: starts a real `voxgate serve` on free loopback ports with JSON logs,
//! reads its log lines as they come, and runs SIPp scenarios against it. Tests wait for events
//! (log lines, process exits) with generous timeouts; they never sleep to let things settle.

#![allow(dead_code)]

pub mod pcap;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Root of the repository.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh scratch directory under target/ (kept for inspection after a failure).
pub fn scratch(name: &str) -> PathBuf {
    let dir = repo()
        .join("target")
        .join("test-scratch")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// A loopback port free for both UDP and TCP right now.
pub fn free_port() -> u16 {
    for _ in 0..200 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().expect("addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port");
}

/// A running voxgate daemon whose log lines are collected.
pub struct Daemon {
    child: Child,
    /// SIP address.
    pub addr: SocketAddr,
    /// Operations HTTP address (`/metrics`, `/healthz`, `/readyz`).
    pub http: SocketAddr,
    logs: Arc<(Mutex<Vec<serde_json::Value>>, Condvar)>,
    /// Scratch directory of this daemon.
    pub dir: PathBuf,
}

impl Daemon {
    /// Starts voxgate with `yaml` appended to a base config (free SIP port, a private RTP range).
    pub fn start(name: &str, yaml: &str) -> Daemon {
        Self::start_env(name, yaml, &[])
    }

    /// Like [`Daemon::start`] with extra environment variables.
    pub fn start_env(name: &str, yaml: &str, env: &[(&str, &str)]) -> Daemon {
        let dir = scratch(name);
        let plans = dir.join("dialplans");
        std::fs::create_dir_all(&plans).expect("dialplans dir");
        std::fs::write(
            plans.join("default.yaml"),
            "name: default\nmatch: { default: true }\nagent:\n  instructions: You answer test calls.\n  greeting: Hello.\n",
        )
        .expect("default dialplan");
        Self::start_with_plans(name, dir, yaml, env)
    }

    /// Starts voxgate on an existing scratch dir whose `dialplans/` the test has written.
    pub fn start_with_plans(name: &str, dir: PathBuf, yaml: &str, env: &[(&str, &str)]) -> Daemon {
        let _ = name;
        let port = free_port();
        let http = free_port();
        // A private, probably-free RTP range per daemon; bind failures fall through to the next port.
        let rtp_min = 20_000 + (u32::from(port) * 7 % 20_000) as u16 / 2 * 2;
        let config = format!(
            "sip:\n  listen: \"127.0.0.1:{port}\"\nrtp:\n  port_min: {rtp_min}\n  port_max: {}\nmodel:\n  url: sim\ndialplans: \"{}\"\nhttp:\n  listen: \"127.0.0.1:{http}\"\nlog:\n  format: json\n  level: \"voxgate=debug,info\"\n{yaml}",
            rtp_min + 400,
            dir.join("dialplans").display()
        );
        let cfg_path = dir.join("voxgate.yaml");
        std::fs::write(&cfg_path, config).expect("write config");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_voxgate"));
        cmd.arg("serve")
            .arg("--config")
            .arg(&cfg_path)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env_remove("RUST_LOG");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn voxgate");
        let stderr = child.stderr.take().expect("stderr piped");
        let logs: Arc<(Mutex<Vec<serde_json::Value>>, Condvar)> = Arc::default();
        let sink = logs.clone();
        let raw_log = dir.join("voxgate.log");
        std::thread::spawn(move || {
            let mut file = std::fs::File::create(raw_log).ok();
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(f) = &mut file {
                    use std::io::Write;
                    let _ = writeln!(f, "{line}");
                }
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| serde_json::json!({ "raw": line }));
                let (lock, cv) = &*sink;
                if let Ok(mut v) = lock.lock() {
                    v.push(value);
                }
                cv.notify_all();
            }
        });
        let d = Daemon {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            http: SocketAddr::from(([127, 0, 0, 1], http)),
            logs,
            dir,
        };
        d.wait_log(Duration::from_secs(20), |l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("voxgate is answering calls"))
        })
        .unwrap_or_else(|| panic!("voxgate did not start; logs: {:?}", d.all_logs()));
        d
    }

    /// All log lines so far.
    pub fn all_logs(&self) -> Vec<serde_json::Value> {
        self.logs.0.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Waits until a log line satisfies `pred`; returns it.
    pub fn wait_log(
        &self,
        timeout: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> Option<serde_json::Value> {
        self.wait_logs(timeout, 1, pred).into_iter().next()
    }

    /// Waits until `n` log lines satisfy `pred`; returns those seen (maybe fewer on timeout).
    pub fn wait_logs(
        &self,
        timeout: Duration,
        n: usize,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.logs;
        let mut guard = lock.lock().expect("log lock");
        loop {
            let found: Vec<_> = guard.iter().filter(|l| pred(l)).cloned().collect();
            if found.len() >= n {
                return found;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return found;
            }
            guard = cv.wait_timeout(guard, left).expect("log lock").0;
        }
    }

    /// Waits for `n` `call_end` summary lines.
    pub fn call_ends(&self, n: usize) -> Vec<serde_json::Value> {
        self.wait_logs(Duration::from_secs(60), n, |l| l["event"] == "call_end")
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends a signal (`TERM`, `INT`, `HUP`) to the daemon.
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args(["-s", name, &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -s {name} failed");
    }

    /// Waits up to `timeout` for the process to exit; its status, or `None` if still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Outcome of one SIPp run.
pub struct Sipp {
    /// SIPp's exit status (0: every call succeeded).
    pub status: ExitStatus,
    /// What SIPp printed on stderr (errors).
    pub stderr: String,
}

/// Runs a scenario from `sipp-scenarios/` against `target`; `transport` is `u1` or `t1`.
pub fn sipp(scenario: &str, target: SocketAddr, transport: &str, extra: &[&str]) -> Sipp {
    let scen = repo().join("sipp-scenarios").join(scenario);
    let port = free_port();
    let media = free_port();
    let mut cmd = Command::new("sipp");
    cmd.arg(target.to_string())
        .arg("-sf")
        .arg(&scen)
        .args(["-i", "127.0.0.1", "-mi", "127.0.0.1"])
        .args(["-p", &port.to_string(), "-mp", &media.to_string()])
        .args([
            "-t",
            transport,
            "-nostdin",
            "-timeout",
            "60s",
            "-timeout_error",
        ])
        .args(["-max_recv_loops", "1000"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let out = cmd
        .output()
        .expect("run sipp (is sip-tester installed? run scripts/setup)");
    Sipp {
        status: out.status,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Writes a pcap with `ms` of a 440 Hz tone as PCMU RTP (PT 0); returns its path.
pub fn tone_pcap(dir: &Path, ms: u32) -> PathBuf {
    let path = dir.join(format!("tone-{ms}.pcap"));
    let pcm = pcap::tone(440.0, ms, 8000);
    let payload = pcap::ulaw(&pcm);
    pcap::write_rtp_pcap(&path, 0, &payload, 160).expect("write pcap");
    path
}

/// Sends one UDP datagram to `to` and returns the first reply within `timeout`, if any.
pub fn udp_exchange(to: SocketAddr, msg: &[u8], timeout: Duration) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(timeout)).expect("timeout");
    sock.send_to(msg, to).expect("send");
    let mut buf = vec![0u8; 65536];
    match sock.recv_from(&mut buf) {
        Ok((n, _)) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

/// A well-formed OPTIONS from `from` (the local socket address used in Via).
pub fn options(call_id: &str) -> String {
    format!(
        "OPTIONS sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{call_id};rport\r\n\
         From: <sip:probe@127.0.0.1>;tag=p1\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Status code of a raw SIP response.
pub fn status_of(resp: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(resp);
    let line = text.lines().next()?;
    let mut parts = line.split_whitespace();
    (parts.next()? == "SIP/2.0").then_some(())?;
    parts.next()?.parse().ok()
}

/// Writes 8 kHz mono PCM16 as a WAV file (for prompt-mode tests).
pub fn write_wav(path: &Path, pcm: &[i16]) -> std::io::Result<()> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).map_err(std::io::Error::other)?;
    for s in pcm {
        w.write_sample(*s).map_err(std::io::Error::other)?;
    }
    w.finalize().map_err(std::io::Error::other)
}

/// One piece of a generated caller recording.
pub enum Seg {
    /// Loud enough for any energy VAD: a 440 Hz tone ("speech").
    Talk(u32),
    /// Digital silence.
    Quiet(u32),
}

/// Writes a PCMU pcap of the given talk/silence segments; returns its path.
pub fn speech_pcap(dir: &Path, name: &str, segs: &[Seg]) -> PathBuf {
    let mut pcm = Vec::new();
    for s in segs {
        match s {
            Seg::Talk(ms) => pcm.extend(pcap::tone(440.0, *ms, 8000)),
            Seg::Quiet(ms) => pcm.extend(pcap::silence(*ms)),
        }
    }
    let path = dir.join(format!("{name}.pcap"));
    pcap::write_rtp_pcap(&path, 0, &pcap::ulaw(&pcm), 160).expect("write pcap");
    path
}

/// Writes a simulator script to its own scratch dir; pass the path to the daemon as
/// `VOXGATE_MODEL_SIM_SCRIPT`.
pub fn sim_script(name: &str, script: &str) -> String {
    let path = scratch(&format!("{name}-sim")).join("sim.yaml");
    std::fs::write(&path, script).expect("write sim script");
    path.display().to_string()
}

/// Sends one UDP request and collects responses until a final one (≥ 200) or `timeout`;
/// returns the status codes in order.
pub fn udp_request_codes(to: SocketAddr, msg: &[u8], timeout: Duration) -> Vec<u16> {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    sock.send_to(msg, to).expect("send");
    let deadline = Instant::now() + timeout;
    let mut codes = Vec::new();
    let mut buf = vec![0u8; 65536];
    while Instant::now() < deadline {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            if let Some(code) = status_of(&buf[..n]) {
                codes.push(code);
                if code >= 200 {
                    break;
                }
            }
        }
    }
    codes
}

/// A minimal INVITE with a PCMU offer to `user`.
pub fn invite(user: &str, call_id: &str) -> String {
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n";
    format!(
        "INVITE sip:{user}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{call_id};rport\r\n\
         From: <sip:caller@127.0.0.1>;tag=c1\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:caller@127.0.0.1:9>\r\nMax-Forwards: 70\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

/// Runs `voxgate calls ARGS` against the SQLite call log in `dir`; returns its stdout.
pub fn calls(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_voxgate"))
        .arg("calls")
        .args(args)
        .current_dir(dir)
        .env("DATABASE_URL", "sqlite://voxgate.db")
        .output()
        .expect("run voxgate calls");
    assert!(
        out.status.success(),
        "voxgate calls failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One SIPp call of `scenario` with the caller audio `pcap` and extra arguments.
pub fn sipp_pcap(scenario: &str, target: SocketAddr, pcap: &Path, extra: &[&str]) -> Sipp {
    let mut args = vec![
        "-m",
        "1",
        "-key",
        "pcap",
        pcap.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    sipp(scenario, target, "u1", &args)
}

/// One HTTP/1.1 GET to `addr`: the status code and the body (`Connection: close`, no chunking
/// expected for these small bodies; a chunked one is de-chunked).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 || after.len() < n {
                break;
            }
            out.push_str(&after[..n]);
            rest = after[n..].trim_start_matches("\r\n");
        }
        out
    } else {
        body.to_string()
    };
    (code, body)
}

/// The value of one sample line (`name{labels} value`) in a Prometheus text body.
pub fn metric(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
