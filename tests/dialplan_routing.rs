//! Routing precedence and business hours, through files loaded like the daemon loads them.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Europe::Berlin;
use voxgate::dialplan::{CallFacts, DialplanSet, RouteDecision, Then};

/// A temporary folder of dialplans, removed on drop.
struct Plans(PathBuf);

impl Plans {
    fn new(tag: &str) -> Plans {
        let dir = std::env::temp_dir().join(format!("voxgate-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Plans(dir)
    }

    /// A minimal plan `name` with the given `match:` body and extra top-level YAML.
    fn add(&self, name: &str, matching: &str, extra: &str) -> &Self {
        let yaml = format!(
            "name: {name}\nmatch: {matching}\nagent: {{ instructions: \"Plan {name}.\" }}\n{extra}"
        );
        std::fs::write(self.0.join(format!("{name}.yaml")), yaml).expect("write plan");
        self
    }

    fn load(&self) -> DialplanSet {
        match DialplanSet::load(std::slice::from_ref(&self.0)) {
            Ok(set) => set,
            Err(e) => panic!(
                "fixture plans must load:\n{}",
                e.problems
                    .iter()
                    .map(|p| format!("{p}\n"))
                    .collect::<String>()
            ),
        }
    }
}

impl Drop for Plans {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("RFC 3339 time")
}

fn name(decision: &RouteDecision) -> &str {
    decision.plan().map_or("404", |p| p.name.as_str())
}

/// (callee, to_user, caller, trunk, expected plan)
type Row = (
    &'static str,
    Option<&'static str>,
    &'static str,
    Option<&'static str>,
    &'static str,
);

#[test]
fn precedence_table() {
    let plans = Plans::new("precedence");
    plans
        .add("exact", r#"{ numbers: ["100"] }"#, "")
        .add(
            "exact-vip",
            r#"{ numbers: ["100"], callers: ["49170.", "4917012X."] }"#,
            "",
        )
        .add(
            "exact-trunk",
            r#"{ numbers: ["100"], trunk: carrier-b }"#,
            "",
        )
        .add("prefix-short", r#"{ prefixes: ["1"] }"#, "")
        .add("prefix-long", r#"{ prefixes: ["10"] }"#, "")
        .add("pattern-general", r#"{ patterns: ["_2XX"] }"#, "")
        .add("pattern-specific", r#"{ patterns: ["20X"] }"#, "")
        .add("pattern-set", r#"{ patterns: ["2[0-1]X"] }"#, "")
        .add("to-only", r#"{ numbers: ["+1 555 0199"] }"#, "")
        .add("fallback", r#"{ default: true }"#, "")
        .add(
            "fallback-trunk",
            r#"{ default: true, trunk: carrier-b }"#,
            "",
        );
    let set = plans.load();
    let now = at("2026-06-01T12:00:00Z");
    // (callee, to_user, caller, trunk, expected plan)
    let table: &[Row] = &[
        ("100", None, "+49 30 1234", None, "exact"),
        ("sip:100@pbx.example.com", None, "4930", None, "exact"),
        ("100", None, "+49 170 1234567", None, "exact-vip"),
        ("100", None, "+49 170 1284567", None, "exact-vip"),
        ("100", None, "4930", Some("carrier-b"), "exact-trunk"),
        // A trunk qualifier ranks before a caller qualifier.
        (
            "100",
            None,
            "491701234567",
            Some("carrier-b"),
            "exact-trunk",
        ),
        ("100", None, "4930", Some("carrier-a"), "exact"),
        ("101", None, "4930", None, "prefix-long"),
        ("1000", None, "4930", None, "prefix-long"),
        ("110", None, "4930", None, "prefix-short"),
        ("205", None, "4930", None, "pattern-specific"),
        ("215", None, "4930", None, "pattern-set"),
        ("299", None, "4930", None, "pattern-general"),
        ("2999", None, "4930", None, "fallback"),
        (
            "anything",
            None,
            "4930",
            Some("carrier-b"),
            "fallback-trunk",
        ),
        // The Request-URI user wins; the To user is tried only when it matches nothing.
        ("100", Some("15550199"), "4930", None, "exact"),
        ("s", Some("tel:+1-555-0199"), "4930", None, "to-only"),
        ("999", Some("999"), "4930", None, "fallback"),
    ];
    for &(callee, to_user, caller, trunk, want) in table {
        let facts = CallFacts {
            callee,
            to_user,
            caller,
            trunk,
            now,
        };
        let got = set.route(&facts);
        assert!(matches!(got, RouteDecision::Open(_)), "{callee}: {got:?}");
        assert_eq!(
            name(&got),
            want,
            "callee {callee}, to {to_user:?}, caller {caller}, trunk {trunk:?}"
        );
    }
}

#[test]
fn no_default_means_no_match() {
    let plans = Plans::new("nomatch");
    plans.add("only", r#"{ numbers: ["100"] }"#, "");
    let set = plans.load();
    let facts = CallFacts {
        callee: "200",
        to_user: None,
        caller: "1",
        trunk: None,
        now: at("2026-06-01T12:00:00Z"),
    };
    assert!(matches!(set.route(&facts), RouteDecision::NoMatch));
    assert!(matches!(
        DialplanSet::empty().route(&facts),
        RouteDecision::NoMatch
    ));
}

/// Route a call to `100` at a local Berlin time.
fn route_local(set: &DialplanSet, date: (i32, u32, u32), hm: (u32, u32)) -> RouteDecision {
    let local = NaiveDate::from_ymd_opt(date.0, date.1, date.2)
        .and_then(|d| d.and_hms_opt(hm.0, hm.1, 0))
        .expect("valid date");
    let now = Berlin
        .from_local_datetime(&local)
        .earliest()
        .expect("local time exists")
        .with_timezone(&Utc);
    set.route(&CallFacts {
        callee: "100",
        to_user: None,
        caller: "4930",
        trunk: None,
        now,
    })
}

const HOURS: &str = r#"hours:
  timezone: Europe/Berlin
  open: { daily: "08:00-18:00" }
  when_closed: { then: hangup }
"#;

#[test]
fn opening_hours_hold_across_both_dst_changes() {
    let plans = Plans::new("dst");
    plans.add("berlin", r#"{ numbers: ["100"] }"#, HOURS);
    let set = plans.load();
    // 2026-03-29: clocks go forward (CET → CEST); 2026-10-25: back (CEST → CET). Both Sundays.
    for day in [(2026, 3, 29), (2026, 10, 25), (2026, 3, 28), (2026, 10, 24)] {
        for (hm, open) in [
            ((7, 59), false),
            ((8, 0), true),
            ((17, 59), true),
            ((18, 0), false),
        ] {
            let got = route_local(&set, day, hm);
            assert_eq!(
                matches!(got, RouteDecision::Open(_)),
                open,
                "{day:?} {hm:?}: {got:?}"
            );
            if !open {
                let RouteDecision::Closed { plan, action } = got else {
                    panic!("closed")
                };
                assert_eq!(plan.name, "berlin");
                assert_eq!(action.then, Then::Hangup);
            }
        }
    }
    // The same local time is a different UTC instant on either side of the change.
    let open_at = |s: &str| {
        matches!(
            set.route(&CallFacts {
                callee: "100",
                to_user: None,
                caller: "1",
                trunk: None,
                now: at(s)
            }),
            RouteDecision::Open(_)
        )
    };
    assert!(open_at("2026-03-28T07:00:00Z"), "08:00 CET");
    assert!(!open_at("2026-03-29T05:59:00Z"), "07:59 CEST");
    assert!(open_at("2026-03-29T06:00:00Z"), "08:00 CEST");
    assert!(!open_at("2026-10-25T06:59:00Z"), "07:59 CET");
    assert!(open_at("2026-10-25T07:00:00Z"), "08:00 CET");
    assert!(!open_at("2026-10-25T17:00:00Z"), "18:00 CET");
}

#[test]
fn overnight_ranges_across_dst_and_holidays() {
    let plans = Plans::new("overnight");
    plans.add(
        "night",
        r#"{ numbers: ["100"] }"#,
        r#"hours:
  timezone: Europe/Berlin
  open: { sat: "22:00-03:00", mon-fri: "09:00-17:00" }
  holidays: ["2026-12-25", "2026-12-26"]
  when_closed: { then: ticket }
"#,
    );
    let set = plans.load();
    let is_open = |s: &str| {
        matches!(
            set.route(&CallFacts {
                callee: "100",
                to_user: None,
                caller: "1",
                trunk: None,
                now: at(s)
            }),
            RouteDecision::Open(_)
        )
    };
    // Autumn: Sunday 02:30 local happens twice (00:30Z in CEST, 01:30Z in CET); open both times.
    assert!(is_open("2026-10-24T21:30:00Z"), "Sat 23:30 CEST");
    assert!(is_open("2026-10-25T00:30:00Z"), "Sun 02:30 CEST");
    assert!(is_open("2026-10-25T01:30:00Z"), "Sun 02:30 CET");
    assert!(!is_open("2026-10-25T02:00:00Z"), "Sun 03:00 CET");
    // Spring: 02:00-03:00 does not exist; 01:59 CET is open, 03:00 CEST is closed.
    assert!(is_open("2026-03-29T00:59:00Z"), "Sun 01:59 CET");
    assert!(!is_open("2026-03-29T01:00:00Z"), "Sun 03:00 CEST");
    // Holidays close the day, and cancel the previous night running into them.
    assert!(is_open("2026-12-24T10:00:00Z"), "Thu 11:00");
    assert!(!is_open("2026-12-25T10:00:00Z"), "Christmas Fri 11:00");
    assert!(!is_open("2026-12-26T22:00:00Z"), "Sat 23:00 on a holiday");
    assert!(
        !is_open("2026-12-27T00:30:00Z"),
        "Sun 01:30 after a holiday night"
    );
    assert!(
        is_open("2027-01-02T22:00:00Z"),
        "an ordinary Saturday night"
    );
    assert!(is_open("2027-01-03T00:30:00Z"), "and its Sunday morning");
}

#[test]
fn calls_keep_their_plan_across_reloads() {
    let plans = Plans::new("arc");
    plans.add("first", r#"{ numbers: ["100"] }"#, "");
    let old = Arc::new(plans.load());
    let facts = CallFacts {
        callee: "100",
        to_user: None,
        caller: "1",
        trunk: None,
        now: at("2026-06-01T12:00:00Z"),
    };
    let RouteDecision::Open(in_call) = old.route(&facts) else {
        panic!("open")
    };
    std::fs::remove_file(plans.0.join("first.yaml")).expect("remove");
    plans.add("second", r#"{ numbers: ["100"] }"#, "");
    let new = plans.load();
    drop(old);
    assert_eq!(in_call.name, "first", "a call in progress keeps its plan");
    assert_eq!(name(&new.route(&facts)), "second");
}
