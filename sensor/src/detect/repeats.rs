//! Repeated values of `value_count` correlations, held back from the correlation engine.
//!
//! A `value_count` correlation counts the distinct values of a field in a window, per group
//! (`sensor.discovery.port_scan`: distinct `DestinationPort`s per process in 30 s). Its base rule
//! often matches every record of a kind (every connect), and rsigma keeps each match in the
//! group's window and recounts the window's distinct values on every match: a busy client that
//! connects to the same port all day paid a set rebuild of up to [`super::MAX_WINDOW_ENTRIES`]
//! strings per connect, for a count that did not change.
//!
//! [`Repeats::seen`] answers whether this (correlation, group, value) was already fed within
//! half the correlation's window; such a match adds nothing the window does not hold, and is
//! not fed. A value is fed again once half a window has passed, so the window keeps a copy of
//! every value still repeating. What can differ from feeding everything: a value last seen only
//! in held-back repeats that fall in the oldest half of a window may be missing from that
//! window's count (the threshold is reached at most half a window later than it would be, and
//! only through values that repeat). New values — what a scan or a spree is made of — are
//! always fed. When the correlation fires (and rsigma resets its window), its values are fed
//! afresh.

use std::collections::HashMap;

use rsigma_eval::EventValue;
use rsigma_parser::{CorrelationCondition, CorrelationType, WindowMode};

use super::{
    fields::{self, Field, RecordView},
    load::LoadedCorrelation,
};
use crate::fastmap::FastMap;

/// Entries kept per correlation before old ones are swept (each is a few dozen bytes).
const MAX_ENTRIES: usize = 65_536;

/// How one base rule's matches are keyed for the one `value_count` correlation that uses it.
#[derive(Debug)]
struct Counted {
    correlation: usize,
    /// The group-by fields, then the counted field; `None`: a name the sensor does not provide
    /// (absent on every record).
    fields: Vec<Option<&'static Field>>,
    half_window: i64,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct Repeats {
    /// Base rule id → how its matches are keyed; only rules that feed exactly one correlation,
    /// a sliding `value_count` without field aliases.
    rules: FastMap<String, Counted>,
    /// Correlation id → its index.
    correlations: FastMap<String, usize>,
    /// Per correlation: (group values, value) → time (s) it was last fed. The key encodes each
    /// value with its type and length (so no two tuples share a key), built in `scratch`.
    last_fed: Vec<FastMap<Vec<u8>, i64>>,
    scratch: Vec<u8>,
    /// Matches held back (for tests and the bench).
    pub held_back: u64,
}

impl Repeats {
    pub fn new(correlations: &[LoadedCorrelation]) -> Self {
        let mut uses: HashMap<&str, usize> = HashMap::new();
        for c in correlations {
            for r in &c.rule.rules {
                *uses.entry(r.as_str()).or_default() += 1;
            }
        }
        let mut rules = FastMap::default();
        for (i, c) in correlations.iter().enumerate() {
            let r = &c.rule;
            let field = match &r.condition {
                CorrelationCondition::Threshold { field: Some(f), .. } if f.len() == 1 => f[0].clone(),
                _ => continue,
            };
            // `generate: true` makes the base rule alert on its own: every match must go through.
            if r.correlation_type != CorrelationType::ValueCount
                || r.generate
                || r.window != WindowMode::Sliding
                || !r.aliases.is_empty()
                || r.timespan.seconds < 2
            {
                continue;
            }
            let half_window = i64::try_from(r.timespan.seconds / 2).unwrap_or(i64::MAX);
            for base in r.rules.iter().filter(|b| uses.get(b.as_str()) == Some(&1)) {
                let names = r.group_by.iter().chain(std::iter::once(&field));
                let counted = Counted {
                    correlation: i,
                    fields: names.map(|n| fields::lookup(n)).collect(),
                    half_window,
                };
                rules.insert(base.clone(), counted);
            }
        }
        let last_fed = correlations.iter().map(|_| FastMap::default()).collect();
        let correlations = correlations.iter().enumerate().map(|(i, c)| (c.meta.id.clone(), i)).collect();
        Self { rules, correlations, last_fed, scratch: Vec::new(), held_back: 0 }
    }

