//! Unit tests of the built-in rules: every rule in `rules/` has `rules/tests/<file>.yml` with
//! records that must raise its alert (`match`) and records that must not (`no_match`).
//!
//! A case is a record in canonical JSON (the proto3 JSON mapping, as `sensor records cat`
//! prints it; give only the fields that matter) plus:
//! - `session`: a `session` record fed first (its `session_id` defaults to the process's);
//! - `before`: records fed first (e.g. a download before the execution it correlates with);
//! - `repeat: N`: the record N times; `{n}` in any string is replaced by 0..N.
//!
//! Records get increasing `seq` and times 100 ms apart; the process GUID defaults to one per
//! case. Each case runs through a fresh detector holding the whole built-in set.

use std::path::{Path, PathBuf};

use sensor_proto::AuditRecord;
use serde::Deserialize;
use serde_json::Value;

use super::{DetectConfig, Detector, Level, Sources, load};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleCases {
    rule: String,
    #[serde(rename = "match")]
    matches: Vec<Value>,
    no_match: Vec<Value>,
}

fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules")
}

/// The records of one case, in the order they are fed.
fn records(case: &Value, case_no: usize) -> Vec<AuditRecord> {
    let mut case = case.clone();
    let obj = case.as_object_mut().expect("a case is a mapping");
    let repeat = obj.remove("repeat").and_then(|v| v.as_u64()).unwrap_or(1);
    let session = obj.remove("session");
    let before: Vec<Value> = obj.remove("before").and_then(|v| v.as_array().cloned()).unwrap_or_default();
    let guid = format!("case-{case_no}");
    let mut out = Vec::new();
    let mut push = |mut v: Value, n: u64| {
        substitute(&mut v, n);
        let p = v.as_object_mut().expect("record").entry("process").or_insert_with(|| serde_json::json!({}));
        let p = p.as_object_mut().expect("process is a mapping");
        p.entry("guid").or_insert_with(|| Value::String(guid.clone()));
        if !p.contains_key("session_id") {
            p.insert("session_id".into(), if session.is_some() { 7.into() } else { u32::MAX.into() });
        }
        let r: AuditRecord =
            serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("case {case_no}: {e}: {v}"));
        out.push(r);
    };
    if let Some(s) = &session {
        let mut s = s.clone();
        let m = s.as_object_mut().expect("session is a mapping");
        m.entry("session_id").or_insert(7.into());
        let id = m["session_id"].clone();
        push(serde_json::json!({ "process": { "session_id": id }, "session": s }), 0);
    }
    for b in before {
        push(b, 0);
    }
    for n in 0..repeat {
        push(case.clone(), n);
    }
    for (i, r) in out.iter_mut().enumerate() {
        let i = i as u64;
        r.seq = i + 1;
        r.time = Some(sensor_proto::Timestamp {
            seconds: 1_800_000_000 + i64::try_from(i / 10).unwrap_or(0),
            nanos: i32::try_from((i % 10) * 100_000_000).unwrap_or(0),
        });
    }
    out
}

fn substitute(v: &mut Value, n: u64) {
    // YAML reads `-9` or `4000` in an argv as numbers: arguments are text.
    if let Value::Object(o) = v
        && let Some(Value::Array(argv)) = o.get_mut("argv")
    {
        for a in argv.iter_mut().filter(|a| a.is_number() || a.is_boolean()) {
            *a = Value::String(a.to_string());
        }
    }
    match v {
        Value::String(s) if s.contains("{n}") => *s = s.replace("{n}", &n.to_string()),
        Value::Array(a) => a.iter_mut().for_each(|x| substitute(x, n)),
        Value::Object(o) => o.values_mut().for_each(|x| substitute(x, n)),
        _ => {}
    }
}

/// The case documents of every built-in rule file, in `load::BUILTIN` order.
fn every_rule_cases() -> Vec<RuleCases> {
    let mut out = Vec::new();
    for (file, _) in load::BUILTIN {
        let path = rules_dir().join("tests").join(file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (every rule needs tests)", path.display()));
        out.extend(
            text.split("\n---\n")
                .filter(|d| !d.trim().is_empty())
                .map(|d| yaml_serde::from_str(d).unwrap_or_else(|e| panic!("{}: {e}", path.display()))),
        );
    }
    out
}

/// The records of every case of every built-in rule, case after case.
pub(super) fn every_case_record() -> Vec<AuditRecord> {
    let mut out = Vec::new();
    for cases in every_rule_cases() {
        for (i, c) in cases.matches.iter().chain(&cases.no_match).enumerate() {
            out.extend(records(c, i));
        }
    }
    out
}

/// Rule ids that fire on the case's records (a detector with no state left from other cases).
fn fired(d: &mut Detector, case: &Value, case_no: usize) -> Vec<String> {
    d.reset_state();
    let mut alerts = Vec::new();
    let mut ids = Vec::new();
    for r in records(case, case_no) {
        // Base rules of correlations raise no alert of their own: their matches count too.
        ids.extend(d.raw_matches(&r));
        d.evaluate(&r, &mut alerts);
    }
    ids.extend(alerts.into_iter().filter_map(|a| match a.event {
        sensor_proto::v1::audit_record::Event::Alert(a) => Some(a.rule_id),
        _ => None,
    }));
    ids
}

#[test]
fn every_builtin_rule_fires_on_its_positive_cases_and_not_on_its_negative_ones() {
    let all = load::load(&Sources { builtin: true, ..Sources::default() });
    assert!(all.problems.is_empty(), "{:#?}", all.problems);
    let cfg = DetectConfig {
        sources: Sources::default(),
        min_level: Level::Informational,
        suppress_secs: 0,
        ..DetectConfig::default()
    };
    let mut d = Detector::from_rules(&all, &cfg).expect("built-in rules load");
    let mut failures = Vec::new();
    let mut tested = std::collections::BTreeSet::new();
    for cases in every_rule_cases() {
        assert!(
            !cases.matches.is_empty() && !cases.no_match.is_empty(),
            "{}: needs match and no_match cases",
            cases.rule
        );
        for (i, c) in cases.matches.iter().enumerate() {
            let f = fired(&mut d, c, i);
            if !f.contains(&cases.rule) {
                failures.push(format!("{}: match case {i} did not fire (fired: {f:?})", cases.rule));
            }
        }
        for (i, c) in cases.no_match.iter().enumerate() {
            let f = fired(&mut d, c, 100 + i);
            if f.contains(&cases.rule) {
                failures.push(format!("{}: no_match case {i} fired", cases.rule));
            }
        }
        tested.insert(cases.rule);
    }
    for m in all.metas() {
        if !tested.contains(&m.id) {
            failures.push(format!("{}: no test cases in rules/tests/", m.id));
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}
