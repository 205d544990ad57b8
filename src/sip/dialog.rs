//! The UAS side of one call (RFC 3261 §12, §13.3, §15): the INVITE server transaction, the
//! dialog it creates, and every transaction inside that dialog (ACK, CANCEL, BYE both ways,
//! re-INVITE, OPTIONS/INFO/NOTIFY). Sans-IO, in the shape of every voxgate machine: `handle`
//! an input at `now`, then drain [`UasSession::poll_output`] until `None`; wake at
//! [`UasSession::poll_timeout`]. Headers are read here, so the call layer only sees
//! [`IncomingCall`] and [`SessionEvent`]s.
//!
//! Transfer (RFC 3515): [`UasSession::refer`] sends REFER with `Refer-To`, `Referred-By` and
//! the call layer's context headers; the answer and the NOTIFY `message/sipfrag` progress come
//! back as [`SessionEvent::ReferAnswered`] and [`SessionEvent::TransferProgress`].
//!
//! Left out: early media (183), PRACK/100rel, session timers (RFC 4028), UPDATE, forking,
//! DNS-based target resolution — our requests go to where the caller's requests came from.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rsip::prelude::*;
use rsip::{Header, Method, Request, Response, SipMessage};

use super::message::{add_header, base, response, set_body, ALLOW, PRODUCT};
use super::transaction::{
    self, ClientEvent, ClientNonInvite, Reliability, ServerEvent, ServerInvite, ServerNonInvite,
    TimerConfig,
};
use super::transport::{Peer, Transport};

/// What the call layer learns about a new INVITE.
#[derive(Debug, Clone)]
pub struct IncomingCall {
    /// The SIP Call-ID header value.
    pub sip_call_id: String,
    /// The caller: From URI user (or the whole URI if it has no user part).
    pub caller: String,
    /// The called number: Request-URI user.
    pub callee: String,
    /// The SDP offer (empty if the INVITE had none).
    pub offer: Vec<u8>,
    /// Where it came from.
    pub peer: Peer,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndCause {
    /// The caller sent BYE.
    RemoteBye,
    /// We sent BYE (and it was answered, or timed out).
    LocalBye,
    /// The caller cancelled before we answered.
    Cancelled,
    /// We rejected the INVITE with this status.
    Rejected(u16),
    /// Our 2xx was never acknowledged (timer L): we sent BYE.
    NoAck,
}

/// Something the call layer must react to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// The ACK for our 200 arrived: media may flow both ways.
    Confirmed,
    /// A re-INVITE carries a new offer (empty: offerless re-INVITE); answer with
    /// [`UasSession::answer_reoffer`] or [`UasSession::reject_reoffer`].
    Reoffer(Vec<u8>),
    /// SIP INFO with a body (e.g. `application/dtmf-relay`).
    Info {
        /// Content-Type of the body.
        content_type: String,
        /// The body.
        body: Vec<u8>,
    },
    /// The final answer to our REFER (408 when none came): 202 means the PBX will try.
    ReferAnswered(u16),
    /// A NOTIFY of the transfer's progress: the status code of its `message/sipfrag` body.
    /// 1xx: trying; 2xx: the caller reached the target; 3xx–6xx: the transfer failed.
    TransferProgress(u16),
    /// The session is over; transactions may still linger to absorb retransmissions.
    Ended(EndCause),
}

/// Outputs of the session.
#[derive(Debug)]
pub enum Output {
    /// Send this message to this peer (boxed: messages are large, events small).
    Send(Box<SipMessage>, Peer),
    /// Tell the call layer.
    Event(SessionEvent),
}

/// Our own address, for Via and Contact.
#[derive(Debug, Clone, Copy)]
pub struct LocalAddr {
    /// Address advertised in Via/Contact.
    pub addr: SocketAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// INVITE received, no final response yet.
    Early,
    /// 200 sent, waiting for ACK.
    Answered,
    /// ACK received.
    Confirmed,
    /// BYE sent or received, or rejected.
    Ended,
}

