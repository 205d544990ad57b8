//! RFC 3261 §17.2.1 INVITE server transaction, with RFC 6026's Accepted state.
//!
//! The TU (our UAS session) sends 100 Trying itself, through `Input::Respond`, right after
//! `new`. A non-2xx final is resent on timer G (unreliable transports only) until the ACK or
//! timer H. A 2xx moves to Accepted; unlike RFC 6026, where retransmitting the 2xx is the UAS
//! core's job (§13.3.1.4), this machine resends it on the same doubling schedule until the
//! dialog layer reports the ACK (`Input::AckFor2xx`, as that ACK has its own branch) or timer L.

use std::collections::VecDeque;
use std::time::Instant;

use super::{Reliability, TimerConfig, Timers};

/// States of §17.2.1 figure 7, plus RFC 6026 Accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// INVITE received, provisional responses may be sent.
    Proceeding,
    /// A non-2xx final was sent; waiting for the ACK.
    Completed,
    /// The ACK arrived; absorbing ACK retransmissions until timer I.
    Confirmed,
    /// A 2xx was sent (RFC 6026); absorbing INVITE retransmissions until timer L.
    Accepted,
    /// Done.
    Terminated,
}

/// Inputs.
#[derive(Debug, Clone)]
pub enum Input {
    /// A retransmitted INVITE, or the ACK for a non-2xx final (same branch).
    Request(rsip::Request),
    /// A response from the TU.
    Respond(rsip::Response),
    /// The dialog layer matched the ACK of our 2xx.
    AckFor2xx,
    /// `poll_timeout` was reached.
    Timeout,
    /// The transport could not deliver (§17.2.4).
    TransportError,
}

/// What the TU learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerEvent {
    /// The ACK for our non-2xx final arrived.
    Confirmed,
    /// The ACK for our 2xx arrived.
    Acked,
    /// Timer H or L fired without an ACK: for a 2xx the TU should send BYE.
    NoAck,
    /// The transaction is over.
    Terminated,
    /// The transport failed.
    TransportFailed,
}

/// Outputs.
#[derive(Debug, Clone)]
pub enum Output {
    /// Send this response to the request's source.
    Send(rsip::Response),
    /// Tell the TU.
    Event(ServerEvent),
}

/// Timers of this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Timer {
    /// G: resend the non-2xx final; starts at T1, doubles, capped at T2 (unreliable only).
    G = 0,
    /// H: give up waiting for the ACK of a non-2xx final; 64·T1.
    H = 1,
    /// I: absorb ACK retransmissions; T4 (0 on reliable transports).
    I = 2,
    /// L (RFC 6026): leave Accepted; 64·T1.
    L = 3,
    /// Resend the 2xx until ACK (§13.3.1.4 schedule: T1 doubling to T2, unreliable only).
    Resend2xx = 4,
}

/// RFC 3261 §17.2.1 server INVITE transaction; see the module doc for the call contract.
pub struct ServerInvite {
    state: State,
    reliability: Reliability,
    cfg: TimerConfig,
    last: Option<rsip::Response>,
    /// Current retransmission interval of G or of the 2xx resend.
    interval: std::time::Duration,
    acked: bool,
    timers: Timers<5>,
    out: VecDeque<Output>,
}

impl ServerInvite {
    /// Creates the transaction for a received INVITE.
    pub fn new(
        _now: Instant,
        _invite: rsip::Request,
        reliability: Reliability,
        cfg: TimerConfig,
    ) -> Self {
        ServerInvite {
            state: State::Proceeding,
            reliability,
            cfg,
            last: None,
            interval: cfg.t1,
            acked: false,
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
            Input::Request(req) => self.on_request(now, req),
            Input::Respond(resp) => self.on_respond(now, resp),
            Input::AckFor2xx => {
                if self.state == State::Accepted && !self.acked {
                    self.acked = true;
                    self.timers.clear(Timer::Resend2xx as usize);
                    self.out.push_back(Output::Event(ServerEvent::Acked));
                }
            }
            Input::Timeout => {
                for t in self.timers.due(now) {
                    self.on_timer(now, t);
                }
            }
            Input::TransportError => {
                if self.state != State::Terminated {
                    self.out
                        .push_back(Output::Event(ServerEvent::TransportFailed));
                    self.terminate();
                }
            }
        }
    }

