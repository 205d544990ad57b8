//! Media: RTP packets, jitter buffer, codecs, RFC 4733 DTMF, 20 ms playout and the RTP port pool.
//! Sans-IO cores; the sockets live in the call driver. Knows nothing of SIP or models.

pub mod codec;
pub mod dtmf;
pub mod jitter;
pub mod playout;
pub mod ports;
pub mod resample;
pub mod rtp;
pub mod vad;