    /// A correlation fired and its window was reset (`CorrelationAction::Reset`): its values
    /// are fed afresh.
    pub fn fired(&mut self, correlation_id: &str) {
        if let Some(&i) = self.correlations.get(correlation_id)
            && let Some(fed) = self.last_fed.get_mut(i)
        {
            fed.clear();
        }
    }

    /// True when this match of `rule_id` on `event` at `ts` (s) need not be fed (see the module
    /// documentation); otherwise it is remembered as fed.
    pub fn seen(&mut self, rule_id: &str, view: &RecordView<'_>, ts: i64) -> bool {
        let Some(c) = self.rules.get(rule_id) else { return false };
        let Some(last_fed) = self.last_fed.get_mut(c.correlation) else { return false };
        let key = &mut self.scratch;
        key.clear();
        for f in &c.fields {
            push_value(key, f.and_then(|f| view.value_of(f)).as_ref());
        }
        if let Some(&fed) = last_fed.get(key.as_slice())
            && ts >= fed
            && ts - fed < c.half_window
        {
            self.held_back += 1;
            return true;
        }
        if last_fed.len() >= MAX_ENTRIES {
            let oldest_useful = ts.saturating_sub(c.half_window);
            last_fed.retain(|_, fed| *fed >= oldest_useful);
            if last_fed.len() >= MAX_ENTRIES {
                last_fed.clear();
            }
        }
        match last_fed.get_mut(key.as_slice()) {
            Some(fed) => *fed = ts,
            None => {
                last_fed.insert(key.clone(), ts);
            }
        }
        false
    }
}

/// Appends a field's value, tagged with its type and, for text, prefixed with its length: an
/// injective encoding, so two tuples share a key only when their values are equal (values rsigma
/// would count as one, say `5` and `"5"`, are at worst fed twice, never held back wrongly).
fn push_value(key: &mut Vec<u8>, v: Option<&EventValue<'_>>) {
    match v {
        None => key.push(0),
        Some(EventValue::Str(s)) => push_text(key, 1, s.as_bytes()),
        Some(EventValue::Int(i)) => {
            key.push(2);
            key.extend_from_slice(&i.to_le_bytes());
        }
        Some(EventValue::Float(f)) => {
            key.push(3);
            key.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Some(EventValue::Bool(b)) => key.extend_from_slice(&[4, u8::from(*b)]),
        Some(EventValue::Null) => key.push(5),
        Some(other @ (EventValue::Array(_) | EventValue::Map(_))) => {
            push_text(key, 6, other.to_json().to_string().as_bytes());
        }
    }
}

fn push_text(key: &mut Vec<u8>, tag: u8, text: &[u8]) {
    key.push(tag);
    key.extend_from_slice(&text.len().to_le_bytes());
    key.extend_from_slice(text);
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    fn key(values: &[Option<EventValue<'_>>]) -> Vec<u8> {
        let mut k = Vec::new();
        values.iter().for_each(|v| push_value(&mut k, v.as_ref()));
        k
    }

    fn s(v: &str) -> Option<EventValue<'_>> {
        Some(EventValue::Str(Cow::Borrowed(v)))
    }

    #[test]
    fn keys_tell_tuples_apart() {
        let keys = [
            key(&[s("ab"), s("c")]),
            key(&[s("a"), s("bc")]),
            key(&[s("abc"), None]),
            key(&[s("abc"), s("")]),
            key(&[s("5"), None]),
            key(&[Some(EventValue::Int(5)), None]),
            key(&[Some(EventValue::Float(5.0)), None]),
            key(&[Some(EventValue::Bool(true)), None]),
            key(&[Some(EventValue::Null), None]),
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(key(&[s("ab"), s("c")]), key(&[s("ab"), Some(EventValue::Str(Cow::Owned("c".into())))]));
    }
}
