//! Every kind of dialplan problem, from a bad fixture file to the exact `file:line:col: message`.
//!
//! Each row is one fixture (a file, or a folder for problems across files) and every problem it
//! must produce, in order: checking reports them all at once, not just the first.

use std::path::{Path, PathBuf};

use voxgate::dialplan::{check_paths, DialplanSet};

const DIR: &str = "tests/dialplans/errors";

/// (fixture, expected problems as `[file suffix:]line:col: message`, relative to the fixture).
const CASES: &[(&str, &[&str])] = &[
    (
        "unknown_key.yaml",
        &["4:3: unknown key 'intructions' in agent — did you mean 'instructions'? (allowed: \
           instructions, greeting, voice, language, turn_detection, model, tools)"],
    ),
    (
        "unknown_timezone.yaml",
        &["4:13: unknown timezone 'Europe/Berln' — did you mean 'Europe/Berlin'? (use an IANA \
           name like Europe/Berlin or America/New_York)"],
    ),
    (
        "overlapping_hours.yaml",
        &[
            "7:11: opening hours overlap: 'wed' 17:00-20:00 overlaps 'mon-fri' 08:00-18:00 on \
             Wednesday; describe each time once",
            "9:11: opening hours overlap: 'sun' 01:00-05:00 overlaps 'sat' 22:00-02:00 on \
             Sunday; describe each time once",
        ],
    ),
    (
        "transfer_not_sip.yaml",
        &["7:7: transfer target '+49 30 1234567' is not a SIP URI (it must start with sip: or \
           sips:); for a phone number write 'sip:+49301234567@<your PBX or trunk>'"],
    ),
    (
        "undefined_tool.yaml",
        &[
            "5:26: tool 'lookup_ordr' is not defined — did you mean 'lookup_order'? (built-in \
             tools: create_ticket, transfer_to_human, end_call; webhooks in this plan: \
             lookup_order)",
            "5:49: tool 'send_fax' is not defined (built-in tools: create_ticket, \
             transfer_to_human, end_call; webhooks in this plan: lookup_order)",
        ],
    ),
    (
        "duplicate_claims",
        &[
            "b.yaml:3:13: number 'tel:+15550100' is already claimed by plan 'first' as number \
             '+1 555 0100' (tests/dialplans/errors/duplicate_claims/a.yaml:3:13); each number \
             may belong to one plan only",
            "b.yaml:4:14: pattern '1[0-9]X' is already claimed by plan 'first' as pattern '_1XX' \
             (tests/dialplans/errors/duplicate_claims/a.yaml:4:14); each number may belong to \
             one plan only",
            "b.yaml:5:12: the default (default: true) is already claimed by plan 'first' \
             (tests/dialplans/errors/duplicate_claims/a.yaml:5:12); only one plan can be the \
             default",
        ],
    ),
    (
        "duplicate_names",
        &["b.yaml:1:7: plan name 'support' is already used in \
           tests/dialplans/errors/duplicate_names/a.yaml:1:7; names must be unique"],
    ),
    (
        "syntax_error.yaml",
        &["3:1: YAML syntax error: while parsing a flow mapping, did not find expected ',' or '}'"],
    ),
    (
        "many_problems.yaml",
        &[
            "1:7: plan name 'many problems' may only use letters, digits, '-' and '_' (1 to 64 \
             characters)",
            "3:20: number '206' is listed twice in this plan",
            "4:18: pattern '_1X.5': '.' must be the last character of a pattern",
            "4:25: pattern '2[a-c]': '[a-c]' is not a digit set; write digits and ranges like \
             [1-5] or [137]",
            "5:12: 'match.default' must be true or false (got 'yes')",
            "8:37: unknown placeholder '{calller}' in agent.instructions — did you mean \
             'caller'? (allowed: {caller}, {callee}, {date}, {time}; write {{ for a literal \
             brace)",
            "9:10: 'agent.voice' must be one of alloy, ash, ballad, cedar, coral, echo, marin, \
             sage, shimmer, verse (got 'marine') — did you mean 'marin'?",
            "10:13: language 'German' is not a language tag; write it like 'en', 'de' or 'de-DE'",
            "11:52: 'agent.turn_detection.eagerness' must be one of low, medium, high, auto (got \
             'hihg') — did you mean 'high'?",
            "11:58: 'silence' only applies to type: server_vad",
            "13:13: 'limits.max_call' must be between 10s and 1h (got '90m')",
            "14:12: 'limits.silence': '30' needs a unit, like 30s or 30m",
            "15:19: 'limits.max_tool_calls' must be a whole number from 0 to 1000 (got 'lots')",
            "17:8: 'keys.0: transfer' needs a target: add 'to: sip:...' here or a 'transfer' \
             section to the plan",
            "18:3: '10' is not a phone key; use one of 0-9, * or # (quote them: \"*\")",
            "19:28: 'keys.#.to' only applies with then: transfer",
            "20:19: 'fallback.then' must be one of hangup, ticket, transfer (got 'voicemail')",
            "21:22: 'tickets.priority' must be one of low, normal, high, urgent (got 'urgnet') — \
             did you mean 'urgent'?",
            "24:15: unknown day 'fir' — did you mean 'fri'? (days are mon, tue, wed, thu, fri, \
             sat, sun; ranges like mon-fri; lists like sat,sun; or daily)",
            "24:41: '9-12' is not an opening range; write HH:MM-HH:MM like \"08:00-18:00\", \
             several separated by commas",
            "25:14: holiday '2026-02-30' is not a date; write YYYY-MM-DD like 2026-12-25, or \
             MM-DD like 12-25 for every year",
            "27:1: key 'agent' appears twice (first on line 6)",
        ],
    ),
];

