//! Sans-IO routing: which plan answers a call, and is it open right now.
//!
//! [`Router::route`] reads no clock and does no I/O: the call's numbers, trunk and `now` come in,
//! a [`RouteDecision`] comes out.
//!
//! # Precedence
//! 1. The Request-URI user (`callee`) is matched against every plan's numbers, prefixes and
//!    patterns (after [`normalize_number`] on both sides). The best match wins:
//!    **exact > prefix > pattern**; among prefixes the longest; among patterns the most specific
//!    (see [`super::pattern`]).
//! 2. For equally good callee matches, a rule with a `trunk` beats one without, then one with a
//!    matching `callers` pattern beats one without (a more specific caller pattern beats a less
//!    specific one).
//! 3. If nothing matched the Request-URI user, the same is tried with the To user (some trunks
//!    put the dialled number only there).
//! 4. Then a plan with `match: { default: true }` (with the same qualifier order).
//! 5. Nothing: [`RouteDecision::NoMatch`] (the call flow answers 404).
//!
//! Ties cannot happen: two plans making the same claim (same number, prefix, equivalent pattern
//! or default, with the same trunk and caller qualifiers) fail to load.
//!
//! The chosen plan's business hours are then evaluated at `now`: open gives
//! [`RouteDecision::Open`], closed gives [`RouteDecision::Closed`] with the `when_closed` action.

use std::cmp::Ordering;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::pattern::{normalize_number, Pattern};
use super::plan::{Action, Dialplan};

/// What the router needs to know about a call.
#[derive(Debug, Clone, Copy)]
pub struct CallFacts<'a> {
    /// The Request-URI user (the called number).
    pub callee: &'a str,
    /// The To header's user, tried when the Request-URI user matches nothing.
    pub to_user: Option<&'a str>,
    /// The From user (the caller's number), `anonymous` when withheld.
    pub caller: &'a str,
    /// The source trunk's name, when the call came from a known trunk.
    pub trunk: Option<&'a str>,
    /// The current time, for business hours.
    pub now: DateTime<Utc>,
}

/// The router's answer.
#[derive(Debug, Clone)]
pub enum RouteDecision {
    /// Put the agent on the line with this plan.
    Open(Arc<Dialplan>),
    /// The plan matched but is closed: run `action` (its `when_closed`).
    Closed {
        /// The plan that matched.
        plan: Arc<Dialplan>,
        /// What to do: the plan's `hours.when_closed`.
        action: Action,
    },
    /// No plan takes this call (answer 404).
    NoMatch,
}

impl RouteDecision {
    /// The matched plan, open or closed.
    pub fn plan(&self) -> Option<&Arc<Dialplan>> {
        match self {
            RouteDecision::Open(p) | RouteDecision::Closed { plan: p, .. } => Some(p),
            RouteDecision::NoMatch => None,
        }
    }
}

/// How a rule matches the called number.
#[derive(Debug, Clone)]
enum Callee {
    Exact(String),
    Prefix(String),
    Pattern(Pattern),
    Default,
}

/// One routing rule: a callee spec of one plan with the plan's qualifiers.
#[derive(Debug, Clone)]
struct Rule {
    plan: usize,
    callee: Callee,
    trunk: Option<String>,
    callers: Vec<Pattern>,
}

/// How good a match is; greater is better. Field order is the precedence order.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Rank<'r> {
    callee: CalleeRank<'r>,
    trunk: bool,
    caller: Option<Spec<'r>>,
}

/// Variant order is the precedence: exact > prefix > pattern > default.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum CalleeRank<'r> {
    Default,
    Pattern(Spec<'r>),
    Prefix(usize),
    Exact,
}

/// A pattern ordered by specificity (more specific = greater).
#[derive(Debug)]
struct Spec<'r>(&'r Pattern);

impl PartialEq for Spec<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Spec<'_> {}
impl PartialOrd for Spec<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Spec<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.specificity(other.0)
    }
}

