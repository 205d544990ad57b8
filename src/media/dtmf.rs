//! RFC 4733 telephone-event receiver: exactly one digit per key press. An event is identified
//! by its RTP timestamp (§2.5.1.2: all packets of one event share it), so the repeated start
//! packets and the usually triple end packets never yield a second digit, while the same key
//! pressed again (a new timestamp) does. The digit is reported on the FIRST packet seen of an
//! event — the caller's key press acts at once, without waiting ~100 ms for the end bit — so
//! lost start packets only delay it to whichever packet arrives first.
//! Left out: tones other than DTMF (events 16+ are counted and ignored), event duration use.

use std::time::Instant;

use super::rtp::RtpTimestamp;

/// One key press.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfDigit {
    /// `0`–`9`, `*`, `#`, `A`–`D`.
    pub digit: char,
    /// Duration in timestamp units as of the first packet seen.
    pub duration: u16,
}

/// The receiver state.
#[derive(Debug, Default)]
pub struct DtmfReceiver {
    /// Timestamps of recently reported events (a tiny ring: redundancy spans a few events).
    seen: [Option<u32>; 4],
    next: usize,
    ignored: u64,
}

fn digit_of(event: u8) -> Option<char> {
    Some(match event {
        0..=9 => char::from(b'0' + event),
        10 => '*',
        11 => '#',
        12..=15 => char::from(b'A' + (event - 12)),
        _ => return None,
    })
}

impl DtmfReceiver {
    /// A fresh receiver.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one telephone-event packet; returns a digit on the first packet of a new event.
    pub fn push(
        &mut self,
        _now: Instant,
        ts: RtpTimestamp,
        _marker: bool,
        payload: &[u8],
    ) -> Option<DtmfDigit> {
        let [event, _flags, d0, d1, ..] = *payload else {
            self.ignored += 1;
            return None;
        };
        let Some(digit) = digit_of(event) else {
            self.ignored += 1;
            return None;
        };
        if self.seen.contains(&Some(ts.0)) {
            return None;
        }
        self.seen[self.next] = Some(ts.0);
        self.next = (self.next + 1) % self.seen.len();
        Some(DtmfDigit {
            digit,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }

    /// Packets ignored (too short, not DTMF).
    pub fn ignored(&self) -> u64 {
        self.ignored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One telephone-event packet: (timestamp, event, end bit, duration).
    type Pkt = (u32, u8, bool, u16);

    fn run(stream: &[Pkt]) -> String {
        let t0 = Instant::now();
        let mut rx = DtmfReceiver::new();
        stream
            .iter()
            .enumerate()
            .filter_map(|(i, (ts, ev, end, dur))| {
                let flags = if *end { 0x80 } else { 0 } | 10;
                let d = dur.to_be_bytes();
                rx.push(t0, RtpTimestamp(*ts), i == 0, &[*ev, flags, d[0], d[1]])
            })
            .map(|d| d.digit)
            .collect()
    }

    #[test]
    fn event_streams() {
        let table: [(&str, Vec<Pkt>, &str); 6] = [
            (
                "normal with three end packets",
                vec![
                    (100, 1, false, 160),
                    (100, 1, false, 320),
                    (100, 1, true, 480),
                    (100, 1, true, 480),
                    (100, 1, true, 480),
                ],
                "1",
            ),
            (
                "start packets lost",
                vec![(100, 5, true, 800), (100, 5, true, 800)],
                "5",
            ),
            (
                "end packets lost",
                vec![(100, 11, false, 160), (100, 11, false, 320)],
                "#",
            ),
            (
                "same key twice",
                vec![
                    (100, 2, false, 160),
                    (100, 2, true, 400),
                    (900, 2, false, 160),
                    (900, 2, true, 400),
                ],
                "22",
            ),
            (
                "star and letters",
                vec![(1, 10, true, 1), (2, 12, true, 1), (3, 15, true, 1)],
                "*AD",
            ),
            (
                "non-DTMF events ignored",
                vec![(1, 32, true, 1), (2, 70, false, 1)],
                "",
            ),
        ];
        for (name, stream, want) in table {
            assert_eq!(run(&stream), want, "{name}");
        }
    }

    #[test]
    fn short_payloads_are_ignored() {
        let mut rx = DtmfReceiver::new();
        assert_eq!(
            rx.push(Instant::now(), RtpTimestamp(1), true, &[1, 2]),
            None
        );
        assert_eq!(rx.ignored(), 1);
    }
}
