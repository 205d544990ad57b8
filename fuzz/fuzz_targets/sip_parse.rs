//! SIP bytes → parser, TCP framing, routing, admission, and (for an INVITE) a whole UAS dialog
//! with its server transactions: the first message of the input (parts split at NUL bytes)
//! that is an INVITE starts the dialog, every later part is fed to it, 100 ms apart, with
//! timers fired as they fall due. Nothing here may panic.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use rsip::prelude::*;
use rsip::{Method, SipMessage};
use voxgate::sip::admission::{Admission, AdmissionConfig};
use voxgate::sip::dialog::{LocalAddr, UasSession};
use voxgate::sip::endpoint::{route, RouteOptions};
use voxgate::sip::message::{base, frame_len, parse_with, stamp_via, Limits};
use voxgate::sip::transaction::TimerConfig;
use voxgate::sip::transport::{Peer, Transport};

const SDP: &[u8] = b"v=0\r\no=voxgate 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

fuzz_target!(|data: &[u8]| {
    let _ = frame_len(data);
    let t0 = Instant::now();
    let src = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 5060);
    let peer = Peer {
        transport: Transport::Udp,
        addr: src,
        conn: None,
    };
    let mut admission = Admission::new(AdmissionConfig::default());
    let limits = Limits::default();
    let mut uas: Option<UasSession> = None;
    for (i, part) in data.split(|b| *b == 0).enumerate().take(32) {
        let now = t0 + Duration::from_millis(100 * i as u64);
        let Ok(msg) = parse_with(part, &limits) else {
            continue;
        };
        let msg = match msg {
            SipMessage::Request(mut req) => {
                stamp_via(&mut req, src);
                let ua = req.headers.iter().find_map(|h| match h {
                    rsip::Header::UserAgent(ua) => Some(ua.value().to_string()),
                    _ => None,
                });
                let _ = admission.check(now, src.ip(), &req.method, ua.as_deref());
                SipMessage::Request(req)
            }
            resp => resp,
        };
        let Ok(b) = base(&msg) else {
            continue;
        };
        let known = uas
            .as_ref()
            .map(|u| u.incoming().sip_call_id.clone())
            .unwrap_or_default();
        let _ = route(&msg, &b, |id| id == known, RouteOptions::default());
        match (&mut uas, msg) {
            (None, SipMessage::Request(req)) if req.method == Method::Invite => {
                let local = LocalAddr {
                    addr: "127.0.0.1:5060".parse().expect("constant address"),
                };
                if let Ok(mut u) = UasSession::new(now, req, peer, local, TimerConfig::default(), 7)
                {
                    u.ring(now);
                    if i % 2 == 0 {
                        u.answer(now, SDP.to_vec());
                    }
                    uas = Some(u);
                }
            }
            (Some(u), msg) => u.handle_message(now, msg),
            _ => {}
        }
        if let Some(u) = &mut uas {
            while let Some(at) = u.poll_timeout().filter(|t| *t <= now) {
                u.handle_timeout(at);
            }
            while u.poll_output().is_some() {}
        }
    }
    // Let every timer run out: the dialog must terminate cleanly.
    if let Some(u) = &mut uas {
        let mut n = 0;
        while let Some(at) = u.poll_timeout() {
            u.handle_timeout(at);
            while u.poll_output().is_some() {}
            n += 1;
            if n > 10_000 {
                panic!("timers never run out");
            }
        }
    }
});
