//! RFC 3261 §17.1.2 non-INVITE client transaction: what voxgate uses for the requests it sends
//! inside a dialog (BYE today; REFER and NOTIFY answers later). Timer E resends the request
//! (T1 doubling, capped at T2; every T2 once a provisional arrived) on unreliable transports,
//! timer F gives up after 64·T1, timer K absorbs response retransmissions for T4.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rsip::prelude::*;

use super::{Reliability, TimerConfig, Timers};

/// States of §17.1.2 figure 6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Request sent, no response yet.
    Trying,
    /// A provisional arrived.
    Proceeding,
    /// A final arrived; absorbing retransmissions until timer K.
    Completed,
    /// Done.
    Terminated,
}

/// Inputs.
#[derive(Debug, Clone)]
pub enum Input {
    /// A response matched to this transaction (by branch).
    Response(rsip::Response),
    /// `poll_timeout` was reached.
    Timeout,
    /// The transport failed.
    TransportError,
}

/// What the TU learns from a client transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// A 1xx.
    Provisional(rsip::Response),
    /// The final response (reported once).
    Final(rsip::Response),
    /// Timer F/B fired: treat as 408.
    Timeout,
    /// The transport failed: treat as 503.
    TransportFailed,
    /// The transaction is over.
    Terminated,
}

/// Outputs.
#[derive(Debug, Clone)]
pub enum Output {
    /// Send this message (the request, again on retransmission).
    Send(rsip::SipMessage),
    /// Tell the TU.
    Event(ClientEvent),
}

/// Timers of this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Timer {
    /// E: resend the request; T1 doubling to T2 (unreliable only).
    E = 0,
    /// F: give up; 64·T1.
    F = 1,
    /// K: absorb response retransmissions; T4 (0 on reliable transports).
    K = 2,
}

/// RFC 3261 §17.1.2 client non-INVITE transaction; see the `transaction` module doc for the
/// call contract. `new` emits the request at once.
pub struct ClientNonInvite {
    state: State,
    reliability: Reliability,
    cfg: TimerConfig,
    request: rsip::Request,
    branch: String,
    interval: Duration,
    timers: Timers<3>,
    out: VecDeque<Output>,
}

impl ClientNonInvite {
    /// Creates the transaction and queues the request for sending.
    pub fn new(
        now: Instant,
        request: rsip::Request,
        reliability: Reliability,
        cfg: TimerConfig,
    ) -> Self {
        let branch = request
            .via_header()
            .ok()
            .and_then(|v| v.typed().ok())
            .and_then(|v| v.branch().map(|b| b.to_string()))
            .unwrap_or_default();
        let mut t = ClientNonInvite {
            state: State::Trying,
            reliability,
            cfg,
            request: request.clone(),
            branch,
            interval: cfg.t1,
            timers: Timers::new(),
            out: VecDeque::new(),
        };
        t.out
            .push_back(Output::Send(rsip::SipMessage::Request(request)));
        t.timers.set(Timer::F as usize, now + cfg.t64());
        if reliability == Reliability::Unreliable {
            t.timers.set(Timer::E as usize, now + cfg.t1);
        }
        t
    }