/// The expected line for a fixture: a folder fixture names its file first (`b.yaml:3:13: …`).
fn expected_line(fixture: &Path, line: &str) -> String {
    if fixture.extension().is_some() {
        format!("{}:{line}", fixture.display())
    } else {
        format!("{}/{line}", fixture.display())
    }
}

#[test]
fn each_problem_kind_has_an_exact_message() {
    for (name, want) in CASES {
        let fixture = Path::new(DIR).join(name);
        let report = check_paths(std::slice::from_ref(&fixture));
        let got: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
        let want: Vec<String> = want.iter().map(|l| expected_line(&fixture, l)).collect();
        assert_eq!(got, want, "fixture {name}");
        assert!(!report.is_ok(), "{name}");
    }
}

#[test]
fn one_check_reports_all_problems_in_all_files() {
    let paths: Vec<PathBuf> = CASES.iter().map(|(n, _)| Path::new(DIR).join(n)).collect();
    let report = check_paths(&paths);
    let total: usize = CASES.iter().map(|(_, w)| w.len()).sum();
    assert_eq!(report.problems.len(), total);
    assert_eq!(report.files, 11);
    assert_eq!(report.summary(), format!("{total} problems in 11 files"));
    // Loading fails with the same problems; its message is one line for `voxgate serve`.
    let err = DialplanSet::load(&paths).expect_err("invalid");
    assert_eq!(err.problems, report.problems);
    assert!(err.to_string().ends_with(&format!(
        "(and {} more problems; run `voxgate check` to list them)",
        total - 1
    )));
}

