//! RFC 3261 §17.2.2 non-INVITE server transaction (BYE, CANCEL, OPTIONS, INFO, NOTIFY inside
//! dialogs). Retransmitted requests get the last response again; timer J keeps the transaction
//! around for 64·T1 after the final response on unreliable transports (0 on reliable ones).

use std::collections::VecDeque;
use std::time::Instant;

use super::{Reliability, TimerConfig, Timers};

/// States of §17.2.2 figure 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Request received, nothing sent.
    Trying,
    /// A provisional was sent.
    Proceeding,
    /// A final was sent; absorbing retransmissions until timer J.
    Completed,
    /// Done.
    Terminated,
}

/// Inputs.
#[derive(Debug, Clone)]
pub enum Input {
    /// A retransmission of the request.
    Request(rsip::Request),
    /// A response from the TU.
    Respond(rsip::Response),
    /// `poll_timeout` was reached.
    Timeout,
    /// The transport failed.
    TransportError,
}

/// Outputs.
#[derive(Debug, Clone)]
pub enum Output {
    /// Send this response.
    Send(rsip::Response),
    /// The transaction is over (`true` if because the transport failed).
    Terminated(bool),
}

/// Timers of this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Timer {
    /// J: absorb request retransmissions after the final; 64·T1 (0 on reliable transports).
    J = 0,
}

/// RFC 3261 §17.2.2 server non-INVITE transaction; see the `transaction` module doc for the
/// call contract.
pub struct ServerNonInvite {
    state: State,
    reliability: Reliability,
    cfg: TimerConfig,
    last: Option<rsip::Response>,
    timers: Timers<1>,
    out: VecDeque<Output>,
}

impl ServerNonInvite {
    /// Creates the transaction for a received request.
    pub fn new(
        _now: Instant,
        _request: rsip::Request,
        reliability: Reliability,
        cfg: TimerConfig,
    ) -> Self {
        ServerNonInvite {
            state: State::Trying,
            reliability,
            cfg,
            last: None,
            timers: Timers::new(),
            out: VecDeque::new(),
        }
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
            Input::Request(_) => {
                if matches!(self.state, State::Proceeding | State::Completed) {
                    if let Some(r) = &self.last {
                        self.out.push_back(Output::Send(r.clone()));
                    }
                }
            }
            Input::Respond(resp) => {
                if matches!(self.state, State::Completed | State::Terminated) {
                    return;
                }
                let code = resp.status_code.code();
                self.last = Some(resp.clone());
                self.out.push_back(Output::Send(resp));
                if code < 200 {
                    self.state = State::Proceeding;
                } else {
                    self.state = State::Completed;
                    let wait = match self.reliability {
                        Reliability::Unreliable => self.cfg.t64(),
                        Reliability::Reliable => std::time::Duration::ZERO,
                    };
                    self.timers.set(Timer::J as usize, now + wait);
                }
            }
            Input::Timeout => {
                if !self.timers.due(now).is_empty() {
                    self.terminate(false);
                }
            }
            Input::TransportError => {
                if self.state != State::Terminated {
                    self.terminate(true);
                }
            }
        }
    }

    fn terminate(&mut self, failed: bool) {
        self.timers.clear_all();
        self.state = State::Terminated;
        self.out.push_back(Output::Terminated(failed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transaction::fixtures::{bye, ms, response};

    fn sent(tx: &mut ServerNonInvite) -> Vec<u16> {
        let mut v = Vec::new();
        while let Some(o) = tx.poll_output() {
            if let Output::Send(r) = o {
                v.push(r.status_code.code());
            }
        }
        v
    }

    #[test]
    fn retransmissions_absorbed_until_timer_j() {
        let t0 = Instant::now();
        let req = bye();
        let mut tx = ServerNonInvite::new(
            t0,
            req.clone(),
            Reliability::Unreliable,
            TimerConfig::default(),
        );
        tx.handle(t0, Input::Request(req.clone()));
        assert!(
            sent(&mut tx).is_empty(),
            "Trying: a retransmission is discarded"
        );
        tx.handle(t0, Input::Respond(response(&req, 200)));
        assert_eq!(sent(&mut tx), [200]);
        tx.handle(t0 + ms(700), Input::Request(req.clone()));
        assert_eq!(sent(&mut tx), [200]);
        tx.handle(t0 + ms(800), Input::Respond(response(&req, 500)));
        assert!(sent(&mut tx).is_empty(), "one final response only");
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(32_000)));
        tx.handle(t0 + ms(32_000), Input::Timeout);
        assert!(tx.is_terminated());
    }

    #[test]
    fn reliable_timer_j_is_zero() {
        let t0 = Instant::now();
        let req = bye();
        let mut tx = ServerNonInvite::new(
            t0,
            req.clone(),
            Reliability::Reliable,
            TimerConfig::default(),
        );
        tx.handle(t0, Input::Respond(response(&req, 200)));
        assert_eq!(tx.poll_timeout(), Some(t0));
        tx.handle(t0, Input::Timeout);
        assert!(tx.is_terminated());
    }

    #[test]
    fn provisional_then_final() {
        let t0 = Instant::now();
        let req = bye();
        let mut tx = ServerNonInvite::new(
            t0,
            req.clone(),
            Reliability::Unreliable,
            TimerConfig::default(),
        );
        tx.handle(t0, Input::Respond(response(&req, 100)));
        tx.handle(t0 + ms(10), Input::Request(req.clone()));
        assert_eq!(sent(&mut tx), [100, 100]);
        assert_eq!(tx.state(), State::Proceeding);
        tx.handle(t0 + ms(20), Input::Respond(response(&req, 200)));
        assert_eq!(sent(&mut tx), [200]);
    }
}
