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

use rsigma_eval::{Event, EventValue};
use rsigma_parser::{CorrelationCondition, CorrelationType, WindowMode};

use super::load::LoadedCorrelation;

/// Entries kept before old ones are swept (each is a few dozen bytes).
const MAX_ENTRIES: usize = 65_536;

/// How one base rule's matches are keyed for the one `value_count` correlation that uses it.
#[derive(Debug)]
struct Counted {
    correlation: usize,
    group_by: Vec<String>,
    field: String,
    half_window: i64,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct Repeats {
    /// Base rule id → how its matches are keyed; only rules that feed exactly one correlation,
    /// a sliding `value_count` without field aliases.
    rules: HashMap<String, Counted>,
    /// Correlation id → its index.
    correlations: HashMap<String, usize>,
    /// (correlation, group values, value) → time (s) it was last fed.
    last_fed: HashMap<(usize, Vec<String>, String), i64>,
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
        let mut rules = HashMap::new();
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
                let counted = Counted {
                    correlation: i,
                    group_by: r.group_by.clone(),
                    field: field.clone(),
                    half_window,
                };
                rules.insert(base.clone(), counted);
            }
        }
        let correlations = correlations.iter().enumerate().map(|(i, c)| (c.meta.id.clone(), i)).collect();
        Self { rules, correlations, last_fed: HashMap::new(), held_back: 0 }
    }

    /// A correlation fired and its window was reset (`CorrelationAction::Reset`): its values
    /// are fed afresh.
    pub fn fired(&mut self, correlation_id: &str) {
        if let Some(&i) = self.correlations.get(correlation_id)
            && self.rules.values().any(|c| c.correlation == i)
        {
            self.last_fed.retain(|k, _| k.0 != i);
        }
    }

    /// True when this match of `rule_id` on `event` at `ts` (s) need not be fed (see the module
    /// documentation); otherwise it is remembered as fed.
    pub fn seen(&mut self, rule_id: &str, event: &impl Event, ts: i64) -> bool {
        let Some(c) = self.rules.get(rule_id) else { return false };
        let group = c.group_by.iter().map(|f| text(event.get_field(f))).collect();
        let key = (c.correlation, group, text(event.get_field(&c.field)));
        if let Some(&fed) = self.last_fed.get(&key)
            && ts >= fed
            && ts - fed < c.half_window
        {
            self.held_back += 1;
            return true;
        }
        if self.last_fed.len() >= MAX_ENTRIES {
            let oldest_useful =
                ts.saturating_sub(self.rules.values().map(|c| c.half_window).max().unwrap_or(0));
            self.last_fed.retain(|_, fed| *fed >= oldest_useful);
            if self.last_fed.len() >= MAX_ENTRIES {
                self.last_fed.clear();
            }
        }
        self.last_fed.insert(key, ts);
        false
    }
}

/// A field's value as the text a correlation groups and counts by (absent: empty).
fn text(v: Option<EventValue<'_>>) -> String {
    match v {
        None => String::new(),
        Some(EventValue::Str(s)) => s.into_owned(),
        Some(other) => other
            .as_str()
            .map(std::borrow::Cow::into_owned)
            .unwrap_or_else(|| format!("{:?}", other.to_json())),
    }
}