#[test]
fn missing_files_and_empty_folders_are_problems() {
    let report = check_paths(&[PathBuf::from("tests/dialplans/nope.yaml")]);
    assert_eq!(
        report.problems[0].to_string(),
        "tests/dialplans/nope.yaml: no such file or folder"
    );
    let empty = std::env::temp_dir().join(format!("voxgate-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).expect("temp dir");
    let report = check_paths(std::slice::from_ref(&empty));
    assert_eq!(
        report.problems[0].message,
        "no dialplans here (looked for *.yaml and *.yml)"
    );
    let _ = std::fs::remove_dir(&empty);
}

/// Write a WAV with `spec` and `samples` frames of silence.
fn wav(path: &Path, spec: hound::WavSpec, samples: u32) {
    let mut w = hound::WavWriter::create(path, spec).expect("create wav");
    for _ in 0..samples * u32::from(spec.channels) {
        match (spec.sample_format, spec.bits_per_sample) {
            (hound::SampleFormat::Float, _) => w.write_sample(0.0f32),
            (_, 8) => w.write_sample(0i8),
            _ => w.write_sample(0i16),
        }
        .expect("write sample");
    }
    w.finalize().expect("finish wav");
}

#[test]
fn prompts_are_checked_for_existence_and_format() {
    let dir = std::env::temp_dir().join(format!("voxgate-prompts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("prompts")).expect("temp dir");
    let spec = |channels, sample_rate, bits, format| hound::WavSpec {
        channels,
        sample_rate,
        bits_per_sample: bits,
        sample_format: format,
    };
    use hound::SampleFormat::{Float, Int};
    wav(&dir.join("prompts/ok.wav"), spec(1, 8000, 16, Int), 800);
    wav(&dir.join("prompts/cd.wav"), spec(2, 44100, 16, Int), 800);
    wav(&dir.join("prompts/8bit.wav"), spec(1, 8000, 8, Int), 800);
    wav(
        &dir.join("prompts/float.wav"),
        spec(1, 8000, 32, Float),
        800,
    );
    wav(&dir.join("prompts/empty.wav"), spec(1, 8000, 16, Int), 0);
    std::fs::write(dir.join("prompts/text.wav"), "not audio").expect("write");
    let plan = "name: prompts\n\
                match: { numbers: [\"700\"] }\n\
                agent: { instructions: Hi. }\n\
                keys:\n  \
                  \"1\": { play: prompts/ok.wav, then: hangup }\n  \
                  \"2\": { play: prompts/missing.wav, then: hangup }\n  \
                  \"3\": { play: prompts/cd.wav, then: hangup }\n  \
                  \"4\": { play: prompts/8bit.wav, then: hangup }\n  \
                  \"5\": { play: prompts/float.wav, then: hangup }\n  \
                  \"6\": { play: prompts/empty.wav, then: hangup }\n  \
                  \"7\": { play: prompts/text.wav, then: hangup }\n";
    let file = dir.join("prompts.yaml");
    std::fs::write(&file, plan).expect("write plan");
    let report = check_paths(std::slice::from_ref(&file));
    let convert = "prompts must be mono 16-bit PCM at 8000 Hz (convert with: sox IN.wav -r 8000 \
                   -c 1 -b 16 -e signed-integer OUT.wav)";
    let f = file.display();
    let want = [
        format!(
            "{f}:6:16: prompt 'prompts/missing.wav' not found (looked for {}); fix the path \
             (relative paths start at the dialplan's folder) or generate the prompts with \
             scripts/gen-prompts",
            dir.join("prompts/missing.wav").display()
        ),
        format!("{f}:7:16: prompt 'prompts/cd.wav' is 44100 Hz, 2 channels, 16-bit PCM; {convert}"),
        format!("{f}:8:16: prompt 'prompts/8bit.wav' is 8000 Hz, 1 channel, 8-bit PCM; {convert}"),
        format!(
            "{f}:9:16: prompt 'prompts/float.wav' is 8000 Hz, 1 channel, 32-bit float; {convert}"
        ),
        format!("{f}:10:16: prompt 'prompts/empty.wav' contains no audio"),
    ];
    let got: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
    assert_eq!(got[..want.len()], want[..]);
    assert_eq!(got.len(), want.len() + 1, "{got:#?}");
    assert!(got[want.len()].starts_with(&format!(
        "{f}:11:16: prompt 'prompts/text.wav' is not a readable WAV file ("
    )));
    // The valid prompt resolves against the plan's folder, to an absolute path.
    std::fs::write(&file, plan.lines().take(5).collect::<Vec<_>>().join("\n")).expect("write");
    let set = voxgate::dialplan::DialplanSet::load(std::slice::from_ref(&file)).expect("loads");
    let play = set.plans()[0].keys[&'1'].play.clone().expect("a prompt");
    assert!(
        play.is_absolute() && play.ends_with("prompts/ok.wav"),
        "{play:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