/// The UAS session of one call. See the module doc for the call contract.
pub struct UasSession {
    state: State,
    incoming: IncomingCall,
    invite: Request,
    invite_tsx: ServerInvite,
    /// The latest re-INVITE and its transaction (kept until terminated, to match its ACK).
    reinvite: Option<(Request, ServerInvite)>,
    /// A re-INVITE's offer awaits the call layer's answer.
    reoffer_pending: bool,
    /// Finished re-INVITE transactions still absorbing retransmissions.
    old_invites: Vec<ServerInvite>,
    /// In-dialog non-INVITE server transactions: branch, transaction, where replies go.
    servers: Vec<(String, ServerNonInvite, Peer)>,
    clients: Vec<ClientNonInvite>,
    local_tag: String,
    remote_tag: String,
    /// Highest CSeq seen from the caller (RFC 3261 §12.2.2: lower ones get 500).
    remote_cseq: u32,
    /// Our CSeq counter for requests we send.
    local_cseq: u32,
    /// The caller's Contact URI: Request-URI of our in-dialog requests.
    remote_target: String,
    /// Record-Route values of the INVITE, in order (our requests carry them as Route).
    route_set: Vec<String>,
    /// From header value of the INVITE (becomes To of our requests).
    remote_uri: String,
    /// To header value of the INVITE, plus our tag (becomes From of our requests).
    local_uri: String,
    local: LocalAddr,
    reliability: Reliability,
    timers: TimerConfig,
    rng: SmallRng,
    out: VecDeque<Output>,
    ended: Option<EndCause>,
    /// Branch of our REFER's client transaction, while it runs.
    refer_branch: Option<String>,
}

fn reliability(t: Transport) -> Reliability {
    match t {
        Transport::Udp => Reliability::Unreliable,
        Transport::Tcp => Reliability::Reliable,
    }
}

fn header_value(req: &Request, pick: fn(&Header) -> Option<String>) -> Option<String> {
    req.headers.iter().find_map(pick)
}

/// The URI inside a name-addr (`"x" <sip:a@b>;tag=1` → `sip:a@b`) or an addr-spec.
fn uri_of(value: &str) -> String {
    if let (Some(s), Some(e)) = (value.find('<'), value.find('>')) {
        if s < e {
            return value[s + 1..e].to_string();
        }
    }
    value.split(';').next().unwrap_or(value).trim().to_string()
}

/// The user part of a SIP URI, or the URI itself.
fn user_of(uri: &str) -> String {
    let rest = uri
        .trim_start_matches("sips:")
        .trim_start_matches("sip:")
        .trim_start_matches("tel:");
    match rest.split_once('@') {
        Some((user, _)) => user.split(';').next().unwrap_or(user).to_string(),
        None => rest.split(';').next().unwrap_or(rest).to_string(),
    }
}

impl UasSession {
    /// Starts the session for a new INVITE from `peer` and emits 100 Trying.
    /// `seed` feeds tags and branches (seed it in tests).
    pub fn new(
        now: Instant,
        invite: Request,
        peer: Peer,
        local: LocalAddr,
        timers: TimerConfig,
        seed: u64,
    ) -> Result<UasSession, String> {
        let b = base(&SipMessage::Request(invite.clone()))?;
        let mut rng = SmallRng::seed_from_u64(seed);
        let local_tag = format!("vg{:016x}", rng.random::<u64>());
        let from_value = invite
            .from_header()
            .map_err(|e| e.to_string())?
            .value()
            .to_string();
        let to_value = invite
            .to_header()
            .map_err(|e| e.to_string())?
            .value()
            .to_string();
        let contact = header_value(&invite, |h| match h {
            Header::Contact(c) => Some(c.value().to_string()),
            _ => None,
        });
        let route_set = invite
            .headers
            .iter()
            .filter_map(|h| match h {
                Header::RecordRoute(r) => Some(r.value().to_string()),
                _ => None,
            })
            .collect();
        let callee = user_of(&invite.uri.to_string());
        let caller = user_of(&uri_of(&from_value));
        let remote_target = contact
            .map(|c| uri_of(&c))
            .unwrap_or_else(|| uri_of(&from_value));
        let rel = reliability(peer.transport);
        let mut invite_tsx = ServerInvite::new(now, invite.clone(), rel, timers);
        invite_tsx.handle(
            now,
            transaction::server_invite::Input::Respond(response(&invite, 100, None)),
        );
        let incoming = IncomingCall {
            sip_call_id: b.call_id.clone(),
            caller,
            callee,
            offer: invite.body.clone(),
            peer,
        };
        let mut s = UasSession {
            state: State::Early,
            incoming,
            local_uri: format!("{to_value};tag={local_tag}"),
            invite,
            invite_tsx,
            reinvite: None,
            reoffer_pending: false,
            old_invites: Vec::new(),
            servers: Vec::new(),
            clients: Vec::new(),
            local_tag,
            remote_tag: b.from_tag,
            remote_cseq: b.cseq,
            local_cseq: rng.random_range(1..10_000),
            remote_target,
            route_set,
            remote_uri: from_value,
            local,
            reliability: rel,
            timers,
            rng,
            out: VecDeque::new(),
            ended: None,
            refer_branch: None,
        };
        s.drain_invite(now);
        Ok(s)
    }

    /// What the call layer needs to know about the call.
    pub fn incoming(&self) -> &IncomingCall {
        &self.incoming
    }