    fn on_request(&mut self, now: Instant, req: rsip::Request) {
        let is_ack = req.method == rsip::Method::Ack;
        match (self.state, is_ack) {
            (State::Proceeding, false) | (State::Completed, false) => self.resend(),
            (State::Accepted, false) => {} // RFC 6026 §7.1: absorbed
            (State::Completed, true) => {
                self.state = State::Confirmed;
                self.timers.clear(Timer::G as usize);
                self.timers.clear(Timer::H as usize);
                self.out.push_back(Output::Event(ServerEvent::Confirmed));
                self.start_wait(now, Timer::I, self.cfg.t4);
            }
            _ => {} // ACK retransmissions in Confirmed, stray ACKs: absorbed
        }
    }

    fn on_respond(&mut self, now: Instant, resp: rsip::Response) {
        let code = resp.status_code.code();
        if self.state != State::Proceeding {
            return; // one final response only
        }
        self.last = Some(resp.clone());
        self.out.push_back(Output::Send(resp));
        if code < 200 {
            return;
        }
        if code < 300 {
            self.state = State::Accepted;
            self.timers.set(Timer::L as usize, now + self.cfg.t64());
            if self.reliability == Reliability::Unreliable {
                self.interval = self.cfg.t1;
                self.timers
                    .set(Timer::Resend2xx as usize, now + self.interval);
            }
        } else {
            self.state = State::Completed;
            self.timers.set(Timer::H as usize, now + self.cfg.t64());
            if self.reliability == Reliability::Unreliable {
                self.interval = self.cfg.t1;
                self.timers.set(Timer::G as usize, now + self.interval);
            }
        }
    }

    fn on_timer(&mut self, now: Instant, t: usize) {
        match t {
            x if x == Timer::G as usize && self.state == State::Completed => {
                self.resend();
                self.interval = (self.interval * 2).min(self.cfg.t2);
                self.timers.set(Timer::G as usize, now + self.interval);
            }
            x if x == Timer::Resend2xx as usize && self.state == State::Accepted => {
                self.resend();
                self.interval = (self.interval * 2).min(self.cfg.t2);
                self.timers
                    .set(Timer::Resend2xx as usize, now + self.interval);
            }
            x if x == Timer::H as usize && self.state == State::Completed => {
                self.out.push_back(Output::Event(ServerEvent::NoAck));
                self.terminate();
            }
            x if x == Timer::I as usize => self.terminate(),
            x if x == Timer::L as usize => {
                if !self.acked {
                    self.out.push_back(Output::Event(ServerEvent::NoAck));
                }
                self.terminate();
            }
            _ => {}
        }
    }

    /// Arms a "wait for stray retransmissions" timer: zero on reliable transports.
    fn start_wait(&mut self, now: Instant, t: Timer, unreliable_wait: std::time::Duration) {
        let wait = match self.reliability {
            Reliability::Unreliable => unreliable_wait,
            Reliability::Reliable => std::time::Duration::ZERO,
        };
        self.timers.set(t as usize, now + wait);
    }

    fn resend(&mut self) {
        if let Some(r) = &self.last {
            self.out.push_back(Output::Send(r.clone()));
        }
    }

