//! The validation context: typed reads from the YAML node tree that record a [`Problem`] instead
//! of stopping, so one pass finds every problem in a file.
//!
//! Each reader returns `None` after recording the problem; callers carry on with the rest of the
//! file. Messages name the key by its dotted path (`agent.turn_detection`), say what is allowed,
//! and suggest the nearest allowed word.

use std::path::Path;
use std::time::Duration;

use super::problem::{did_you_mean, suggest, Problem};
use super::values::parse_duration;
use super::yaml::{Document, Kind, Node, Pos};

/// Reads one file's node tree and collects its problems.
pub(crate) struct Ctx<'a> {
    /// The file as given, for [`Problem::file`].
    pub file: &'a Path,
    /// The file's folder, where relative prompt paths start.
    pub dir: &'a Path,
    /// The parsed file, for positions inside scalars.
    pub doc: &'a Document<'a>,
    /// Problems found so far.
    pub problems: Vec<Problem>,
}

/// The entries of a mapping whose keys have been checked against the allowed keys.
pub(crate) struct Fields<'n> {
    /// Where the mapping is introduced (its key), for "missing key" problems.
    pub at: Pos,
    /// Allowed entries in file order: key, key position, value.
    entries: Vec<(String, Pos, &'n Node)>,
    /// Allowed keys suggested for misspelt ones: not reported again as missing.
    suggested: Vec<&'static str>,
}

impl<'n> Fields<'n> {
    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, _, v)| *v)
    }

    /// The position of `key`, or of the mapping when absent.
    pub fn key_pos(&self, key: &str) -> Pos {
        self.entries
            .iter()
            .find(|(k, _, _)| k == key)
            .map_or(self.at, |(_, p, _)| *p)
    }
}

