//! Text from the model's WebSocket → Realtime server-event decoding (and client-event decoding,
//! used by the simulator); what decodes must re-encode and decode again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voxgate::model::protocol::{decode, decode_client, encode, encode_server};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(ev) = decode(text) {
        let again = encode_server(&ev, "evt_fuzz");
        let _ = decode(&again);
    }
    if let Ok(ev) = decode_client(text) {
        let _ = decode_client(&encode(&ev));
    }
});
