use sensor_proto::AuditRecord;
use serde_json::Value;

use super::Memo;
use crate::detect::{
    DetectConfig, Detector, Sources, category::categories_of, fields::RecordView,
    rule_tests::every_case_record,
};

/// The built-in rules and, when present beside the repository, the SigmaHQ Linux rules (more
/// fields and modifiers: keywords, regexes, `|all`, …).
fn detector() -> Detector {
    let sigma = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/sigma/rules/linux");
    let paths = if sigma.is_dir() { vec![sigma] } else { Vec::new() };
    let cfg = DetectConfig {
        sources: Sources { builtin: true, paths, optional_dir: None },
        ..DetectConfig::default()
    };
    Detector::new(&cfg).expect("rules load")
}

/// Copies of `r`, each with one value of the process, its parent or the event changed (strings
/// get a character more, numbers one more, booleans flipped); the ones that still decode.
fn variants(r: &AuditRecord) -> Vec<AuditRecord> {
    let json = serde_json::to_value(r).expect("records serialise");
    let mut leaves = Vec::new();
    collect_leaves(&json, &mut Vec::new(), &mut leaves);
    leaves
        .iter()
        .filter_map(|path| {
            let mut v = json.clone();
            let mut leaf = &mut v;
            for key in path {
                leaf = match key {
                    Key::Field(k) => leaf.get_mut(k.as_str())?,
                    Key::Index(i) => leaf.get_mut(*i)?,
                };
            }
            *leaf = match leaf.take() {
                Value::String(s) => Value::String(format!("{s}x")),
                Value::Number(n) => Value::from(n.as_i64().unwrap_or(0) + 1),
                Value::Bool(b) => Value::Bool(!b),
                other => other,
            };
            serde_json::from_value(v).ok()
        })
        .collect()
}

enum Key {
    Field(String),
    Index(usize),
}

fn collect_leaves(v: &Value, path: &mut Vec<Key>, out: &mut Vec<Vec<Key>>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                // The record's identity: no rule reads it, every record differs in it.
                if path.is_empty() && matches!(k.as_str(), "seq" | "time" | "prev_hash" | "hash") {
                    continue;
                }
                path.push(Key::Field(k.clone()));
                collect_leaves(x, path, out);
                path.pop();
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                path.push(Key::Index(i));
                collect_leaves(x, path, out);
                path.pop();
            }
        }
        _ => out.push(
            path.iter()
                .map(|k| match k {
                    Key::Field(f) => Key::Field(f.clone()),
                    Key::Index(i) => Key::Index(*i),
                })
                .collect(),
        ),
    }
}

fn ids(results: &[rsigma_eval::EvaluationResult]) -> Vec<String> {
    results.iter().map(|r| r.header.rule_id.clone().unwrap_or_else(|| r.header.rule_title.clone())).collect()
}

/// Every record of the rule tests (which match and just miss each built-in rule), and every
/// one-value variant of each, evaluated through the memo in an order that makes each variant
/// meet the original's entry: the memo's results equal a fresh evaluation's every time, and it
/// did answer from memory.
#[test]
fn memo_results_equal_fresh_evaluations() {
    let d = detector();
    let mut memo = Memo::default();
    let mut compared = 0usize;
    for r in every_case_record() {
        let mut stream = vec![r.clone(), r.clone()];
        for v in variants(&r) {
            stream.extend([v, r.clone()]);
        }
        for rec in &stream {
            for &cat in categories_of(rec) {
                let Some(engine) = &d.engines[cat.index()] else { continue };
                let fresh = ids(&engine.evaluate(&RecordView::new(rec, cat, None)));
                let remembered = ids(&memo.evaluate(engine, &RecordView::new(rec, cat, None)));
                assert_eq!(
                    remembered,
                    fresh,
                    "{cat} record {}",
                    serde_json::to_string(rec).unwrap_or_default()
                );
                compared += 1;
            }
        }
    }
    let s = memo.stats();
    assert!(compared > 1000, "{compared} evaluations compared");
    assert!(s.hits > 100 && s.misses > 100, "{s:?}");
}

/// A record that reads its own identity (`seq`, through `to_json`) is not remembered.
#[test]
fn volatile_reads_are_not_remembered() {
    use rsigma_eval::Event as _;
    let r = AuditRecord { seq: 7, ..AuditRecord::default() };
    let view = RecordView::new(&r, crate::detect::category::Category::ProcessCreation, None);
    view.record_reads();
    let _ = view.to_json();
    assert!(view.take_reads().is_some_and(|reads| reads.volatile));
}