/// `agent` + `voice` → `agent.voice`; the top level has an empty path.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl<'a> Ctx<'a> {
    /// Record a problem at `pos`.
    pub fn err(&mut self, pos: Pos, message: impl Into<String>) {
        self.problems.push(Problem::at(self.file, pos, message));
    }

    /// The position of `needle` within `node`'s source text.
    pub fn pos_in(&self, node: &Node, needle: &str) -> Pos {
        self.doc.pos_within(node, needle)
    }

    /// A mapping with only `allowed` keys; unknown and repeated keys are reported (and skipped).
    /// `at` is where the mapping is introduced; `path` names it in messages.
    pub fn map<'n>(
        &mut self,
        node: &'n Node,
        at: Pos,
        path: &str,
        allowed: &[&'static str],
    ) -> Option<Fields<'n>> {
        let Kind::Map(entries) = &node.kind else {
            let name = if path.is_empty() { "a dialplan" } else { path };
            self.err(
                node.pos,
                format!(
                    "{name} must be a mapping of keys ({}), got {}",
                    allowed.join(", "),
                    node.kind_name()
                ),
            );
            return None;
        };
        let mut fields = Fields {
            at,
            entries: Vec::new(),
            suggested: Vec::new(),
        };
        for (k, v) in entries {
            let Some(key) = k.scalar() else {
                self.err(k.pos, "a key must be a single word");
                continue;
            };
            if !allowed.contains(&key) {
                let hint = did_you_mean(key, allowed.iter().copied());
                if let Some(s) = suggest(key, allowed.iter().copied()) {
                    fields.suggested.push(s);
                }
                let inside = if path.is_empty() {
                    String::new()
                } else {
                    format!(" in {path}")
                };
                self.err(
                    k.pos,
                    format!(
                        "unknown key '{key}'{inside}{hint} (allowed: {})",
                        allowed.join(", ")
                    ),
                );
                continue;
            }
            if let Some(first) = fields.entries.iter().find(|(f, _, _)| f == key) {
                let line = first.1.line;
                self.err(
                    k.pos,
                    format!(
                        "key '{}' appears twice (first on line {line})",
                        join(path, key)
                    ),
                );
                continue;
            }
            fields.entries.push((key.to_string(), k.pos, v));
        }
        Some(fields)
    }

    /// A mapping with free-form keys (DTMF keys, webhook names, days): entries in file order as
    /// (key, key node, value); repeated keys are reported and skipped.
    pub fn entries<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        example: &str,
    ) -> Vec<(String, &'n Node, &'n Node)> {
        let Kind::Map(entries) = &node.kind else {
            self.err(
                node.pos,
                format!(
                    "'{path}' must be a mapping like {example}, got {}",
                    node.kind_name()
                ),
            );
            return Vec::new();
        };
        let mut out: Vec<(String, &Node, &Node)> = Vec::new();
        for (k, v) in entries {
            let Some(key) = k.scalar() else {
                self.err(k.pos, format!("a key in '{path}' must be a single value"));
                continue;
            };
            if let Some((_, first, _)) = out.iter().find(|(f, _, _)| f == key) {
                let line = first.pos.line;
                self.err(
                    k.pos,
                    format!("key '{key}' appears twice in '{path}' (first on line {line})"),
                );
                continue;
            }
            out.push((key.to_string(), k, v));
        }
        out
    }

    /// Report `key` missing from `fields`, with a hint on what to write.
    pub fn missing(&mut self, fields: &Fields<'_>, path: &str, key: &str, hint: &str) {
        if fields.suggested.contains(&key) {
            return; // already reported as "unknown key ... did you mean '{key}'?"
        }
        let name = if path.is_empty() {
            "the dialplan".to_string()
        } else {
            format!("'{path}'")
        };
        self.err(fields.at, format!("{name} is missing '{key}' ({hint})"));
    }

    /// A non-empty scalar, as written.
    pub fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match node.scalar() {
            Some(_) if node.is_null() => {
                self.err(node.pos, format!("'{path}' is empty; give it a value"));
                None
            }
            Some(s) => Some(s.to_string()),
            None => {
                self.err(
                    node.pos,
                    format!("'{path}' must be a single value, got {}", node.kind_name()),
                );
                None
            }
        }
    }

    /// One of `allowed` words; a typo gets a suggestion.
    pub fn word(
        &mut self,
        node: &Node,
        path: &str,
        allowed: &[&'static str],
    ) -> Option<&'static str> {
        let s = self.string(node, path)?;
        if let Some(w) = allowed.iter().find(|w| w.eq_ignore_ascii_case(s.trim())) {
            return Some(w);
        }
        let hint = did_you_mean(&s, allowed.iter().copied());
        self.err(
            node.pos,
            format!(
                "'{path}' must be one of {} (got '{s}'){hint}",
                allowed.join(", ")
            ),
        );
        None
    }

    /// `true` or `false` (YAML 1.1 spellings like `yes` are refused: they surprise people).
    pub fn boolean(&mut self, node: &Node, path: &str) -> Option<bool> {
        match node.scalar() {
            Some("true" | "True" | "TRUE") => Some(true),
            Some("false" | "False" | "FALSE") => Some(false),
            _ => {
                let got = node.scalar().unwrap_or("");
                self.err(
                    node.pos,
                    format!("'{path}' must be true or false (got '{got}')"),
                );
                None
            }
        }
    }

    /// A whole number in `range`.
    pub fn number(
        &mut self,
        node: &Node,
        path: &str,
        range: std::ops::RangeInclusive<u32>,
    ) -> Option<u32> {
        let s = self.string(node, path)?;
        match s.trim().parse::<u32>() {
            Ok(n) if range.contains(&n) => Some(n),
            _ => {
                self.err(
                    node.pos,
                    format!(
                        "'{path}' must be a whole number from {} to {} (got '{s}')",
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
        }
    }

    /// A duration like `30s` within `min..=max`.
    pub fn duration(
        &mut self,
        node: &Node,
        path: &str,
        min: Duration,
        max: Duration,
    ) -> Option<Duration> {
        let s = self.string(node, path)?;
        match parse_duration(&s) {
            Ok(d) if d >= min && d <= max => Some(d),
            Ok(_) => {
                let (lo, hi) = (
                    super::values::format_duration(min),
                    super::values::format_duration(max),
                );
                self.err(
                    node.pos,
                    format!("'{path}' must be between {lo} and {hi} (got '{s}')"),
                );
                None
            }
            Err(e) => {
                self.err(node.pos, format!("'{path}': {e}"));
                None
            }
        }
    }

    /// A list; `example` shows the expected shape in the message.
    pub fn list<'n>(&mut self, node: &'n Node, path: &str, example: &str) -> Option<&'n [Node]> {
        match &node.kind {
            Kind::Seq(items) => Some(items),
            _ => {
                self.err(
                    node.pos,
                    format!(
                        "'{path}' must be a list like {example}, got {}",
                        node.kind_name()
                    ),
                );
                None
            }
        }
    }

    /// A list of non-empty strings, each with its node.
    pub fn strings<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        example: &str,
    ) -> Vec<(String, &'n Node)> {
        let Some(items) = self.list(node, path, example) else {
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|item| self.string(item, path).map(|s| (s, item)))
            .collect()
    }
}
