//! Admission control for requests that start something (no call owns their Call-ID yet), as a
//! sans-IO core: the router asks [`Admission::check`] with the time, the source IP, the method
//! and the `User-Agent`, and acts on the [`Decision`]. Reads no clock and owns no socket.
//!
//! The order of the checks, cheapest verdict first:
//! 1. a `User-Agent` of a known SIP scanner (friendly-scanner, sipvicious, …) → silent drop: a
//!    reply only confirms that something listens;
//! 2. a source outside `allow_from` → 403 for INVITE, silent drop for everything else (OPTIONS
//!    and REGISTER floods get no reply at all);
//! 3. a per-source token bucket for INVITEs (`invites_per_second`, `burst`) → 503 with
//!    Retry-After, or a silent drop, as configured. Other methods spend no tokens: in-dialog
//!    requests never reach this module, and out-of-dialog OPTIONS are cheap stateless replies
//!    (dispatchers ping with them).
//!
//! Refusals are logged at most once per source per [`LOG_EVERY`] (the decision says when, and
//! how many were suppressed since), never per packet. The per-source table is bounded: when it
//! is full, sources idle long enough to have a full bucket and no pending log window are swept
//! (at most once a second); if that frees nothing — a flood of spoofed sources — new sources
//! share one overflow bucket instead of growing memory.
//!
//! Left out: digest authentication, per-destination limits, global (all-source) rate limits —
//! `sip.max_calls` in the router caps concurrency.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use rsip::Method;

/// A refused source is logged at most once per this interval.
pub const LOG_EVERY: Duration = Duration::from_secs(60);

/// Most sources tracked one by one; more share the overflow bucket.
pub const MAX_SOURCES: usize = 10_000;

/// Sweeps of the full table happen at most this often (they are O(table)).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// `User-Agent` fragments (lower case) of SIP scanners and war-diallers.
pub const SCANNER_AGENTS: &[&str] = &[
    "friendly-scanner",
    "sipvicious",
    "sipcli",
    "vaxsipuseragent",
    "sip-scan",
    "sipscan",
    "sundayddr",
    "iwar",
    "smap",
    "pplsip",
    "siparmyknife",
];

/// An IPv4 or IPv6 network (`10.0.0.0/8`, `2001:db8::/32`, or one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    /// Parses `addr` or `addr/prefix`; `None` when either part is invalid.
    pub fn parse(text: &str) -> Option<Cidr> {
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text.trim(), None),
        };
        let net: IpAddr = addr.parse().ok()?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|b| *b <= max)?,
            None => max,
        };
        Some(Cidr { net, bits })
    }

    /// True if `ip` is inside this network (an IPv4 net never contains an IPv6 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                u32::from(n) & mask == u32::from(i) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.bits))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(i) & mask
            }
            _ => false,
        }
    }
}

/// What to do with an INVITE over its source's rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RateAction {
    /// 503 Service Unavailable with Retry-After (well-behaved trunks back off).
    #[default]
    Reject,
    /// No reply at all (the sender's retransmissions are dropped too).
    Drop,
}

/// Admission settings (built from `sip:` in the daemon config).
#[derive(Debug, Clone)]
pub struct AdmissionConfig {
    /// Sources allowed to send out-of-dialog requests; empty: everyone.
    pub allow_from: Vec<Cidr>,
    /// Sustained INVITE rate per source; 0 disables rate limiting.
    pub invites_per_second: f64,
    /// INVITEs a source may send at once (bucket size, at least 1).
    pub burst: u32,
    /// What happens to an INVITE over the rate.
    pub action: RateAction,
    /// Lower-case `User-Agent` fragments dropped silently.
    pub block_user_agents: Vec<String>,
    /// Most sources tracked one by one (bounded memory).
    pub max_sources: usize,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            allow_from: Vec::new(),
            invites_per_second: 20.0,
            burst: 40,
            action: RateAction::Reject,
            block_user_agents: SCANNER_AGENTS.iter().map(|s| s.to_string()).collect(),
            max_sources: MAX_SOURCES,
        }
    }
}