/// Picks the plan for a call. Built from a loaded set; holds no I/O and reads no clock.
#[derive(Debug, Clone, Default)]
pub struct Router {
    plans: Vec<Arc<Dialplan>>,
    rules: Vec<Rule>,
}

impl Router {
    /// Build the rules of checked plans (as loaded by [`super::DialplanSet::load`]).
    pub fn new(plans: &[Arc<Dialplan>]) -> Router {
        let mut rules = Vec::new();
        for (i, p) in plans.iter().enumerate() {
            let m = &p.matching;
            let rule = |callee| Rule {
                plan: i,
                callee,
                trunk: m.trunk.clone(),
                callers: m.callers.clone(),
            };
            rules.extend(m.numbers.iter().map(|n| rule(Callee::Exact(n.clone()))));
            rules.extend(m.prefixes.iter().map(|n| rule(Callee::Prefix(n.clone()))));
            rules.extend(m.patterns.iter().map(|n| rule(Callee::Pattern(n.clone()))));
            if m.default {
                rules.push(rule(Callee::Default));
            }
        }
        Router {
            plans: plans.to_vec(),
            rules,
        }
    }

    /// Route a call (see the module docs for the precedence).
    pub fn route(&self, facts: &CallFacts<'_>) -> RouteDecision {
        let callee = normalize_number(facts.callee);
        let caller = normalize_number(facts.caller);
        let to_user = facts
            .to_user
            .map(normalize_number)
            .filter(|t| !t.is_empty() && *t != callee);
        let found = self
            .best(Some(&callee), &caller, facts.trunk)
            .or_else(|| {
                to_user
                    .as_deref()
                    .and_then(|t| self.best(Some(t), &caller, facts.trunk))
            })
            .or_else(|| self.best(None, &caller, facts.trunk));
        let Some(plan) = found.and_then(|i| self.plans.get(i)) else {
            return RouteDecision::NoMatch;
        };
        match &plan.hours {
            Some(h) if !h.is_open(facts.now) => RouteDecision::Closed {
                plan: Arc::clone(plan),
                action: h.when_closed.clone(),
            },
            _ => RouteDecision::Open(Arc::clone(plan)),
        }
    }

    /// The best rule's plan: with `Some(number)` among number rules, with `None` among defaults.
    fn best(&self, number: Option<&str>, caller: &str, trunk: Option<&str>) -> Option<usize> {
        let mut best: Option<(Rank<'_>, usize)> = None;
        for rule in &self.rules {
            let Some(rank) = self.rank(rule, number, caller, trunk) else {
                continue;
            };
            if best.as_ref().is_none_or(|(b, _)| rank > *b) {
                best = Some((rank, rule.plan));
            }
        }
        best.map(|(_, plan)| plan)
    }

    fn rank<'r>(
        &self,
        rule: &'r Rule,
        number: Option<&str>,
        caller: &str,
        trunk: Option<&str>,
    ) -> Option<Rank<'r>> {
        if rule.trunk.is_some() && rule.trunk.as_deref() != trunk {
            return None;
        }
        let caller_rank = if rule.callers.is_empty() {
            None
        } else {
            let best = rule
                .callers
                .iter()
                .filter(|p| p.matches(caller))
                .max_by(|a, b| a.specificity(b))?;
            Some(Spec(best))
        };
        let callee = match (&rule.callee, number) {
            (Callee::Default, None) => CalleeRank::Default,
            (Callee::Exact(n), Some(num)) if n == num => CalleeRank::Exact,
            (Callee::Prefix(p), Some(num)) if num.starts_with(p.as_str()) => {
                CalleeRank::Prefix(p.len())
            }
            (Callee::Pattern(p), Some(num)) if p.matches(num) => CalleeRank::Pattern(Spec(p)),
            _ => return None,
        };
        Some(Rank {
            callee,
            trunk: rule.trunk.is_some(),
            caller: caller_rank,
        })
    }
}
