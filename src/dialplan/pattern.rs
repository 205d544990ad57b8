//! Phone number normalisation and Asterisk-style number patterns.
//!
//! # Normalisation
//! [`normalize_number`] is applied the same way to numbers written in a dialplan and to the numbers
//! of a call, so `+49 30 1234-567`, `tel:+49301234567` and `sip:+49301234567@trunk;user=phone` all
//! become `49301234567`:
//! - a leading `sip:`, `sips:` or `tel:` is removed (any case), and so is everything from the first
//!   `@` or `;`;
//! - `+`, spaces, `-`, `.`, `(` and `)` are removed;
//! - letters are lower-cased (a Request-URI user may be a name such as `support`).
//!
//! # Patterns
//! A pattern matches the whole normalised number, one character at a time:
//!
//! | pattern | matches |
//! | --- | --- |
//! | `0`–`9`, `*`, `#` | that character |
//! | `X` | any digit 0–9 |
//! | `Z` | any digit 1–9 |
//! | `N` | any digit 2–9 |
//! | `[1-5]`, `[137]`, `[1-35-7]` | one digit from the set (ranges and single digits) |
//! | `.` | one or more further characters (only at the end) |
//! | `!` | zero or more further characters (only at the end) |
//!
//! As in Asterisk a pattern may start with `_`; it is optional here. `X`, `Z`, `N` are
//! case-insensitive. `+`, spaces and `-` outside brackets are removed as in numbers, so
//! `+49 30 XXXX` is `4930XXXX`.
//!
//! When several patterns match one number, the more specific one wins: comparing position by
//! position, the first position where they differ decides, and fewer possible characters there is
//! more specific (`5` beats `[5-6]` beats `N` beats `X` beats `.` beats `!`; ending beats `!`).
//! Different sets of equal size are ordered by their digits, so the order is total and routing
//! never depends on file order.

use std::cmp::Ordering;

/// Normalise a number or SIP user for comparison (see the module docs).
pub fn normalize_number(raw: &str) -> String {
    let s = strip_scheme(raw.trim());
    s.chars()
        .filter(|c| !matches!(c, '+' | ' ' | '-' | '.' | '(' | ')' | '\t'))
        .flat_map(char::to_lowercase)
        .collect()
}

fn strip_scheme(s: &str) -> &str {
    let lower = s.to_ascii_lowercase();
    let rest = ["sips:", "sip:", "tel:"]
        .iter()
        .find(|p| lower.starts_with(*p))
        .map_or(s, |p| &s[p.len()..]);
    let end = rest.find(['@', ';']).unwrap_or(rest.len());
    &rest[..end]
}

/// One element of a pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Elem {
    /// One character from a set: bits 0–9 are the digits, bit 10 is `*`, bit 11 is `#`.
    One(u16),
    /// `.`: one or more characters.
    OneOrMore,
    /// `!`: zero or more characters.
    ZeroOrMore,
}

impl Elem {
    /// Rank for specificity: lower is more specific.
    fn rank(self) -> (u32, u16) {
        match self {
            Elem::One(set) => (set.count_ones(), set),
            Elem::OneOrMore => (100, 0),
            Elem::ZeroOrMore => (101, 0),
        }
    }
}

fn bit(c: char) -> Option<u16> {
    match c {
        '0'..='9' => Some(1 << (c as u16 - '0' as u16)),
        '*' => Some(1 << 10),
        '#' => Some(1 << 11),
        _ => None,
    }
}

/// A compiled Asterisk-style number pattern (see the module docs for the syntax).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pattern {
    elems: Vec<Elem>,
    /// The pattern as written, for messages.
    text: String,
}

/// Why a pattern could not be read; the message says what is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    /// What is wrong, for the dialplan author.
    pub message: String,
    /// The offending part of the pattern, to point at it.
    pub near: String,
}

