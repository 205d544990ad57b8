//! RFC 3261 §17.1.1 INVITE client transaction with RFC 6026's Accepted state. voxgate is a UAS
//! today and sends no INVITEs; this machine exists for outbound calls and call-backs, and
//! completes the §17 set. Timer A resends the INVITE (T1, doubling, uncapped) on unreliable
//! transports, timer B gives up after 64·T1; a non-2xx final is ACKed by the transaction
//! (§17.1.1.3) and timer D absorbs its retransmissions; 2xx responses go to the TU, which ACKs.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rsip::prelude::*;
use rsip::{Header, Headers};

use super::client_non_invite::ClientEvent;
use super::{Reliability, TimerConfig, Timers};

/// States of §17.1.1 figure 5, plus RFC 6026 Accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// INVITE sent, nothing received.
    Calling,
    /// A provisional arrived.
    Proceeding,
    /// A non-2xx final arrived and was ACKed.
    Completed,
    /// A 2xx arrived; further 2xx retransmissions are passed up until timer M.
    Accepted,
    /// Done.
    Terminated,
}

/// Inputs.
#[derive(Debug, Clone)]
pub enum Input {
    /// A response matched to this transaction.
    Response(rsip::Response),
    /// `poll_timeout` was reached.
    Timeout,
    /// The transport failed.
    TransportError,
}

/// Outputs.
#[derive(Debug, Clone)]
pub enum Output {
    /// Send this message (the INVITE, or the ACK for a non-2xx).
    Send(rsip::SipMessage),
    /// Tell the TU.
    Event(ClientEvent),
}

/// Timers of this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Timer {
    /// A: resend the INVITE; T1 doubling without cap (unreliable only).
    A = 0,
    /// B: give up; 64·T1.
    B = 1,
    /// D: absorb final retransmissions; > 32 s unreliable, 0 reliable.
    D = 2,
    /// M (RFC 6026): leave Accepted; 64·T1.
    M = 3,
}

/// RFC 3261 §17.1.1 client INVITE transaction; see the `transaction` module doc for the call
/// contract. `new` emits the INVITE at once.
pub struct ClientInvite {
    state: State,
    reliability: Reliability,
    cfg: TimerConfig,
    invite: rsip::Request,
    interval: Duration,
    ack: Option<rsip::Request>,
    timers: Timers<4>,
    out: VecDeque<Output>,
}

impl ClientInvite {
    /// Creates the transaction and queues the INVITE for sending.
    pub fn new(
        now: Instant,
        invite: rsip::Request,
        reliability: Reliability,
        cfg: TimerConfig,
    ) -> Self {
        let mut t = ClientInvite {
            state: State::Calling,
            reliability,
            cfg,
            invite: invite.clone(),
            interval: cfg.t1,
            ack: None,
            timers: Timers::new(),
            out: VecDeque::new(),
        };
        t.out
            .push_back(Output::Send(rsip::SipMessage::Request(invite)));
        t.timers.set(Timer::B as usize, now + cfg.t64());
        if reliability == Reliability::Unreliable {
            t.timers.set(Timer::A as usize, now + cfg.t1);
        }
        t
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
                if matches!(self.state, State::Calling | State::Proceeding) {
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
            State::Calling | State::Proceeding if code < 200 => {
                self.state = State::Proceeding;
                self.timers.clear(Timer::A as usize);
                self.out
                    .push_back(Output::Event(ClientEvent::Provisional(resp)));
            }
            State::Calling | State::Proceeding if code < 300 => {
                self.state = State::Accepted;
                self.timers.clear_all();
                self.timers.set(Timer::M as usize, now + self.cfg.t64());
                self.out.push_back(Output::Event(ClientEvent::Final(resp)));
            }
            State::Calling | State::Proceeding => {
                self.state = State::Completed;
                self.timers.clear_all();
                let ack = ack_for(&self.invite, &resp);
                self.out
                    .push_back(Output::Send(rsip::SipMessage::Request(ack.clone())));
                self.ack = Some(ack);
                self.out.push_back(Output::Event(ClientEvent::Final(resp)));
                let wait = match self.reliability {
                    Reliability::Unreliable => Duration::from_secs(32),
                    Reliability::Reliable => Duration::ZERO,
                };
                self.timers.set(Timer::D as usize, now + wait);
            }
            State::Completed if code >= 300 => {
                if let Some(ack) = &self.ack {
                    self.out
                        .push_back(Output::Send(rsip::SipMessage::Request(ack.clone())));
                }
            }
            State::Accepted if (200..300).contains(&code) => {
                self.out.push_back(Output::Event(ClientEvent::Final(resp)));
            }
            _ => {}
        }
    }

    fn on_timer(&mut self, now: Instant, t: usize) {
        match t {
            x if x == Timer::A as usize && self.state == State::Calling => {
                self.out
                    .push_back(Output::Send(rsip::SipMessage::Request(self.invite.clone())));
                self.interval *= 2;
                self.timers.set(Timer::A as usize, now + self.interval);
            }
            x if x == Timer::B as usize => {
                self.out.push_back(Output::Event(ClientEvent::Timeout));
                self.terminate();
            }
            x if x == Timer::D as usize || x == Timer::M as usize => self.terminate(),
            _ => {}
        }
    }

