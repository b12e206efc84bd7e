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

use std::{borrow::Cow, collections::HashMap, fmt::Write as _};

use rsigma_eval::{Event, EventValue};
use rsigma_parser::{CorrelationCondition, CorrelationType, WindowMode};

use super::load::LoadedCorrelation;
use crate::fastmap::FastMap;

/// Entries kept per correlation before old ones are swept (each is a few dozen bytes).
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
    rules: FastMap<String, Counted>,
    /// Correlation id → its index.
    correlations: FastMap<String, usize>,
    /// Per correlation: (group values, value) → time (s) it was last fed. The key is the texts,
    /// each prefixed with its length (so no two tuples share a key), built in `scratch`.
    last_fed: Vec<FastMap<String, i64>>,
    scratch: String,
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
                let counted = Counted {
                    correlation: i,
                    group_by: r.group_by.clone(),
                    field: field.clone(),
                    half_window,
                };
                rules.insert(base.clone(), counted);
            }
        }
        let last_fed = correlations.iter().map(|_| FastMap::default()).collect();
        let correlations = correlations.iter().enumerate().map(|(i, c)| (c.meta.id.clone(), i)).collect();
        Self { rules, correlations, last_fed, scratch: String::new(), held_back: 0 }
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
    pub fn seen(&mut self, rule_id: &str, event: &impl Event, ts: i64) -> bool {
        let Some(c) = self.rules.get(rule_id) else { return false };
        let Some(last_fed) = self.last_fed.get_mut(c.correlation) else { return false };
        let key = &mut self.scratch;
        key.clear();
        for f in &c.group_by {
            push_text(key, event.get_field(f));
        }
        push_text(key, event.get_field(&c.field));
        if let Some(&fed) = last_fed.get(key.as_str())
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
        match last_fed.get_mut(key.as_str()) {
            Some(fed) => *fed = ts,
            None => {
                last_fed.insert(key.clone(), ts);
            }
        }
        false
    }
}

/// Appends a field's value as the text a correlation groups and counts by (absent: empty),
/// prefixed with its length.
fn push_text(key: &mut String, v: Option<EventValue<'_>>) {
    let text = match v {
        None => Cow::Borrowed(""),
        Some(EventValue::Str(s)) => s,
        Some(other) => Cow::Owned(
            other.as_str().map(Cow::into_owned).unwrap_or_else(|| format!("{:?}", other.to_json())),
        ),
    };
    let _ = write!(key, "{}:", text.len());
    key.push_str(&text);
}
