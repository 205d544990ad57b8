//! Small value checks shared by the loader: durations, SIP URIs, URLs, names, voices.
//!
//! Each returns `Err(message)` with a message meant for a dialplan author: what was written, what
//! is allowed, and an example.

use std::time::Duration;

/// Voices the Realtime models offer (2026-11). Update here when new ones appear.
pub const VOICES: [&str; 10] = [
    "alloy", "ash", "ballad", "cedar", "coral", "echo", "marin", "sage", "shimmer", "verse",
];

/// `15m`, `30s`, `1h`, `500ms`, `1h30m`, `1m 30s` → a duration.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let help = "write a number with a unit: 500ms, 30s, 15m or 1h (combined like 1m30s)";
    let t = s.trim();
    if t.is_empty() {
        return Err(format!("a duration is missing; {help}"));
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{t}' needs a unit, like {t}s or {t}m"));
    }
    let mut total = Duration::ZERO;
    let mut rest = t;
    while !rest.is_empty() {
        rest = rest.trim_start();
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let unit_len = rest[digits..]
            .bytes()
            .take_while(u8::is_ascii_alphabetic)
            .count();
        let (num, unit) = (&rest[..digits], &rest[digits..digits + unit_len]);
        let Ok(n) = num.parse::<u64>() else {
            return Err(format!("'{t}' is not a duration; {help}"));
        };
        let part = match unit {
            "ms" => Duration::from_millis(n),
            "s" | "sec" => Duration::from_secs(n),
            "m" | "min" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            _ => return Err(format!("'{t}' is not a duration; {help}")),
        };
        total = total.saturating_add(part);
        rest = &rest[digits + unit_len..];
    }
    Ok(total)
}

/// A duration the way dialplans write it (`15m`, `30s`, `1m30s`, `500ms`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    let mut out = String::new();
    for (n, u) in [(h, "h"), (m, "m"), (s, "s")] {
        if n > 0 {
            out.push_str(&format!("{n}{u}"));
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

/// `sip:user@host[:port][;params]` or `sips:…`; the host is required.
pub fn check_sip_uri(s: &str) -> Result<(), String> {
    let example = "write it like 'sip:support-queue@pbx.example.com'";
    let lower = s.to_ascii_lowercase();
    let Some(rest) = lower
        .strip_prefix("sips:")
        .or_else(|| lower.strip_prefix("sip:"))
    else {
        let digits: String = s
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == '+')
            .collect();
        let looks_like_number = !digits.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')'));
        let hint = if looks_like_number {
            format!("for a phone number write 'sip:{digits}@<your PBX or trunk>'")
        } else {
            example.to_string()
        };
        return Err(format!(
            "transfer target '{s}' is not a SIP URI (it must start with sip: or sips:); {hint}"
        ));
    };
    let hostport = rest.split(';').next().unwrap_or("");
    let host = hostport.rsplit('@').next().unwrap_or("");
    let host = host.split(':').next().unwrap_or("");
    let ok_chars = rest
        .chars()
        .all(|c| !c.is_whitespace() && !matches!(c, '<' | '>' | '"'));
    if host.is_empty() || !ok_chars {
        return Err(format!(
            "transfer target '{s}' is not a valid SIP URI (no host, or spaces); {example}"
        ));
    }
    Ok(())
}

/// `http://` or `https://` URL with a host.
pub fn check_url(s: &str) -> Result<(), String> {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') && !s.contains(char::is_whitespace) => {
            Ok(())
        }
        _ => Err(format!(
            "'{s}' is not a web address; write it like 'https://orders.example.com/api/lookup'"
        )),
    }
}

/// Plan and webhook names: letters, digits, `-`, `_`; 1–64 characters.
pub fn check_name(s: &str, what: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} '{s}' may only use letters, digits, '-' and '_' (1 to 64 characters)"
        ))
    }
}

/// Language tags like `en`, `de`, `de-DE`, `pt-BR`.
pub fn check_language(s: &str) -> Result<(), String> {
    let mut parts = s.split('-');
    let primary = parts.next().unwrap_or("");
    let ok = (2..=3).contains(&primary.len())
        && primary.chars().all(|c| c.is_ascii_lowercase())
        && parts
            .all(|p| (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "language '{s}' is not a language tag; write it like 'en', 'de' or 'de-DE'"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = [
            ("30s", 30_000),
            ("15m", 900_000),
            ("1h", 3_600_000),
            ("500ms", 500),
            ("1m30s", 90_000),
            ("1m 30s", 90_000),
        ];
        for (s, ms) in ok {
            assert_eq!(parse_duration(s), Ok(Duration::from_millis(ms)), "{s}");
        }
        for bad in ["30", "", "15 minutes", "1.5m", "m"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(parse_duration("30")
            .unwrap_err()
            .starts_with("'30' needs a unit, like 30s"));
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
    }

    #[test]
    fn sip_uris() {
        for ok in [
            "sip:queue@pbx.example.com",
            "sips:q@h:5061;transport=tls",
            "sip:pbx.example.com",
        ] {
            assert_eq!(check_sip_uri(ok), Ok(()), "{ok}");
        }
        let e = check_sip_uri("+49 30 1234").unwrap_err();
        assert!(e.contains("'sip:+49301234@<your PBX or trunk>'"), "{e}");
        assert!(check_sip_uri("sip:").is_err());
        assert!(check_sip_uri("sip:a b@c").is_err());
        assert!(check_sip_uri("queue@pbx").is_err());
    }

    #[test]
    fn other_values() {
        assert!(check_url("https://x.example/api").is_ok());
        assert!(check_url("ftp://x").is_err());
        assert!(check_name("acme-support_2", "plan name").is_ok());
        assert!(check_name("acme support", "plan name").is_err());
        assert!(check_language("de-DE").is_ok());
        assert!(check_language("German").is_err());
    }
}