    fn terminate(&mut self) {
        self.timers.clear_all();
        self.state = State::Terminated;
        self.out.push_back(Output::Event(ClientEvent::Terminated));
    }
}

/// §17.1.1.3: the ACK for a non-2xx final — the INVITE's Request-URI, Call-ID, From, CSeq
/// number and top Via only, To from the response (with its tag), and the INVITE's Route set.
pub fn ack_for(invite: &rsip::Request, resp: &rsip::Response) -> rsip::Request {
    let mut headers = Headers::default();
    if let Some(via) = invite.headers.iter().find(|h| matches!(h, Header::Via(_))) {
        headers.push(via.clone());
    }
    for h in invite.headers.iter() {
        if matches!(h, Header::Route(_)) {
            headers.push(h.clone());
        }
    }
    headers.push(Header::MaxForwards(rsip::headers::MaxForwards::from(70)));
    for h in invite.headers.iter() {
        if matches!(h, Header::From(_) | Header::CallId(_)) {
            headers.push(h.clone());
        }
    }
    if let Ok(to) = resp.to_header() {
        headers.push(Header::To(to.clone()));
    }
    let seq = invite
        .cseq_header()
        .ok()
        .and_then(|c| c.typed().ok())
        .map(|c| c.seq)
        .unwrap_or(1);
    headers.push(Header::CSeq(
        rsip::typed::CSeq {
            seq,
            method: rsip::Method::Ack,
        }
        .into(),
    ));
    headers.push(Header::ContentLength(rsip::headers::ContentLength::from(0)));
    rsip::Request {
        method: rsip::Method::Ack,
        uri: invite.uri.clone(),
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transaction::fixtures::{invite, ms, response};

    fn drain(tx: &mut ClientInvite) -> (Vec<rsip::SipMessage>, Vec<ClientEvent>) {
        let (mut sent, mut events) = (Vec::new(), Vec::new());
        while let Some(o) = tx.poll_output() {
            match o {
                Output::Send(m) => sent.push(m),
                Output::Event(e) => events.push(e),
            }
        }
        (sent, events)
    }

    #[test]
    fn timer_a_doubles_uncapped_and_b_times_out() {
        let t0 = Instant::now();
        let mut tx = ClientInvite::new(
            t0,
            invite(),
            Reliability::Unreliable,
            TimerConfig::default(),
        );
        assert_eq!(drain(&mut tx).0.len(), 1);
        for at in [500, 1_500, 3_500, 7_500, 15_500, 31_500] {
            assert_eq!(tx.poll_timeout(), Some(t0 + ms(at)), "at {at}");
            tx.handle(t0 + ms(at), Input::Timeout);
            assert_eq!(drain(&mut tx).0.len(), 1, "at {at}");
        }
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(32_000)));
        tx.handle(t0 + ms(32_000), Input::Timeout);
        assert_eq!(
            drain(&mut tx).1,
            [ClientEvent::Timeout, ClientEvent::Terminated]
        );
    }

    #[test]
    fn non_2xx_is_acked_with_the_right_headers() {
        let t0 = Instant::now();
        let inv = invite();
        let mut tx = ClientInvite::new(
            t0,
            inv.clone(),
            Reliability::Unreliable,
            TimerConfig::default(),
        );
        drain(&mut tx);
        tx.handle(t0 + ms(100), Input::Response(response(&inv, 486)));
        let (sent, events) = drain(&mut tx);
        assert!(
            matches!(events.as_slice(), [ClientEvent::Final(r)] if r.status_code.code() == 486)
        );
        let text = sent[0].to_string();
        assert!(
            text.starts_with("ACK sip:100@127.0.0.1 SIP/2.0\r\n"),
            "{text}"
        );
        assert!(text.contains("CSeq: 1 ACK"), "{text}");
        assert!(text.contains("tag=t1"), "To tag from the response: {text}");
        assert_eq!(text.matches("Via:").count(), 1, "{text}");
        assert!(
            text.contains("branch=z9hG4bKinv1"),
            "same branch as the INVITE: {text}"
        );
        tx.handle(t0 + ms(200), Input::Response(response(&inv, 486)));
        assert_eq!(drain(&mut tx).0.len(), 1, "retransmitted 486 → ACK again");
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(32_100)), "timer D");
    }

    #[test]
    fn two_hundred_goes_to_accepted() {
        let t0 = Instant::now();
        let inv = invite();
        let mut tx = ClientInvite::new(
            t0,
            inv.clone(),
            Reliability::Reliable,
            TimerConfig::default(),
        );
        drain(&mut tx);
        tx.handle(t0 + ms(10), Input::Response(response(&inv, 180)));
        tx.handle(t0 + ms(20), Input::Response(response(&inv, 200)));
        tx.handle(t0 + ms(30), Input::Response(response(&inv, 200)));
        let (sent, events) = drain(&mut tx);
        assert!(sent.is_empty(), "the TU ACKs a 2xx, not the transaction");
        assert_eq!(events.len(), 3);
        assert_eq!(tx.state(), State::Accepted);
        tx.handle(t0 + ms(32_020), Input::Timeout);
        assert!(tx.is_terminated());
    }
}
