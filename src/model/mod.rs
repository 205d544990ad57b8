//! The speech-to-speech model: Realtime protocol, client and simulator (model bridge work).