/// The verdict on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go on routing it.
    Accept,
    /// Answer statelessly with this code (and `Retry-After` seconds, for 503).
    Reject(u16, Option<u32>),
    /// Send nothing.
    Drop,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its `User-Agent` names a scanner.
    Scanner,
    /// Its source is outside `allow_from`.
    NotAllowed,
    /// Its source sent INVITEs faster than its bucket allows.
    RateLimited,
}

/// A verdict plus what the router should log about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// What to do with the request.
    pub verdict: Verdict,
    /// Why it was refused (`None` when accepted).
    pub refusal: Option<Refusal>,
    /// `Some(n)` when this refusal should be logged: `n` refusals of this source went unlogged
    /// since its last log line.
    pub log: Option<u64>,
}

/// What we remember about one source.
#[derive(Debug, Clone, Copy)]
struct Source {
    /// INVITE tokens left at `at`.
    tokens: f64,
    /// When `tokens` was last brought up to date.
    at: Instant,
    /// Last request seen (for eviction).
    seen: Instant,
    /// When this source was last logged as refused.
    logged: Option<Instant>,
    /// Refusals not logged since then.
    suppressed: u64,
}

impl Source {
    fn new(now: Instant, burst: f64) -> Source {
        Source {
            tokens: burst,
            at: now,
            seen: now,
            logged: None,
            suppressed: 0,
        }
    }

