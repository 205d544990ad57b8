//! Routing of received messages, as a pure function (after quinn-proto's `Endpoint::handle`):
//! a parsed message plus "is this Call-ID one of our calls?" gives a [`Route`]. The socket task
//! acts on it; it makes no protocol decisions of its own.
//!
//! voxgate is a UAS: each call is one Call-ID, so routing by Call-ID reaches the task that owns
//! the dialog and its transactions (tags are checked there, 481 on mismatch). Out-of-dialog
//! requests we do not serve are answered statelessly here (RFC 3261 §8.2: 405 with Allow for
//! known methods, 501 for unknown ones, 481 for in-dialog requests of unknown dialogs).

use rsip::prelude::*;
use rsip::{Method, SipMessage};

use super::message::{add_header, response, set_body, BaseHeaders, ALLOW};

/// Seconds in `Retry-After` when unavailable (RFC 3261 §20.33): long enough for a dispatcher
/// to move on, short enough for a restarted node to be tried again soon.
const RETRY_AFTER: &str = "30";

/// What to do with one received message.
#[derive(Debug)]
pub enum Route {
    /// Hand it to the call that owns this Call-ID.
    Call(String),
    /// A new INVITE: admit it and start a call.
    NewInvite,
    /// Answer at once, statelessly, with this response.
    Reply(rsip::Response),
    /// Ignore it (e.g. a stray ACK or response), with the reason for a debug log.
    Drop(&'static str),
}

/// Options for stateless answers.
#[derive(Debug, Clone, Copy, Default)]
pub struct RouteOptions {
    /// When draining, new INVITEs and OPTIONS are answered 503 with Retry-After, so callers
    /// try another node and a dispatcher's OPTIONS probe marks this one down.
    pub unavailable: bool,
}

/// Routes one parsed message. `known(call_id)` tells whether a call task owns that Call-ID.
pub fn route(
    msg: &SipMessage,
    base: &BaseHeaders,
    known: impl Fn(&str) -> bool,
    opts: RouteOptions,
) -> Route {
    let req = match msg {
        SipMessage::Response(_) => {
            return if known(&base.call_id) {
                Route::Call(base.call_id.clone())
            } else {
                Route::Drop("response for no call of ours")
            };
        }
        SipMessage::Request(r) => r,
    };
    let tag = crate_tag(base);
    if !matches!(req.method, Method::Ack | Method::Cancel) {
        // RFC 3261 §8.2.2.3: we support no extensions, so any Require option is refused.
        let required: Vec<String> = req
            .headers
            .iter()
            .filter_map(|h| match h {
                rsip::Header::Require(r) => Some(r.value().to_string()),
                _ => None,
            })
            .flat_map(|v| {
                v.split(',')
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
                    .collect::<Vec<_>>()
            })
            .collect();
        if !required.is_empty() {
            let mut resp = response(req, 420, Some(&tag));
            add_header(&mut resp.headers, "Unsupported", &required.join(", "));
            return Route::Reply(resp);
        }
        // §8.2.3: a body we cannot read (only SDP is spoken here).
        if req.method == Method::Invite && !req.body.is_empty() {
            let ctype = req.headers.iter().find_map(|h| match h {
                rsip::Header::ContentType(c) => Some(c.value().to_ascii_lowercase()),
                _ => None,
            });
            if !ctype.is_some_and(|c| c.trim().starts_with("application/sdp")) {
                let mut resp = response(req, 415, Some(&tag));
                add_header(&mut resp.headers, "Accept", "application/sdp");
                return Route::Reply(resp);
            }
        }
    }
    if known(&base.call_id) {
        return Route::Call(base.call_id.clone());
    }
    match &req.method {
        Method::Invite if base.to_tag.is_none() && opts.unavailable => {
            let mut resp = response(req, 503, Some(&tag));
            add_header(&mut resp.headers, "Retry-After", RETRY_AFTER);
            Route::Reply(resp)
        }
        Method::Invite if base.to_tag.is_none() => Route::NewInvite,
        Method::Ack => Route::Drop("ACK outside any call"),
        Method::Options if base.to_tag.is_none() => {
            let code = if opts.unavailable { 503 } else { 200 };
            let mut resp = response(req, code, Some(&tag));
            add_header(&mut resp.headers, "Allow", ALLOW);
            add_header(&mut resp.headers, "Accept", "application/sdp");
            add_header(&mut resp.headers, "Supported", "replaces");
            if opts.unavailable {
                add_header(&mut resp.headers, "Retry-After", RETRY_AFTER);
            }
            set_body(&mut resp, "application/sdp", Vec::new());
            Route::Reply(resp)
        }
        // An in-dialog request for a dialog we do not have (RFC 3261 §12.2.2).
        Method::Invite
        | Method::Bye
        | Method::Cancel
        | Method::Info
        | Method::Update
        | Method::Refer
        | Method::Notify
        | Method::PRack
        | Method::Options => Route::Reply(response(req, 481, Some(&tag))),
        Method::Register | Method::Subscribe | Method::Publish | Method::Message => {
            let mut resp = response(req, 405, Some(&tag));
            add_header(&mut resp.headers, "Allow", ALLOW);
            Route::Reply(resp)
        }
    }
}

/// A stable To tag for stateless answers, so a retransmitted request gets the same response.
fn crate_tag(base: &BaseHeaders) -> String {
    // FNV-1a over Call-ID and From tag: deterministic, no RNG needed for a stateless reply.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in base.call_id.bytes().chain(base.from_tag.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("vg{h:x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{base, parse};

    fn req(method: &str, to_tag: &str) -> (SipMessage, BaseHeaders) {
        let raw = format!(
            "{method} sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n\
             From: <sip:a@b>;tag=f1\r\nTo: <sip:100@127.0.0.1>{to_tag}\r\nCall-ID: c1\r\n\
             CSeq: 1 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        let msg = parse(raw.as_bytes()).expect("valid");
        let b = base(&msg).expect("base");
        (msg, b)
    }

    fn code(r: Route) -> u16 {
        match r {
            Route::Reply(resp) => resp.status_code.code(),
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    #[test]
    fn routing_table() {
        let none = |_: &str| false;
        let all = |_: &str| true;
        let o = RouteOptions::default();
        let (m, b) = req("INVITE", "");
        assert!(matches!(route(&m, &b, none, o), Route::NewInvite));
        assert!(matches!(route(&m, &b, all, o), Route::Call(_)));
        let (m, b) = req("INVITE", ";tag=x");
        assert_eq!(code(route(&m, &b, none, o)), 481);
        let (m, b) = req("BYE", ";tag=x");
        assert_eq!(code(route(&m, &b, none, o)), 481);
        let (m, b) = req("CANCEL", "");
        assert_eq!(code(route(&m, &b, none, o)), 481);
        let (m, b) = req("OPTIONS", "");
        assert_eq!(code(route(&m, &b, none, o)), 200);
        assert_eq!(
            code(route(&m, &b, none, RouteOptions { unavailable: true })),
            503
        );
        let down = RouteOptions { unavailable: true };
        let (m, b) = req("INVITE", "");
        let Route::Reply(resp) = route(&m, &b, none, down) else {
            panic!("a new INVITE is refused while unavailable");
        };
        assert_eq!(resp.status_code.code(), 503);
        assert!(resp.to_string().contains("Retry-After: 30"), "{resp}");
        // In-dialog traffic of live calls still reaches them.
        assert!(matches!(route(&m, &b, all, down), Route::Call(_)));
        let (m, b) = req("BYE", ";tag=x");
        assert!(matches!(route(&m, &b, all, down), Route::Call(_)));
        let (m, b) = req("REGISTER", "");
        assert_eq!(code(route(&m, &b, none, o)), 405);
        let (m, b) = req("ACK", ";tag=x");
        assert!(matches!(route(&m, &b, none, o), Route::Drop(_)));
    }
}
