//! Arbitrary bytes as an SDP offer → RFC 3264 answer; an answer we produce must itself be
//! answerable (it is a valid SDP with the codec we chose).
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use voxgate::sip::sdp::{answer, Codec, LocalMedia};

fuzz_target!(|data: &[u8]| {
    let local = LocalMedia {
        addr: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
        port: 20000,
        codecs: vec![Codec::Pcmu, Codec::Pcma, Codec::Opus],
        ptime_ms: 20,
        session_id: 1,
        session_version: 1,
        username: "voxgate".into(),
    };
    if let Ok(a) = answer(data, &local) {
        let again = answer(&a.sdp, &local);
        assert!(
            again.is_ok(),
            "our own answer is not a valid offer: {again:?}"
        );
    }
});