    /// Why the session ended, once it has.
    pub fn ended(&self) -> Option<EndCause> {
        self.ended
    }

    /// True when the session has ended and no transaction still needs to absorb messages.
    pub fn is_terminated(&self) -> bool {
        self.ended.is_some()
            && self.invite_tsx.is_terminated()
            && self.reinvite.is_none()
            && self.old_invites.is_empty()
            && self.servers.is_empty()
            && self.clients.is_empty()
    }

    /// The next output to act on.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When to call [`UasSession::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut all = vec![self.invite_tsx.poll_timeout()];
        all.extend(self.reinvite.iter().map(|(_, t)| t.poll_timeout()));
        all.extend(self.old_invites.iter().map(|t| t.poll_timeout()));
        all.extend(self.servers.iter().map(|(_, t, _)| t.poll_timeout()));
        all.extend(self.clients.iter().map(|t| t.poll_timeout()));
        all.into_iter().flatten().min()
    }

    /// Sends 180 Ringing.
    pub fn ring(&mut self, now: Instant) {
        if self.state == State::Early {
            let resp = self.dialog_response(&self.invite.clone(), 180);
            self.respond_invite(now, resp);
        }
    }

    /// Answers the INVITE with 200 OK carrying `sdp`.
    pub fn answer(&mut self, now: Instant, sdp: Vec<u8>) {
        if self.state != State::Early {
            return;
        }
        let mut resp = self.dialog_response(&self.invite.clone(), 200);
        set_body(&mut resp, "application/sdp", sdp);
        self.state = State::Answered;
        self.respond_invite(now, resp);
    }

    /// Rejects the INVITE (e.g. 488, 503 with `retry_after` seconds).
    pub fn reject(&mut self, now: Instant, code: u16, retry_after: Option<u32>) {
        if self.state != State::Early {
            return;
        }
        let mut resp = response(&self.invite, code, Some(&self.local_tag.clone()));
        if let Some(secs) = retry_after {
            add_header(&mut resp.headers, "Retry-After", &secs.to_string());
        }
        if code == 488 {
            add_header(
                &mut resp.headers,
                "Warning",
                "304 voxgate \"Media type not available\"",
            );
        }
        self.state = State::Ended;
        self.respond_invite(now, resp);
        self.end(EndCause::Rejected(code));
    }

    /// Hangs up: BYE once answered; before that, a 480 final response.
    pub fn hangup(&mut self, now: Instant) {
        match self.state {
            State::Early => self.reject(now, 480, None),
            State::Answered | State::Confirmed => {
                self.state = State::Ended;
                self.send_request(now, Method::Bye);
                self.end(EndCause::LocalBye);
            }
            State::Ended => {}
        }
    }

    /// Asks the caller's side to call `target` instead (REFER, RFC 3515), with extra
    /// `headers` (name, value) carrying the call's context. Values are cleaned of line breaks
    /// and cut at 200 characters. Returns false when the call is not in a state to transfer.
    pub fn refer(&mut self, now: Instant, target: &str, headers: &[(String, String)]) -> bool {
        if !matches!(self.state, State::Answered | State::Confirmed) || self.refer_branch.is_some()
        {
            return false;
        }
        let mut extra = format!(
            "Refer-To: <{}>\r\nReferred-By: <{}>\r\nContact: {}\r\n",
            clean_value(target),
            uri_of(&self.local_uri),
            self.contact()
        );
        for (name, value) in headers {
            extra.push_str(&format!("{name}: {}\r\n", clean_value(value)));
        }
        self.refer_branch = self.send_request_with(now, Method::Refer, &extra);
        self.refer_branch.is_some()
    }

    /// Answers a pending re-INVITE with `sdp`.
    pub fn answer_reoffer(&mut self, now: Instant, sdp: Vec<u8>) {
        if !std::mem::take(&mut self.reoffer_pending) {
            return;
        }
        if let Some((req, mut tsx)) = self.reinvite.take() {
            let mut resp = self.dialog_response(&req, 200);
            set_body(&mut resp, "application/sdp", sdp);
            tsx.handle(now, transaction::server_invite::Input::Respond(resp));
            self.reinvite = Some((req, tsx));
            self.drain_reinvite();
        }
    }

    /// Rejects a pending re-INVITE (e.g. 488); the session continues unchanged.
    pub fn reject_reoffer(&mut self, now: Instant, code: u16) {
        if !std::mem::take(&mut self.reoffer_pending) {
            return;
        }
        if let Some((req, mut tsx)) = self.reinvite.take() {
            let resp = response(&req, code, None);
            tsx.handle(now, transaction::server_invite::Input::Respond(resp));
            self.reinvite = Some((req, tsx));
            self.drain_reinvite();
        }
    }

    /// Fires every transaction timer that is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        if due(self.invite_tsx.poll_timeout()) {
            self.invite_tsx
                .handle(now, transaction::server_invite::Input::Timeout);
            self.drain_invite(now);
        }
        if let Some((_, t)) = &mut self.reinvite {
            if due(t.poll_timeout()) {
                t.handle(now, transaction::server_invite::Input::Timeout);
                self.drain_reinvite();
            }
        }
        for t in &mut self.old_invites {
            if due(t.poll_timeout()) {
                t.handle(now, transaction::server_invite::Input::Timeout);
            }
        }
        self.drain_old_invites();
        for i in 0..self.servers.len() {
            if due(self.servers[i].1.poll_timeout()) {
                self.servers[i]
                    .1
                    .handle(now, transaction::server_non_invite::Input::Timeout);
            }
        }
        self.drain_servers();
        for i in 0..self.clients.len() {
            if due(self.clients[i].poll_timeout()) {
                self.clients[i].handle(now, transaction::client_non_invite::Input::Timeout);
            }
        }
        self.drain_clients();
    }

    /// Handles a message routed to this call (same Call-ID).
    pub fn handle_message(&mut self, now: Instant, msg: SipMessage) {
        match msg {
            SipMessage::Request(req) => self.handle_request(now, req),
            SipMessage::Response(resp) => self.handle_response(now, resp),
        }
    }

    fn handle_request(&mut self, now: Instant, req: Request) {
        let Ok(b) = base(&SipMessage::Request(req.clone())) else {
            return;
        };
        let branch = branch_of(&req);
        let invite_branch = branch_of(&self.invite);
        match req.method {
            Method::Invite if b.to_tag.is_none() || branch == invite_branch => {
                // A retransmission of the initial INVITE.
                self.invite_tsx
                    .handle(now, transaction::server_invite::Input::Request(req));
                self.drain_invite(now);
            }
            Method::Ack => self.handle_ack(now, req, &b, branch == invite_branch),
            Method::Cancel => self.handle_cancel(now, req, branch == invite_branch),
            _ => self.handle_in_dialog(now, req, &b, branch),
        }
    }

    fn handle_ack(
        &mut self,
        now: Instant,
        req: Request,
        b: &super::message::BaseHeaders,
        same: bool,
    ) {
        if same && self.state != State::Answered && self.state != State::Confirmed {
            // ACK for a non-2xx final: same branch as the INVITE (§17.1.1.3).
            self.invite_tsx
                .handle(now, transaction::server_invite::Input::Request(req));
            self.drain_invite(now);
            return;
        }
        if b.cseq == cseq_of(&self.invite) && self.state == State::Answered {
            self.state = State::Confirmed;
            self.invite_tsx
                .handle(now, transaction::server_invite::Input::AckFor2xx);
            self.drain_invite(now);
            self.out.push_back(Output::Event(SessionEvent::Confirmed));
        } else if let Some((r, t)) = &mut self.reinvite {
            if b.cseq == cseq_of(r) {
                t.handle(now, transaction::server_invite::Input::AckFor2xx);
                self.drain_reinvite();
            }
        }
    }

    fn handle_cancel(&mut self, now: Instant, req: Request, matches: bool) {
        if !matches {
            let resp = response(&req, 481, None);
            self.send(SipMessage::Response(resp));
            return;
        }
        let ok = response(&req, 200, Some(&self.local_tag.clone()));
        self.server_respond(now, req, ok);
        if self.state == State::Early {
            let resp = response(&self.invite, 487, Some(&self.local_tag.clone()));
            self.state = State::Ended;
            self.respond_invite(now, resp);
            self.end(EndCause::Cancelled);
        }
    }

    fn handle_in_dialog(
        &mut self,
        now: Instant,
        req: Request,
        b: &super::message::BaseHeaders,
        branch: Option<String>,
    ) {
        // A retransmission of a request we already have a transaction for.
        if let Some(br) = &branch {
            if let Some((_, t, _)) = self.servers.iter_mut().find(|(k, _, _)| k == br) {
                t.handle(now, transaction::server_non_invite::Input::Request(req));
                self.drain_servers();
                return;
            }
            if let Some((r, t)) = &mut self.reinvite {
                if branch_of(r).as_ref() == Some(br) {
                    t.handle(now, transaction::server_invite::Input::Request(req));
                    self.drain_reinvite();
                    return;
                }
            }
        }
        let ours =
            b.to_tag.as_deref() == Some(self.local_tag.as_str()) && b.from_tag == self.remote_tag;
        if !ours {
            let resp = response(&req, 481, None);
            let to = self.reply_peer(&req);
            self.out
                .push_back(Output::Send(Box::new(SipMessage::Response(resp)), to));
            return;
        }
        if b.cseq < self.remote_cseq || (b.cseq == self.remote_cseq && req.method != Method::Ack) {
            let resp = response(&req, 500, None);
            let to = self.reply_peer(&req);
            self.out
                .push_back(Output::Send(Box::new(SipMessage::Response(resp)), to));
            return;
        }
        self.remote_cseq = b.cseq;
        match req.method {
            Method::Bye => {
                let ok = response(&req, 200, None);
                self.server_respond(now, req, ok);
                if self.state == State::Early {
                    let resp = response(&self.invite, 487, Some(&self.local_tag.clone()));
                    self.respond_invite(now, resp);
                }
                self.state = State::Ended;
                self.end(EndCause::RemoteBye);
            }
            Method::Invite => {
                if self.reoffer_pending || self.state == State::Answered {
                    // §14.2: an offer while one is pending.
                    let resp = response(&req, 491, None);
                    let mut t = ServerInvite::new(now, req.clone(), self.reliability, self.timers);
                    t.handle(now, transaction::server_invite::Input::Respond(resp));
                    self.old_invites.push(t);
                    self.drain_old_invites();
                    return;
                }
                let mut t = ServerInvite::new(now, req.clone(), self.reliability, self.timers);
                t.handle(
                    now,
                    transaction::server_invite::Input::Respond(response(&req, 100, None)),
                );
                let offer = req.body.clone();
                if let Some((_, old)) = self.reinvite.take() {
                    self.old_invites.push(old);
                }
                self.reoffer_pending = true;
                self.reinvite = Some((req, t));
                self.drain_reinvite();
                self.out
                    .push_back(Output::Event(SessionEvent::Reoffer(offer)));
            }
            Method::Info => {
                let content_type = req
                    .headers
                    .iter()
                    .find_map(|h| match h {
                        Header::ContentType(c) => Some(c.value().to_string()),
                        _ => None,
                    })
                    .unwrap_or_default();
                let body = req.body.clone();
                let ok = response(&req, 200, None);
                self.server_respond(now, req, ok);
                if !body.is_empty() {
                    self.out
                        .push_back(Output::Event(SessionEvent::Info { content_type, body }));
                }
            }
            Method::Notify => {
                let progress = refer_progress(&req);
                let mut ok = response(&req, 200, None);
                add_header(&mut ok.headers, "Allow", ALLOW);
                self.server_respond(now, req, ok);
                if let Some(code) = progress {
                    self.out
                        .push_back(Output::Event(SessionEvent::TransferProgress(code)));
                }
            }
            Method::Options => {
                let mut ok = response(&req, 200, None);
                add_header(&mut ok.headers, "Allow", ALLOW);
                self.server_respond(now, req, ok);
            }
            _ => {
                let mut resp = response(&req, 405, None);
                add_header(&mut resp.headers, "Allow", ALLOW);
                self.server_respond(now, req, resp);
            }
        }
    }

    fn handle_response(&mut self, now: Instant, resp: Response) {
        let branch = resp
            .via_header()
            .ok()
            .and_then(|v| v.typed().ok())
            .and_then(|v| v.branch().map(|b| b.to_string()));
        for t in &mut self.clients {
            if Some(t.branch()) == branch.as_deref() {
                t.handle(
                    now,
                    transaction::client_non_invite::Input::Response(resp.clone()),
                );
            }
        }
        self.drain_clients();
    }

    /// A response inside the dialog: To carries our tag, Contact is ours.
    fn dialog_response(&self, req: &Request, code: u16) -> Response {
        let mut resp = response(req, code, Some(&self.local_tag));
        // §12.1.1: the 2xx/1xx that creates the dialog copies Record-Route.
        let mut headers: Vec<Header> = resp.headers.into();
        let at = headers.len().saturating_sub(2);
        for rr in req
            .headers
            .iter()
            .filter(|h| matches!(h, Header::RecordRoute(_)))
        {
            headers.insert(at, rr.clone());
        }
        resp.headers = headers.into();
        add_header(&mut resp.headers, "Contact", &self.contact());
        add_header(&mut resp.headers, "Allow", ALLOW);
        resp
    }

    fn contact(&self) -> String {
        let t = match self.incoming.peer.transport {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
        };
        format!("<sip:voxgate@{}{t}>", self.local.addr)
    }

    fn send_request(&mut self, now: Instant, method: Method) {
        self.send_request_with(now, method, "");
    }

    /// Sends an in-dialog request with `extra` header lines (each ending in CRLF); returns
    /// the client transaction's branch.
    fn send_request_with(&mut self, now: Instant, method: Method, extra: &str) -> Option<String> {
        self.local_cseq += 1;
        let branch = format!("z9hG4bK{:016x}", self.rng.random::<u64>());
        let transport = match self.incoming.peer.transport {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        };
        let mut text = format!(
            "{method} {} SIP/2.0\r\nVia: SIP/2.0/{transport} {};branch={branch};rport\r\n",
            self.remote_target, self.local.addr
        );
        for r in &self.route_set {
            text.push_str(&format!("Route: {r}\r\n"));
        }
        text.push_str(&format!(
            "Max-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} {method}\r\n{extra}User-Agent: {PRODUCT}\r\nContent-Length: 0\r\n\r\n",
            self.local_uri, self.remote_uri, self.incoming.sip_call_id, self.local_cseq
        ));
        let Ok(req) = Request::try_from(text.as_str()) else {
            tracing::warn!(
                "could not build {method} (remote target {})",
                self.remote_target
            );
            return None;
        };
        let t = ClientNonInvite::new(now, req, self.reliability, self.timers);
        self.clients.push(t);
        self.drain_clients();
        Some(branch)
    }

    fn respond_invite(&mut self, now: Instant, resp: Response) {
        self.invite_tsx
            .handle(now, transaction::server_invite::Input::Respond(resp));
        self.drain_invite(now);
    }

    fn server_respond(&mut self, now: Instant, req: Request, resp: Response) {
        let key = branch_of(&req).unwrap_or_default();
        let peer = self.reply_peer(&req);
        let mut t = ServerNonInvite::new(now, req, self.reliability, self.timers);
        t.handle(now, transaction::server_non_invite::Input::Respond(resp));
        self.servers.push((key, t, peer));
        self.drain_servers();
    }

    /// Where a response to `req` goes (RFC 3261 §18.2.2, RFC 3581): over UDP to the top Via's
    /// `received` address (stamped by the router with the packet's source) and its `rport` or
    /// sent-by port, so a BYE from another address of the trunk is answered there. Over TCP,
    /// the call's connection.
    fn reply_peer(&self, req: &Request) -> Peer {
        let peer = self.incoming.peer;
        if peer.transport != Transport::Udp {
            return peer;
        }
        let Some(via) = req.headers.iter().find_map(|h| match h {
            Header::Via(v) => Some(v.value().to_string()),
            _ => None,
        }) else {
            return peer;
        };
        let mut parts = via.split(';');
        let sent_by = parts
            .next()
            .and_then(|s| s.split_whitespace().nth(1))
            .unwrap_or_default();
        let (mut host, mut port) = match sent_by.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h.trim_matches(['[', ']']).to_string(),
                p.parse::<u16>().ok(),
            ),
            _ => (sent_by.trim_matches(['[', ']']).to_string(), None),
        };
        for p in parts {
            match p.trim().split_once('=') {
                Some((k, v)) if k.trim().eq_ignore_ascii_case("received") => {
                    host = v.trim().to_string()
                }
                Some((k, v)) if k.trim().eq_ignore_ascii_case("rport") => {
                    port = v.trim().parse().ok().or(port)
                }
                _ => {}
            }
        }
        match host.parse::<std::net::IpAddr>() {
            Ok(ip) => Peer {
                addr: SocketAddr::new(ip, port.unwrap_or(5060)),
                ..peer
            },
            Err(_) => peer,
        }
    }

    fn end(&mut self, cause: EndCause) {
        if self.ended.is_none() {
            self.ended = Some(cause);
            self.out
                .push_back(Output::Event(SessionEvent::Ended(cause)));
        }
    }

    fn send(&mut self, msg: SipMessage) {
        self.out
            .push_back(Output::Send(Box::new(msg), self.incoming.peer));
    }

    fn drain_invite(&mut self, now: Instant) {
        while let Some(o) = self.invite_tsx.poll_output() {
            match o {
                transaction::server_invite::Output::Send(r) => self.send(SipMessage::Response(r)),
                transaction::server_invite::Output::Event(ServerEvent::NoAck) => {
                    if self.state == State::Answered {
                        // §13.3.1.4: no ACK for our 2xx — end the dialog with BYE.
                        self.state = State::Ended;
                        self.send_request(now, Method::Bye);
                        self.end(EndCause::NoAck);
                    }
                }
                transaction::server_invite::Output::Event(_) => {}
            }
        }
    }

    fn drain_reinvite(&mut self) {
        let mut done = false;
        let to = match &self.reinvite {
            Some((req, _)) => self.reply_peer(req),
            None => self.incoming.peer,
        };
        if let Some((_, t)) = &mut self.reinvite {
            while let Some(o) = t.poll_output() {
                if let transaction::server_invite::Output::Send(r) = o {
                    self.out
                        .push_back(Output::Send(Box::new(SipMessage::Response(r)), to));
                }
            }
            done = t.is_terminated();
        }
        if done {
            self.reinvite = None;
        }
    }

    fn drain_old_invites(&mut self) {
        for t in &mut self.old_invites {
            while let Some(o) = t.poll_output() {
                if let transaction::server_invite::Output::Send(r) = o {
                    self.out.push_back(Output::Send(
                        Box::new(SipMessage::Response(r)),
                        self.incoming.peer,
                    ));
                }
            }
        }
        self.old_invites.retain(|t| !t.is_terminated());
    }

    fn drain_servers(&mut self) {
        for (_, t, to) in &mut self.servers {
            while let Some(o) = t.poll_output() {
                if let transaction::server_non_invite::Output::Send(r) = o {
                    self.out
                        .push_back(Output::Send(Box::new(SipMessage::Response(r)), *to));
                }
            }
        }
        self.servers.retain(|(_, t, _)| !t.is_terminated());
    }

    fn drain_clients(&mut self) {
        let peer = self.incoming.peer;
        for t in &mut self.clients {
            let is_refer = self.refer_branch.as_deref() == Some(t.branch());
            while let Some(o) = t.poll_output() {
                let code = match o {
                    transaction::client_non_invite::Output::Send(m) => {
                        self.out.push_back(Output::Send(Box::new(m), peer));
                        continue;
                    }
                    transaction::client_non_invite::Output::Event(ClientEvent::Final(r)) => {
                        u16::from(r.status_code)
                    }
                    transaction::client_non_invite::Output::Event(ClientEvent::Timeout) => 408,
                    transaction::client_non_invite::Output::Event(_) => continue,
                };
                if is_refer {
                    self.refer_branch = None;
                    self.out
                        .push_back(Output::Event(SessionEvent::ReferAnswered(code)));
                }
            }
        }
        self.clients.retain(|t| !t.is_terminated());
    }
}

