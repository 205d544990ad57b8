//! RFC 3261 §17 transactions as sans-IO state machines (with RFC 6026's Accepted states).
//!
//! Every machine has the same shape: `new(now, request, reliability, timers)`, then
//! `handle(now, input)`; after `new` and after every `handle`, drain `poll_output()` until it
//! returns `None`, and call `handle(now, Input::Timeout)` once `poll_timeout()` is reached. Time
//! only moves forward. No machine reads a clock, owns a socket or spawns a task.
//!
//! Timers (one documented enum per machine) use T1 = 500 ms, T2 = 4 s, T4 = 5 s by default.
//! On reliable transports (TCP) the retransmission timers (A, E, G) never run and the
//! "wait for stray retransmissions" timers (D, I, J, K) are zero (§17.1.1.2 ff.).
//!
//! Left out: RFC 2543 transaction matching beyond a Call-ID/CSeq fallback key, 100rel/PRACK.

pub mod client_invite;
pub mod client_non_invite;
pub mod server_invite;
pub mod server_non_invite;

use std::time::{Duration, Instant};

pub use client_invite::ClientInvite;
pub use client_non_invite::{ClientEvent, ClientNonInvite};
pub use server_invite::{ServerEvent, ServerInvite};
pub use server_non_invite::ServerNonInvite;

/// Whether the transport retransmits for us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reliability {
    /// UDP: transactions retransmit.
    Unreliable,
    /// TCP: no retransmissions, zero wait timers.
    Reliable,
}

/// The RFC 3261 timer base values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// T1, the RTT estimate (500 ms).
    pub t1: Duration,
    /// T2, the maximum retransmit interval for non-INVITE requests and INVITE responses (4 s).
    pub t2: Duration,
    /// T4, the maximum time a message stays in the network (5 s).
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerConfig {
    /// 64·T1: timers B, F, H, J (unreliable) and L, M (32 s by default).
    pub fn t64(&self) -> Duration {
        self.t1 * 64
    }
}

/// A small table of armed timers, indexed by a machine's timer enum.
#[derive(Debug, Clone)]
pub(crate) struct Timers<const N: usize> {
    at: [Option<Instant>; N],
}

impl<const N: usize> Timers<N> {
    pub(crate) fn new() -> Self {
        Timers { at: [None; N] }
    }
    pub(crate) fn set(&mut self, i: usize, at: Instant) {
        self.at[i] = Some(at);
    }
    pub(crate) fn clear(&mut self, i: usize) {
        self.at[i] = None;
    }
    pub(crate) fn clear_all(&mut self) {
        self.at = [None; N];
    }
    /// Takes every timer due at `now`, earliest first.
    pub(crate) fn due(&mut self, now: Instant) -> Vec<usize> {
        let mut due: Vec<(Instant, usize)> = self
            .at
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.filter(|t| *t <= now).map(|t| (t, i)))
            .collect();
        due.sort();
        for (_, i) in &due {
            self.at[*i] = None;
        }
        due.into_iter().map(|(_, i)| i).collect()
    }
    pub(crate) fn earliest(&self) -> Option<Instant> {
        self.at.iter().flatten().min().copied()
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    use std::time::Duration;

    /// An INVITE over UDP.
    pub fn invite() -> rsip::Request {
        rsip::Request::try_from(
            "INVITE sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKinv1\r\n\
             Max-Forwards: 70\r\nFrom: <sip:a@10.0.0.1>;tag=f1\r\nTo: <sip:100@127.0.0.1>\r\n\
             Call-ID: c1@10.0.0.1\r\nCSeq: 1 INVITE\r\nContact: <sip:a@10.0.0.1>\r\nContent-Length: 0\r\n\r\n",
        )
        .expect("fixture invite")
    }

    /// A BYE (non-INVITE).
    pub fn bye() -> rsip::Request {
        rsip::Request::try_from(
            "BYE sip:a@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKbye1\r\n\
             Max-Forwards: 70\r\nFrom: <sip:100@127.0.0.1>;tag=t1\r\nTo: <sip:a@10.0.0.1>;tag=f1\r\n\
             Call-ID: c1@10.0.0.1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        )
        .expect("fixture bye")
    }

    /// The ACK for a non-2xx final to [`invite`] (same branch).
    pub fn ack() -> rsip::Request {
        rsip::Request::try_from(
            "ACK sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKinv1\r\n\
             Max-Forwards: 70\r\nFrom: <sip:a@10.0.0.1>;tag=f1\r\nTo: <sip:100@127.0.0.1>;tag=t1\r\n\
             Call-ID: c1@10.0.0.1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        )
        .expect("fixture ack")
    }

    /// A response with `code` to `req`.
    pub fn response(req: &rsip::Request, code: u16) -> rsip::Response {
        crate::sip::message::response(req, code, Some("t1"))
    }

    /// Milliseconds.
    pub fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }
}
