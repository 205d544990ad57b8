//! Loading dialplan files and folders: every problem in every file, then the checks across files
//! (plan names and routing claims must be unique).
//!
//! Reading is blocking `std::fs`: call it from the CLI, at start-up, or from `spawn_blocking`
//! (the reloader does).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::ctx::Ctx;
use super::parse::{parse_plan, ClaimKey};
use super::plan::Dialplan;
use super::problem::{CheckReport, LoadError, Problem};
use super::router::{CallFacts, RouteDecision, Router};
use super::yaml::{Document, Pos};

/// A consistent set of loaded dialplans and the router over them. Immutable: a reload builds a
/// new set, and calls in progress keep the `Arc<Dialplan>` they were routed with.
#[derive(Debug, Clone, Default)]
pub struct DialplanSet {
    plans: Vec<Arc<Dialplan>>,
    router: Router,
}

impl DialplanSet {
    /// Load files and folders (`*.yaml`, `*.yml`, not recursive). Fails with every problem found.
    pub fn load(paths: &[PathBuf]) -> Result<DialplanSet, LoadError> {
        let (plans, report) = load_all(paths);
        if report.is_ok() {
            Ok(DialplanSet::from_checked(plans))
        } else {
            Err(LoadError {
                problems: report.problems,
            })
        }
    }

    /// A set with no plans: every call is `NoMatch`.
    pub fn empty() -> DialplanSet {
        DialplanSet::default()
    }

    fn from_checked(plans: Vec<Dialplan>) -> DialplanSet {
        let plans: Vec<Arc<Dialplan>> = plans.into_iter().map(Arc::new).collect();
        let router = Router::new(&plans);
        DialplanSet { plans, router }
    }

    /// The plans, ordered by file path.
    pub fn plans(&self) -> &[Arc<Dialplan>] {
        &self.plans
    }

    /// The plan with this name.
    pub fn get(&self, name: &str) -> Option<&Arc<Dialplan>> {
        self.plans.iter().find(|p| p.name == name)
    }

    /// Number of plans.
    pub fn len(&self) -> usize {
        self.plans.len()
    }

    /// True when there are no plans.
    pub fn is_empty(&self) -> bool {
        self.plans.is_empty()
    }

    /// The router over these plans.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Shorthand for `self.router().route(facts)`.
    pub fn route(&self, facts: &CallFacts<'_>) -> RouteDecision {
        self.router.route(facts)
    }
}

/// Check files and folders of dialplans and report every problem at once (`voxgate check`).
pub fn check_paths(paths: &[PathBuf]) -> CheckReport {
    load_all(paths).1
}

/// Where a name or claim was first seen.
struct Seen {
    plan: String,
    /// What was claimed, as written (`pattern '_1XX'`); empty for names.
    what: String,
    file: PathBuf,
    pos: Pos,
}

impl Seen {
    fn place(&self) -> String {
        format!("{}:{}:{}", self.file.display(), self.pos.line, self.pos.col)
    }
}

fn load_all(paths: &[PathBuf]) -> (Vec<Dialplan>, CheckReport) {
    let mut report = CheckReport::default();
    let mut plans = Vec::new();
    let files = expand(paths, &mut report.problems);
    let mut names: HashMap<String, Seen> = HashMap::new();
    let mut claims: HashMap<ClaimKey, Seen> = HashMap::new();
    for file in &files {
        report.files += 1;
        let source = match std::fs::read_to_string(file) {
            Ok(s) => s,
            Err(e) => {
                report.problems.push(Problem::at(
                    file,
                    Pos::default(),
                    format!("cannot read: {e}"),
                ));
                continue;
            }
        };
        let doc = match Document::parse(&source) {
            Ok(doc) => doc,
            Err(e) => {
                report.problems.push(Problem::at(file, e.pos, e.message));
                continue;
            }
        };
        let Some(root) = &doc.root else {
            report.problems.push(Problem::at(
                file,
                Pos::START,
                "the file is empty; a dialplan needs at least name, match and agent",
            ));
            continue;
        };
        report.plans += 1;
        let dir = file.parent().unwrap_or(Path::new("."));
        let mut ctx = Ctx {
            file,
            dir,
            doc: &doc,
            problems: Vec::new(),
        };
        let parsed = parse_plan(&mut ctx, root);
        let plan_name = parsed.name.as_ref().map_or_else(
            || {
                file.file_stem()
                    .map_or(String::new(), |s| s.to_string_lossy().into_owned())
            },
            |(n, _)| n.clone(),
        );
        if let Some((name, pos)) = parsed.name {
            match names.get(&name) {
                Some(first) => ctx.err(
                    pos,
                    format!(
                        "plan name '{name}' is already used in {}; names must be unique",
                        first.place()
                    ),
                ),
                None => {
                    names.insert(
                        name.clone(),
                        Seen {
                            plan: name,
                            what: String::new(),
                            file: file.clone(),
                            pos,
                        },
                    );
                }
            }
        }
        for claim in parsed.claims {
            match claims.get(&claim.key) {
                Some(first) => {
                    let (what, was) = (&claim.what, &first.what);
                    let same = if was == what {
                        String::new()
                    } else {
                        format!(" as {was}")
                    };
                    let rule = if claim.key.is_default() {
                        "only one plan can be the default"
                    } else {
                        "each number may belong to one plan only"
                    };
                    ctx.err(
                        claim.pos,
                        format!(
                            "{what} is already claimed by plan '{}'{same} ({}); {rule}",
                            first.plan,
                            first.place()
                        ),
                    );
                }
                None => {
                    claims.insert(
                        claim.key,
                        Seen {
                            plan: plan_name.clone(),
                            what: claim.what,
                            file: file.clone(),
                            pos: claim.pos,
                        },
                    );
                }
            }
        }
        let mut problems = ctx.problems;
        problems.sort_by_key(|p| (p.line, p.col));
        match (problems.is_empty(), parsed.plan) {
            (true, Some(plan)) => plans.push(plan),
            _ => report.problems.extend(problems),
        }
    }
    (plans, report)
}

/// Files named, and `*.yaml`/`*.yml` in folders named (sorted, not recursive), without repeats.
fn expand(paths: &[PathBuf], problems: &mut Vec<Problem>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries = match std::fs::read_dir(path) {
                Ok(e) => e,
                Err(e) => {
                    problems.push(Problem::at(
                        path,
                        Pos::default(),
                        format!("cannot read folder: {e}"),
                    ));
                    continue;
                }
            };
            let mut found: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file() && is_yaml(p))
                .collect();
            found.sort();
            if found.is_empty() {
                problems.push(Problem::at(
                    path,
                    Pos::default(),
                    "no dialplans here (looked for *.yaml and *.yml)",
                ));
            }
            files.extend(found);
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            problems.push(Problem::at(path, Pos::default(), "no such file or folder"));
        }
    }
    let mut seen = std::collections::HashSet::new();
    files.retain(|f| seen.insert(std::path::absolute(f).unwrap_or_else(|_| f.clone())));
    files
}

fn is_yaml(p: &Path) -> bool {
    let hidden = p
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'));
    !hidden && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
}