/// A header value without line breaks or other control characters, at most 200 characters.
fn clean_value(v: &str) -> String {
    v.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect::<String>()
        .trim()
        .to_string()
}

/// The status code in a REFER NOTIFY's `message/sipfrag` body (`SIP/2.0 200 OK`).
fn refer_progress(req: &Request) -> Option<u16> {
    let event = req.headers.iter().find_map(|h| match h {
        Header::Event(e) => Some(e.value().to_string()),
        Header::Other(name, value) if name.eq_ignore_ascii_case("o") => Some(value.clone()),
        _ => None,
    })?;
    if !event.trim().to_ascii_lowercase().starts_with("refer") {
        return None;
    }
    let body = String::from_utf8_lossy(&req.body);
    let line = body.lines().next()?.trim();
    let mut parts = line.split_whitespace();
    if !parts.next()?.eq_ignore_ascii_case("SIP/2.0") {
        return None;
    }
    parts
        .next()?
        .parse::<u16>()
        .ok()
        .filter(|c| (100..700).contains(c))
}

fn branch_of(req: &Request) -> Option<String> {
    req.via_header()
        .ok()
        .and_then(|v| v.typed().ok())
        .and_then(|v| v.branch().map(|b| b.to_string()))
}

fn cseq_of(req: &Request) -> u32 {
    req.cseq_header()
        .ok()
        .and_then(|c| c.typed().ok())
        .map(|c| c.seq)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn req(text: &str) -> Request {
        Request::try_from(text).expect("request")
    }

    fn session(now: Instant) -> UasSession {
        let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n";
        let invite = req(&format!(
            "INVITE sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKinv;rport\r\n\
             From: <sip:caller@127.0.0.1>;tag=c1\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: refer-1\r\n\
             CSeq: 1 INVITE\r\nContact: <sip:caller@127.0.0.1:9>\r\nMax-Forwards: 70\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        ));
        let peer = Peer {
            transport: Transport::Udp,
            addr: "127.0.0.1:9".parse().expect("addr"),
            conn: None,
        };
        let local = LocalAddr {
            addr: "127.0.0.1:5060".parse().expect("addr"),
        };
        let mut s =
            UasSession::new(now, invite, peer, local, TimerConfig::default(), 7).expect("session");
        s.answer(now, b"v=0\r\n".to_vec());
        s.handle_message(
            now,
            SipMessage::Request(req(&format!(
                "ACK sip:voxgate@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKack\r\n\
                 From: <sip:caller@127.0.0.1>;tag=c1\r\nTo: <sip:100@127.0.0.1>;tag={}\r\nCall-ID: refer-1\r\n\
                 CSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
                s.local_tag
            ))),
        );
        drain(&mut s);
        s
    }

    fn drain(s: &mut UasSession) -> (Vec<SipMessage>, Vec<SessionEvent>) {
        let mut msgs = Vec::new();
        let mut events = Vec::new();
        while let Some(o) = s.poll_output() {
            match o {
                Output::Send(m, _) => msgs.push(*m),
                Output::Event(e) => events.push(e),
            }
        }
        (msgs, events)
    }

    fn notify(s: &UasSession, cseq: u32, frag: &str) -> SipMessage {
        SipMessage::Request(req(&format!(
            "NOTIFY sip:voxgate@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKn{cseq}\r\n\
             From: <sip:caller@127.0.0.1>;tag=c1\r\nTo: <sip:100@127.0.0.1>;tag={}\r\nCall-ID: refer-1\r\n\
             CSeq: {cseq} NOTIFY\r\nEvent: refer\r\nSubscription-State: active\r\nMax-Forwards: 70\r\n\
             Content-Type: message/sipfrag\r\nContent-Length: {}\r\n\r\n{frag}",
            s.local_tag,
            frag.len()
        )))
    }

    #[test]
    fn refer_carries_context_and_reports_answer_and_progress() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let headers = [("X-Ticket".to_string(), "T-1\r\nInjected: yes".to_string())];
        assert!(s.refer(t0, "sip:queue@pbx", &headers));
        assert!(
            !s.refer(t0, "sip:queue@pbx", &headers),
            "one REFER at a time"
        );
        let (msgs, _) = drain(&mut s);
        let [SipMessage::Request(refer)] = msgs.as_slice() else {
            panic!("one REFER: {msgs:?}")
        };
        let text = refer.to_string();
        assert!(
            text.starts_with("REFER sip:caller@127.0.0.1:9 SIP/2.0"),
            "{text}"
        );
        assert!(text.contains("Refer-To: <sip:queue@pbx>"), "{text}");
        assert!(text.contains("Referred-By: <sip:100@127.0.0.1>"), "{text}");
        assert!(
            text.contains("X-Ticket: T-1  Injected: yes"),
            "no header injection: {text}"
        );
        assert!(!text.contains("\r\nInjected:"), "{text}");
        // 202 Accepted.
        let accepted = format!(
            "SIP/2.0 202 Accepted\r\nVia: {}\r\nFrom: {}\r\nTo: <sip:caller@127.0.0.1>;tag=c1\r\nCall-ID: refer-1\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
            refer.via_header().expect("via").value(),
            refer.from_header().expect("from").value(),
            refer.cseq_header().expect("cseq").value(),
        );
        s.handle_message(
            t0,
            SipMessage::Response(Response::try_from(accepted.as_str()).expect("resp")),
        );
        assert_eq!(drain(&mut s).1, vec![SessionEvent::ReferAnswered(202)]);
        // Trying, then success; each NOTIFY gets a 200.
        s.handle_message(t0, notify(&s, 2, "SIP/2.0 100 Trying\r\n"));
        let (msgs, events) = drain(&mut s);
        assert_eq!(events, vec![SessionEvent::TransferProgress(100)]);
        assert!(msgs[0].to_string().starts_with("SIP/2.0 200 OK"));
        s.handle_message(t0, notify(&s, 3, "SIP/2.0 200 OK\r\n"));
        assert_eq!(drain(&mut s).1, vec![SessionEvent::TransferProgress(200)]);
    }

    #[test]
    fn a_bye_from_another_address_is_answered_there() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let bye = format!(
            "BYE sip:voxgate@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bKbye;rport=5071;received=10.0.0.8\r\n\
             From: <sip:caller@127.0.0.1>;tag=c1\r\nTo: <sip:100@127.0.0.1>;tag={}\r\nCall-ID: refer-1\r\n\
             CSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            s.local_tag
        );
        s.handle_message(t0, SipMessage::Request(req(&bye)));
        let mut sent = Vec::new();
        while let Some(o) = s.poll_output() {
            if let Output::Send(m, to) = o {
                sent.push((m.to_string(), to.addr));
            }
        }
        assert!(sent[0].0.starts_with("SIP/2.0 200"), "{sent:?}");
        assert_eq!(sent[0].1, "10.0.0.8:5071".parse().expect("addr"));
    }

    #[test]
    fn an_unanswered_refer_times_out_as_408() {
        let t0 = Instant::now();
        let mut s = session(t0);
        assert!(s.refer(t0, "sip:queue@pbx", &[]));
        drain(&mut s);
        let mut now = t0;
        let mut events = Vec::new();
        for _ in 0..100 {
            let Some(t) = s.poll_timeout() else { break };
            now = t.max(now);
            s.handle_timeout(now);
            events.extend(drain(&mut s).1);
            if !events.is_empty() {
                break;
            }
        }
        assert_eq!(events, vec![SessionEvent::ReferAnswered(408)]);
        assert!(
            now - t0 >= Duration::from_secs(32),
            "timer F: {:?}",
            now - t0
        );
    }
}