    /// Refills at `rate` per second up to `burst`, then tries to take one token. `Err` carries
    /// the whole seconds until a token will be there.
    fn take(&mut self, now: Instant, rate: f64, burst: f64) -> Result<(), u32> {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * rate).min(burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = ((1.0 - self.tokens) / rate).ceil();
            Err((wait as u32).max(1))
        }
    }

    /// True if this refusal is the one to log now; counts it as suppressed otherwise.
    fn log_now(&mut self, now: Instant) -> Option<u64> {
        match self.logged {
            Some(t) if now.saturating_duration_since(t) < LOG_EVERY => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.logged = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

/// Per-source admission state; see the module doc.
#[derive(Debug)]
pub struct Admission {
    cfg: AdmissionConfig,
    sources: HashMap<IpAddr, Source>,
    /// Shared by the sources that found the table full.
    overflow: Option<Source>,
    last_sweep: Option<Instant>,
    /// Log window of `sip.max_calls` refusals (one line a minute for the whole daemon).
    overload: Option<Source>,
}

impl Admission {
    /// A fresh admission state.
    pub fn new(cfg: AdmissionConfig) -> Admission {
        Admission {
            cfg,
            sources: HashMap::new(),
            overflow: None,
            last_sweep: None,
            overload: None,
        }
    }

    /// Notes an INVITE refused because `sip.max_calls` is reached: `Some(n)` when this one
    /// should be logged, `n` being the refusals not logged since the last line.
    pub fn note_overload(&mut self, now: Instant) -> Option<u64> {
        self.overload
            .get_or_insert_with(|| Source::new(now, 0.0))
            .log_now(now)
    }

    /// True if `ip` may send out-of-dialog requests at all (`allow_from`).
    pub fn allowed(&self, ip: IpAddr) -> bool {
        self.cfg.allow_from.is_empty() || self.cfg.allow_from.iter().any(|c| c.contains(ip))
    }

    /// Judges one request that no call owns (new INVITE, OPTIONS, REGISTER, stray BYE, …).
    pub fn check(
        &mut self,
        now: Instant,
        ip: IpAddr,
        method: &Method,
        user_agent: Option<&str>,
    ) -> Decision {
        let accept = Decision {
            verdict: Verdict::Accept,
            refusal: None,
            log: None,
        };
        let invite = *method == Method::Invite;
        let refusal = if user_agent.is_some_and(|ua| self.scanner(ua)) {
            Some((Refusal::Scanner, Verdict::Drop))
        } else if !self.allowed(ip) {
            let verdict = if invite {
                Verdict::Reject(403, None)
            } else {
                Verdict::Drop
            };
            Some((Refusal::NotAllowed, verdict))
        } else {
            None
        };
        // ACKs are never answered and never started anything: nothing to count or log.
        if *method == Method::Ack {
            return match refusal {
                None => accept,
                Some((r, _)) => Decision {
                    verdict: Verdict::Drop,
                    refusal: Some(r),
                    log: None,
                },
            };
        }
        let limited = invite && self.cfg.invites_per_second > 0.0;
        if refusal.is_none() && !limited {
            return accept; // nothing to remember about this source
        }
        let (rate, burst) = (
            self.cfg.invites_per_second,
            f64::from(self.cfg.burst.max(1)),
        );
        let action = self.cfg.action;
        let source = self.source(now, ip);
        source.seen = now;
        let (refusal, verdict) = match refusal {
            Some(r) => r,
            None => match source.take(now, rate, burst) {
                Ok(()) => return accept,
                Err(wait) => (
                    Refusal::RateLimited,
                    match action {
                        RateAction::Reject => Verdict::Reject(503, Some(wait)),
                        RateAction::Drop => Verdict::Drop,
                    },
                ),
            },
        };
        Decision {
            verdict,
            refusal: Some(refusal),
            log: source.log_now(now),
        }
    }

    /// Sources tracked one by one right now (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.sources.len()
    }

    fn scanner(&self, ua: &str) -> bool {
        let ua = ua.to_ascii_lowercase();
        self.cfg
            .block_user_agents
            .iter()
            .any(|s| !s.is_empty() && ua.contains(s.as_str()))
    }

    /// The entry of `ip`, created (after a sweep, if the table is full) or the overflow one.
    fn source(&mut self, now: Instant, ip: IpAddr) -> &mut Source {
        let burst = f64::from(self.cfg.burst.max(1));
        if !self.sources.contains_key(&ip) && self.sources.len() >= self.cfg.max_sources {
            self.sweep(now);
            if self.sources.len() >= self.cfg.max_sources {
                return self.overflow.get_or_insert_with(|| Source::new(now, burst));
            }
        }
        self.sources
            .entry(ip)
            .or_insert_with(|| Source::new(now, burst))
    }

    /// Forgets sources whose bucket has refilled and whose log window has closed: they would
    /// be recreated exactly as they are.
    fn sweep(&mut self, now: Instant) {
        if self
            .last_sweep
            .is_some_and(|t| now.saturating_duration_since(t) < SWEEP_EVERY)
        {
            return;
        }
        self.last_sweep = Some(now);
        let refill = if self.cfg.invites_per_second > 0.0 {
            Duration::from_secs_f64(
                (f64::from(self.cfg.burst.max(1)) / self.cfg.invites_per_second).min(3600.0),
            )
        } else {
            Duration::ZERO
        };
        let idle = refill.max(LOG_EVERY);
        self.sources
            .retain(|_, s| now.saturating_duration_since(s.seen) < idle);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn cfg() -> AdmissionConfig {
        AdmissionConfig {
            invites_per_second: 2.0,
            burst: 3,
            ..AdmissionConfig::default()
        }
    }

    #[test]
    fn cidrs() {
        let c = |s: &str| Cidr::parse(s).expect("cidr");
        assert!(c("10.0.0.0/8").contains(ip("10.1.2.3")));
        assert!(!c("10.0.0.0/8").contains(ip("11.1.2.3")));
        assert!(c("127.0.0.1").contains(ip("127.0.0.1")));
        assert!(!c("127.0.0.1").contains(ip("127.0.0.2")));
        assert!(c("0.0.0.0/0").contains(ip("8.8.8.8")));
        assert!(c("2001:db8::/32").contains(ip("2001:db8::1")));
        assert!(c("::/0").contains(ip("2001:db8::1")));
        assert!(!c("2001:db8::/32").contains(ip("10.0.0.1")));
        for bad in ["10.0.0.0/33", "x", "10.0.0.0/", "::/129", ""] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn token_bucket_refills_and_says_when() {
        let t0 = Instant::now();
        let mut a = Admission::new(cfg());
        let src = ip("192.0.2.1");
        let v = |a: &mut Admission, at| a.check(at, src, &Method::Invite, None).verdict;
        for _ in 0..3 {
            assert_eq!(v(&mut a, t0), Verdict::Accept, "burst of 3");
        }
        assert_eq!(v(&mut a, t0), Verdict::Reject(503, Some(1)));
        // 2 per second: one token after 500 ms.
        assert_eq!(v(&mut a, t0 + ms(499)), Verdict::Reject(503, Some(1)));
        assert_eq!(v(&mut a, t0 + ms(500)), Verdict::Accept);
        assert_eq!(v(&mut a, t0 + ms(500)), Verdict::Reject(503, Some(1)));
        // Another source has its own bucket.
        assert_eq!(
            a.check(t0, ip("192.0.2.2"), &Method::Invite, None).verdict,
            Verdict::Accept
        );
        // Long idle refills only up to the burst.
        let t1 = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(v(&mut a, t1), Verdict::Accept);
        }
        assert_eq!(v(&mut a, t1), Verdict::Reject(503, Some(1)));
    }

    #[test]
    fn slow_rates_ask_for_longer_retry_after() {
        let t0 = Instant::now();
        let mut a = Admission::new(AdmissionConfig {
            invites_per_second: 0.1,
            burst: 1,
            ..AdmissionConfig::default()
        });
        let src = ip("192.0.2.1");
        assert_eq!(
            a.check(t0, src, &Method::Invite, None).verdict,
            Verdict::Accept
        );
        assert_eq!(
            a.check(t0, src, &Method::Invite, None).verdict,
            Verdict::Reject(503, Some(10))
        );
    }

    #[test]
    fn drop_action_sends_nothing() {
        let t0 = Instant::now();
        let mut a = Admission::new(AdmissionConfig {
            action: RateAction::Drop,
            burst: 1,
            ..cfg()
        });
        let src = ip("192.0.2.1");
        assert_eq!(
            a.check(t0, src, &Method::Invite, None).verdict,
            Verdict::Accept
        );
        let d = a.check(t0, src, &Method::Invite, None);
        assert_eq!(d.verdict, Verdict::Drop);
        assert_eq!(d.refusal, Some(Refusal::RateLimited));
    }

    #[test]
    fn other_methods_spend_no_tokens() {
        let t0 = Instant::now();
        let mut a = Admission::new(AdmissionConfig { burst: 1, ..cfg() });
        let src = ip("192.0.2.1");
        for m in [Method::Options, Method::Register, Method::Ack, Method::Bye] {
            for _ in 0..100 {
                assert_eq!(a.check(t0, src, &m, None).verdict, Verdict::Accept);
            }
        }
        assert_eq!(
            a.check(t0, src, &Method::Invite, None).verdict,
            Verdict::Accept
        );
        assert_eq!(a.tracked(), 1, "only the INVITE created state");
    }

    #[test]
    fn unlimited_rate_keeps_no_state() {
        let t0 = Instant::now();
        let mut a = Admission::new(AdmissionConfig {
            invites_per_second: 0.0,
            ..cfg()
        });
        for i in 0..1000u32 {
            let src = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            assert_eq!(
                a.check(t0, src, &Method::Invite, None).verdict,
                Verdict::Accept
            );
        }
        assert_eq!(a.tracked(), 0);
    }

    #[test]
    fn allow_from_rejects_invites_and_drops_the_rest_logging_once_a_minute() {
        let t0 = Instant::now();
        let mut a = Admission::new(AdmissionConfig {
            allow_from: vec![Cidr::parse("10.0.0.0/8").expect("cidr")],
            ..cfg()
        });
        let bad = ip("198.51.100.7");
        let first = a.check(t0, bad, &Method::Invite, None);
        assert_eq!(first.verdict, Verdict::Reject(403, None));
        assert_eq!(first.refusal, Some(Refusal::NotAllowed));
        assert_eq!(first.log, Some(0), "the first refusal is logged");
        for i in 1..=100 {
            let d = a.check(t0 + ms(i * 100), bad, &Method::Options, None);
            assert_eq!(d.verdict, Verdict::Drop, "no reply to an OPTIONS flood");
            assert_eq!(d.log, None, "not logged per packet");
        }
        let later = a.check(t0 + LOG_EVERY, bad, &Method::Register, None);
        assert_eq!(later.verdict, Verdict::Drop);
        assert_eq!(
            later.log,
            Some(100),
            "one line a minute, with the count suppressed"
        );
        assert_eq!(
            a.check(t0, ip("10.9.9.9"), &Method::Invite, None).verdict,
            Verdict::Accept
        );
        assert_eq!(
            a.check(t0, bad, &Method::Ack, None).verdict,
            Verdict::Drop,
            "ACKs are never answered"
        );
    }

    #[test]
    fn scanners_are_dropped_silently_even_from_allowed_sources() {
        let t0 = Instant::now();
        let mut a = Admission::new(cfg());
        let src = ip("192.0.2.1");
        for ua in [
            "friendly-scanner",
            "SIPVicious 0.3",
            "sipcli/v1.8",
            "VaxSIPUserAgent/3.1",
        ] {
            let d = a.check(t0, src, &Method::Options, Some(ua));
            assert_eq!(d.verdict, Verdict::Drop, "{ua}");
            assert_eq!(d.refusal, Some(Refusal::Scanner));
            let d = a.check(t0, src, &Method::Invite, Some(ua));
            assert_eq!(d.verdict, Verdict::Drop, "{ua}");
        }
        assert_eq!(
            a.check(t0, src, &Method::Invite, Some("Linphone/5.2"))
                .verdict,
            Verdict::Accept
        );
        // Scanner INVITEs spent no tokens: the burst of 3 is still there (1 spent above).
        for _ in 0..2 {
            assert_eq!(
                a.check(t0, src, &Method::Invite, None).verdict,
                Verdict::Accept
            );
        }
    }

    #[test]
    fn overload_is_logged_once_a_minute() {
        let t0 = Instant::now();
        let mut a = Admission::new(cfg());
        assert_eq!(a.note_overload(t0), Some(0));
        for i in 1..50 {
            assert_eq!(a.note_overload(t0 + ms(i)), None);
        }
        assert_eq!(a.note_overload(t0 + LOG_EVERY), Some(49));
    }

    #[test]
    fn spoofed_source_flood_is_bounded() {
        let t0 = Instant::now();
        let mut a = Admission::new(AdmissionConfig {
            max_sources: 100,
            ..cfg()
        });
        let addr = |i: u32| IpAddr::from(std::net::Ipv4Addr::from(0xc633_0000 + i));
        let mut accepted = 0;
        for i in 0..10_000u32 {
            let at = t0 + ms(u64::from(i) / 10); // 10,000 sources in one second
            if a.check(at, addr(i), &Method::Invite, None).verdict == Verdict::Accept {
                accepted += 1;
            }
        }
        assert_eq!(a.tracked(), 100, "the table never grows past max_sources");
        // 100 tracked sources × burst 3, plus the shared overflow bucket's burst and refill.
        assert!(accepted <= 300 + 3 + 2, "{accepted}");
        // Once they are idle past the log window, a sweep makes room for a real caller.
        let later = t0 + LOG_EVERY + Duration::from_secs(2);
        let d = a.check(later, ip("203.0.113.1"), &Method::Invite, None);
        assert_eq!(d.verdict, Verdict::Accept);
        assert_eq!(a.tracked(), 1, "the idle sources were swept");
    }

    #[test]
    fn sweeps_are_rate_limited() {
        let t0 = Instant::now();
        let mut a = Admission::new(AdmissionConfig {
            max_sources: 2,
            ..cfg()
        });
        let _ = a.check(t0, ip("192.0.2.1"), &Method::Invite, None);
        let _ = a.check(t0, ip("192.0.2.2"), &Method::Invite, None);
        let later = t0 + LOG_EVERY * 2;
        // First new source sweeps (and frees both); the table then refills.
        let _ = a.check(later, ip("192.0.2.3"), &Method::Invite, None);
        let _ = a.check(later, ip("192.0.2.4"), &Method::Invite, None);
        assert_eq!(a.tracked(), 2);
        // Another new source within the second shares the overflow bucket.
        let _ = a.check(later + ms(10), ip("192.0.2.5"), &Method::Invite, None);
        assert_eq!(a.tracked(), 2);
    }
}