    fn terminate(&mut self) {
        self.timers.clear_all();
        self.state = State::Terminated;
        self.out.push_back(Output::Event(ServerEvent::Terminated));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transaction::fixtures::{ack, invite, ms, response};

    fn drain(tx: &mut ServerInvite) -> (Vec<u16>, Vec<ServerEvent>) {
        let (mut codes, mut events) = (Vec::new(), Vec::new());
        while let Some(o) = tx.poll_output() {
            match o {
                Output::Send(r) => codes.push(r.status_code.code()),
                Output::Event(e) => events.push(e),
            }
        }
        (codes, events)
    }

    fn started(rel: Reliability, code: u16) -> (Instant, ServerInvite) {
        let t0 = Instant::now();
        let inv = invite();
        let mut tx = ServerInvite::new(t0, inv.clone(), rel, TimerConfig::default());
        tx.handle(t0, Input::Respond(response(&inv, 100)));
        tx.handle(t0, Input::Respond(response(&inv, code)));
        assert_eq!(drain(&mut tx).0, [100, code]);
        (t0, tx)
    }

    #[test]
    fn timer_g_doubles_up_to_t2_then_h_gives_up() {
        let (t0, mut tx) = started(Reliability::Unreliable, 486);
        for at in [
            500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500,
        ] {
            assert_eq!(tx.poll_timeout(), Some(t0 + ms(at)), "at {at}");
            tx.handle(t0 + ms(at), Input::Timeout);
            assert_eq!(drain(&mut tx).0, [486], "at {at}");
        }
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(32_000)));
        tx.handle(t0 + ms(32_000), Input::Timeout);
        assert_eq!(
            drain(&mut tx).1,
            [ServerEvent::NoAck, ServerEvent::Terminated]
        );
        assert!(tx.is_terminated());
    }

    #[test]
    fn tcp_has_no_timer_g() {
        let (t0, mut tx) = started(Reliability::Reliable, 486);
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(32_000)));
        tx.handle(t0 + ms(1_000), Input::Request(ack()));
        assert_eq!(drain(&mut tx).1, [ServerEvent::Confirmed]);
        // Timer I is zero on reliable transports.
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(1_000)));
        tx.handle(t0 + ms(1_000), Input::Timeout);
        assert!(tx.is_terminated());
    }

    #[test]
    fn ack_confirms_then_timer_i_terminates() {
        let (t0, mut tx) = started(Reliability::Unreliable, 488);
        tx.handle(t0 + ms(100), Input::Request(invite()));
        assert_eq!(
            drain(&mut tx).0,
            [488],
            "retransmitted INVITE gets the final again"
        );
        tx.handle(t0 + ms(200), Input::Request(ack()));
        assert_eq!(tx.state(), State::Confirmed);
        assert_eq!(drain(&mut tx).1, [ServerEvent::Confirmed]);
        tx.handle(t0 + ms(300), Input::Request(ack()));
        assert!(drain(&mut tx).0.is_empty(), "ACK retransmission absorbed");
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(5_200)));
        tx.handle(t0 + ms(5_200), Input::Timeout);
        assert!(tx.is_terminated());
    }

    #[test]
    fn provisional_resent_on_invite_retransmission() {
        let t0 = Instant::now();
        let inv = invite();
        let mut tx = ServerInvite::new(
            t0,
            inv.clone(),
            Reliability::Unreliable,
            TimerConfig::default(),
        );
        tx.handle(t0, Input::Request(inv.clone()));
        assert!(
            drain(&mut tx).0.is_empty(),
            "nothing sent yet, nothing to resend"
        );
        tx.handle(t0, Input::Respond(response(&inv, 180)));
        tx.handle(t0 + ms(500), Input::Request(inv));
        assert_eq!(drain(&mut tx).0, [180, 180]);
        assert_eq!(tx.poll_timeout(), None, "no timers in Proceeding");
    }

    #[test]
    fn two_hundred_resent_until_ack() {
        let (t0, mut tx) = started(Reliability::Unreliable, 200);
        assert_eq!(tx.state(), State::Accepted);
        for at in [500, 1_500, 3_500] {
            assert_eq!(tx.poll_timeout(), Some(t0 + ms(at)));
            tx.handle(t0 + ms(at), Input::Timeout);
            assert_eq!(drain(&mut tx).0, [200]);
        }
        tx.handle(t0 + ms(3_600), Input::Request(invite()));
        assert!(
            drain(&mut tx).0.is_empty(),
            "INVITE retransmission absorbed in Accepted"
        );
        tx.handle(t0 + ms(3_700), Input::AckFor2xx);
        assert_eq!(drain(&mut tx).1, [ServerEvent::Acked]);
        assert_eq!(
            tx.poll_timeout(),
            Some(t0 + ms(32_000)),
            "only timer L left"
        );
        tx.handle(t0 + ms(32_000), Input::Timeout);
        assert_eq!(drain(&mut tx).1, [ServerEvent::Terminated]);
    }

    #[test]
    fn no_ack_for_2xx_reports_at_timer_l() {
        let (t0, mut tx) = started(Reliability::Reliable, 200);
        assert_eq!(
            tx.poll_timeout(),
            Some(t0 + ms(32_000)),
            "no 2xx resend over TCP"
        );
        tx.handle(t0 + ms(32_000), Input::Timeout);
        assert_eq!(
            drain(&mut tx).1,
            [ServerEvent::NoAck, ServerEvent::Terminated]
        );
    }

    #[test]
    fn only_one_final_response() {
        let (t0, mut tx) = started(Reliability::Unreliable, 486);
        tx.handle(t0, Input::Respond(response(&invite(), 200)));
        assert!(drain(&mut tx).0.is_empty());
    }
}