impl Pattern {
    /// Compile a pattern.
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        let err = |message: String, near: &str| PatternError {
            message,
            near: near.to_string(),
        };
        let body = strip_scheme(text.trim());
        let body = body.strip_prefix('_').unwrap_or(body);
        let chars: Vec<char> = body.chars().collect();
        let mut elems = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let elem = match c.to_ascii_uppercase() {
                '+' | ' ' | '-' | '(' | ')' => {
                    i += 1;
                    continue;
                }
                'X' => Elem::One(0x3ff),
                'Z' => Elem::One(0x3fe),
                'N' => Elem::One(0x3fc),
                '.' | '!' => {
                    if i + 1 != chars.len() {
                        return Err(err(
                            format!("'{c}' must be the last character of a pattern"),
                            &c.to_string(),
                        ));
                    }
                    if c == '.' {
                        Elem::OneOrMore
                    } else {
                        Elem::ZeroOrMore
                    }
                }
                '[' => {
                    let Some(close) = chars[i..].iter().position(|&c| c == ']') else {
                        return Err(err("'[' without a closing ']'".into(), "["));
                    };
                    let inner: String = chars[i + 1..i + close].iter().collect();
                    let set = parse_set(&inner).ok_or_else(|| {
                        err(
                            format!(
                                "'[{inner}]' is not a digit set; write digits and ranges \
                                 like [1-5] or [137]"
                            ),
                            &format!("[{inner}]"),
                        )
                    })?;
                    i += close;
                    Elem::One(set)
                }
                _ => match bit(c) {
                    Some(b) => Elem::One(b),
                    None => {
                        return Err(err(
                            format!(
                                "'{c}' is not allowed in a pattern; use digits, *, #, X (any \
                                 digit), Z (1-9), N (2-9), [1-5], and . or ! at the end"
                            ),
                            &c.to_string(),
                        ))
                    }
                },
            };
            elems.push(elem);
            i += 1;
        }
        if elems.is_empty() {
            return Err(err("empty pattern".into(), text));
        }
        Ok(Pattern {
            elems,
            text: text.to_string(),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True if the whole normalised `number` matches.
    pub fn matches(&self, number: &str) -> bool {
        let chars: Vec<char> = number.chars().collect();
        for (i, e) in self.elems.iter().enumerate() {
            match e {
                Elem::OneOrMore => return chars.len() > i,
                Elem::ZeroOrMore => return true,
                Elem::One(set) => match chars.get(i).copied().and_then(bit) {
                    Some(b) if set & b != 0 => {}
                    _ => return false,
                },
            }
        }
        chars.len() == self.elems.len()
    }

    /// A canonical spelling: equal for patterns that match the same numbers (`N`, `[2-9]`).
    pub fn canonical(&self) -> String {
        self.elems
            .iter()
            .map(|e| match e {
                Elem::One(set) => format!("{set:03x}"),
                Elem::OneOrMore => ".".into(),
                Elem::ZeroOrMore => "!".into(),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// True if both patterns match exactly the same numbers (`N` and `[2-9]`, `_1X` and `1X`).
    pub fn same_as(&self, other: &Pattern) -> bool {
        self.elems == other.elems
    }

    /// Compare specificity: `Greater` means `self` is more specific than `other`.
    pub fn specificity(&self, other: &Pattern) -> Ordering {
        for i in 0..self.elems.len().max(other.elems.len()) {
            // A pattern that has ended is as specific as it gets.
            let a = self.elems.get(i).map_or((0, 0), |e| e.rank());
            let b = other.elems.get(i).map_or((0, 0), |e| e.rank());
            match a.cmp(&b) {
                Ordering::Equal => {}
                // Lower rank = more specific = greater.
                o => return o.reverse(),
            }
        }
        Ordering::Equal
    }
}

/// `1-5`, `137`, `1-35-7` → a digit set.
fn parse_set(inner: &str) -> Option<u16> {
    let chars: Vec<char> = inner.chars().collect();
    let mut set = 0u16;
    let mut i = 0;
    while i < chars.len() {
        let lo = chars[i].to_digit(10)?;
        if chars.get(i + 1) == Some(&'-') {
            let hi = chars.get(i + 2)?.to_digit(10)?;
            if hi < lo {
                return None;
            }
            for d in lo..=hi {
                set |= 1 << d;
            }
            i += 3;
        } else {
            set |= 1 << lo;
            i += 1;
        }
    }
    (set != 0).then_some(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pattern {
        Pattern::parse(s).expect("valid pattern")
    }

    #[test]
    fn normalises_consistently() {
        for raw in [
            "+49 30 1234-567",
            "tel:+49301234567",
            "sip:+49301234567@trunk.example;user=phone",
            "SIP:49301234567",
            "(49) 30.1234567",
        ] {
            assert_eq!(normalize_number(raw), "49301234567", "{raw}");
        }
        assert_eq!(normalize_number("Support"), "support");
    }

    #[test]
    fn matching_table() {
        let cases = [
            ("_1XX", "100", true),
            ("1XX", "1000", false),
            ("NXX", "100", false),
            ("NXX", "200", true),
            ("Z0", "00", false),
            ("[1-35]00", "300", true),
            ("[1-35]00", "400", false),
            ("49.", "49", false),
            ("49.", "4930", true),
            ("49!", "49", true),
            ("+49 30 XXXX", "49301234", true),
            ("*X#", "*5#", true),
        ];
        for (pat, num, want) in cases {
            assert_eq!(p(pat).matches(num), want, "{pat} vs {num}");
        }
    }

    #[test]
    fn rejects_bad_patterns() {
        for (bad, near) in [
            ("1.2", "."),
            ("1[a]", "[a]"),
            ("1[2", "["),
            ("1Q", "Q"),
            ("_", "_"),
        ] {
            let e = Pattern::parse(bad).expect_err(bad);
            assert_eq!(e.near, near, "{bad}: {}", e.message);
        }
    }

    #[test]
    fn specificity_is_total_and_sensible() {
        use Ordering::*;
        assert_eq!(p("10X").specificity(&p("1XX")), Greater);
        assert_eq!(p("1[0-1]X").specificity(&p("1NX")), Greater);
        assert_eq!(p("1X.").specificity(&p("1.")), Greater);
        assert_eq!(p("12").specificity(&p("12!")), Greater);
        assert_eq!(p("[2-9]X").specificity(&p("NX")), Equal);
        assert!(p("[2-9]X").same_as(&p("_nx")));
        assert_eq!(p("[1-2]").specificity(&p("[3-4]")), Greater);
    }
}
