//! Problems found while checking dialplans, and "did you mean" suggestions.
//!
//! Every problem prints as `file:line:col: message` (or `file: message` when it concerns the file
//! as a whole, e.g. it cannot be read). Messages name the offending key or value, say what is
//! allowed, and suggest the closest allowed word for typos. Suggestions use the optimal string
//! alignment distance (Levenshtein plus swapped neighbours, so `intructions` and `isntructions`
//! are both one edit from `instructions`), case-insensitively.

use std::fmt;
use std::path::PathBuf;

use super::yaml::Pos;

/// One problem in one dialplan file, displayed as `file:line:col: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file as it was given (a folder's files are joined to the folder path).
    pub file: PathBuf,
    /// 1-based line; 0 when the problem is about the whole file.
    pub line: u32,
    /// 1-based column in characters; 0 when the problem is about the whole file.
    pub col: u32,
    /// What is wrong, what is allowed, and a suggestion when there is one.
    pub message: String,
}

impl Problem {
    /// A problem at a position in a file.
    pub fn at(file: impl Into<PathBuf>, pos: Pos, message: impl Into<String>) -> Self {
        Problem {
            file: file.into(),
            line: pos.line,
            col: pos.col,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.col,
                self.message
            )
        }
    }
}

/// The outcome of checking a set of dialplan files: all problems, and what was read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Every problem found, ordered by file (in the order read) then position.
    pub problems: Vec<Problem>,
    /// Number of dialplans read (valid or not).
    pub plans: usize,
    /// Number of files read.
    pub files: usize,
}

impl CheckReport {
    /// True when no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// One line: `ok: 3 dialplans in 3 files`, or `2 problems in 3 files` when something is wrong.
    pub fn summary(&self) -> String {
        if self.is_ok() {
            format!(
                "ok: {} in {}",
                plural(self.plans, "dialplan"),
                plural(self.files, "file")
            )
        } else {
            format!(
                "{} in {}",
                plural(self.problems.len(), "problem"),
                plural(self.files, "file")
            )
        }
    }
}

impl fmt::Display for CheckReport {
    /// All problems, one per line, then the summary line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.problems {
            writeln!(f, "{p}")?;
        }
        write!(f, "{}", self.summary())
    }
}

/// Loading dialplans failed; holds every problem found (see [`CheckReport`]).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", one_line(.problems))]
pub struct LoadError {
    /// All problems, in the order reported by [`super::check_paths`].
    pub problems: Vec<Problem>,
}

/// The first problem, and how many more there are: one clear line for `voxgate serve`.
fn one_line(problems: &[Problem]) -> String {
    match problems {
        [] => "invalid dialplans".into(),
        [one] => one.to_string(),
        [first, rest @ ..] => format!(
            "{first} (and {} more {}; run `voxgate check` to list them)",
            rest.len(),
            if rest.len() == 1 {
                "problem"
            } else {
                "problems"
            }
        ),
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// The allowed word closest to `got`, if it is close enough to be a likely typo.
pub fn suggest<'a>(got: &str, allowed: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let got_l = got.to_lowercase();
    let limit = match got.chars().count() {
        0..=2 => 1,
        3..=5 => 2,
        _ => 3,
    };
    allowed
        .into_iter()
        .map(|a| (distance(&got_l, &a.to_lowercase()), a))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

/// `" — did you mean 'x'?"` or nothing.
pub fn did_you_mean<'a>(got: &str, allowed: impl IntoIterator<Item = &'a str>) -> String {
    suggest(got, allowed)
        .map(|s| format!(" — did you mean '{s}'?"))
        .unwrap_or_default()
}

/// Optimal string alignment distance between two strings, by characters.
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // d[i][j]: distance between a[..i] and b[..j]; three rows are enough for transpositions.
    let mut prev2 = vec![0usize; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0usize; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(prev2[j - 2] + 1);
            }
            cur[j] = d;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("intructions", "instructions"), 1);
        assert_eq!(distance("isntructions", "instructions"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggestions() {
        let keys = ["instructions", "greeting", "voice", "tools"];
        assert_eq!(suggest("intructions", keys), Some("instructions"));
        assert_eq!(suggest("Voice", keys), Some("voice"));
        assert_eq!(suggest("tool", keys), Some("tools"));
        assert_eq!(suggest("schedule", keys), None);
    }

    #[test]
    fn display_and_summary() {
        let p = Problem::at("a.yaml", Pos { line: 3, col: 5 }, "bad");
        assert_eq!(p.to_string(), "a.yaml:3:5: bad");
        let whole = Problem::at("a.yaml", Pos::default(), "cannot read");
        assert_eq!(whole.to_string(), "a.yaml: cannot read");
        let ok = CheckReport {
            problems: vec![],
            plans: 3,
            files: 3,
        };
        assert_eq!(ok.summary(), "ok: 3 dialplans in 3 files");
        let err = LoadError {
            problems: vec![p.clone(), whole],
        };
        assert_eq!(
            err.to_string(),
            "a.yaml:3:5: bad (and 1 more problem; run `voxgate check` to list them)"
        );
    }
}