    /// The top Via branch, for matching responses.
    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// True once terminated.
    pub fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }

    /// Next output.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When to deliver `Input::Timeout` next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.earliest()
    }

    /// Feeds one input at `now`.
    pub fn handle(&mut self, now: Instant, input: Input) {
        match input {
            Input::Response(resp) => self.on_response(now, resp),
            Input::Timeout => {
                for t in self.timers.due(now) {
                    self.on_timer(now, t);
                }
            }
            Input::TransportError => {
                if matches!(self.state, State::Trying | State::Proceeding) {
                    self.out
                        .push_back(Output::Event(ClientEvent::TransportFailed));
                    self.terminate();
                }
            }
        }
    }

    fn on_response(&mut self, now: Instant, resp: rsip::Response) {
        let code = resp.status_code.code();
        match self.state {
            State::Trying | State::Proceeding if code < 200 => {
                self.state = State::Proceeding;
                self.out
                    .push_back(Output::Event(ClientEvent::Provisional(resp)));
            }
            State::Trying | State::Proceeding => {
                self.state = State::Completed;
                self.timers.clear(Timer::E as usize);
                self.timers.clear(Timer::F as usize);
                self.out.push_back(Output::Event(ClientEvent::Final(resp)));
                let wait = match self.reliability {
                    Reliability::Unreliable => self.cfg.t4,
                    Reliability::Reliable => Duration::ZERO,
                };
                self.timers.set(Timer::K as usize, now + wait);
            }
            _ => {} // retransmitted finals absorbed in Completed
        }
    }

    fn on_timer(&mut self, now: Instant, t: usize) {
        match t {
            x if x == Timer::E as usize
                && matches!(self.state, State::Trying | State::Proceeding) =>
            {
                self.out.push_back(Output::Send(rsip::SipMessage::Request(
                    self.request.clone(),
                )));
                self.interval = if self.state == State::Proceeding {
                    self.cfg.t2
                } else {
                    (self.interval * 2).min(self.cfg.t2)
                };
                self.timers.set(Timer::E as usize, now + self.interval);
            }
            x if x == Timer::F as usize => {
                self.out.push_back(Output::Event(ClientEvent::Timeout));
                self.terminate();
            }
            x if x == Timer::K as usize => self.terminate(),
            _ => {}
        }
    }

    fn terminate(&mut self) {
        self.timers.clear_all();
        self.state = State::Terminated;
        self.out.push_back(Output::Event(ClientEvent::Terminated));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transaction::fixtures::{bye, ms, response};

    fn drain(tx: &mut ClientNonInvite) -> (usize, Vec<ClientEvent>) {
        let (mut sends, mut events) = (0, Vec::new());
        while let Some(o) = tx.poll_output() {
            match o {
                Output::Send(_) => sends += 1,
                Output::Event(e) => events.push(e),
            }
        }
        (sends, events)
    }

    #[test]
    fn timer_e_doubles_capped_then_f_times_out() {
        let t0 = Instant::now();
        let mut tx =
            ClientNonInvite::new(t0, bye(), Reliability::Unreliable, TimerConfig::default());
        assert_eq!(tx.branch(), "z9hG4bKbye1");
        assert_eq!(drain(&mut tx).0, 1);
        for at in [
            500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500,
        ] {
            assert_eq!(tx.poll_timeout(), Some(t0 + ms(at)), "at {at}");
            tx.handle(t0 + ms(at), Input::Timeout);
            assert_eq!(drain(&mut tx).0, 1, "at {at}");
        }
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(32_000)));
        tx.handle(t0 + ms(32_000), Input::Timeout);
        assert_eq!(
            drain(&mut tx).1,
            [ClientEvent::Timeout, ClientEvent::Terminated]
        );
    }

    #[test]
    fn provisional_moves_e_to_t2_and_final_starts_k() {
        let t0 = Instant::now();
        let req = bye();
        let mut tx = ClientNonInvite::new(
            t0,
            req.clone(),
            Reliability::Unreliable,
            TimerConfig::default(),
        );
        drain(&mut tx);
        tx.handle(t0 + ms(100), Input::Response(response(&req, 100)));
        assert_eq!(tx.state(), State::Proceeding);
        tx.handle(t0 + ms(500), Input::Timeout);
        assert_eq!(drain(&mut tx).0, 1);
        assert_eq!(
            tx.poll_timeout(),
            Some(t0 + ms(4_500)),
            "E fires every T2 in Proceeding"
        );
        tx.handle(t0 + ms(600), Input::Response(response(&req, 200)));
        let (_, ev) = drain(&mut tx);
        assert!(matches!(ev.as_slice(), [ClientEvent::Final(r)] if r.status_code.code() == 200));
        tx.handle(t0 + ms(700), Input::Response(response(&req, 200)));
        assert!(drain(&mut tx).1.is_empty(), "retransmitted final absorbed");
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(5_600)), "timer K = T4");
        tx.handle(t0 + ms(5_600), Input::Timeout);
        assert!(tx.is_terminated());
    }

    #[test]
    fn reliable_has_no_e_and_zero_k() {
        let t0 = Instant::now();
        let req = bye();
        let mut tx = ClientNonInvite::new(
            t0,
            req.clone(),
            Reliability::Reliable,
            TimerConfig::default(),
        );
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(32_000)), "only F");
        tx.handle(t0 + ms(50), Input::Response(response(&req, 200)));
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(50)));
        tx.handle(t0 + ms(50), Input::Timeout);
        assert!(tx.is_terminated());
    }
}
