//! Detection: every record is evaluated against the loaded rules; a match becomes an `alert`
//! record in the same stream and hash chain, right after the record that completed it.
//!
//! Rules are Sigma (detection and correlation rules), read by `rsigma-parser` and evaluated by
//! `rsigma-eval`, compiled once and indexed by log source category so that a record meets only
//! the rules of its kind. Records are read through the field mapping in [`fields`] (no JSON per
//! record). Correlation rules (`event_count`, `value_count`, `temporal`) count the matches of
//! the rules they name, grouped by fields such as `ProcessGuid` or `SessionId`, in a window.

pub mod category;
pub mod exceptions;
pub mod fields;
pub mod kind;
pub mod load;
mod memo;
pub mod meta;
mod prefilter;
#[cfg(test)]
mod readme_tests;
mod repeats;
#[cfg(test)]
mod rule_tests;
mod sessions;
mod validate;

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use rsigma_eval::{
    CorrelationAction, CorrelationConfig, CorrelationEngine, CorrelationEventMode, Engine, EvaluationResult,
    ResultBody,
};
use sensor_proto::{
    AuditRecord,
    v1::{AlertEvent, audit_record::Event},
};

use crate::enrich::{
    Enriched,
    ancestry::{Ancestors, Ancestry},
};
use category::{Category, categories_of};
use exceptions::{Exception, ExceptionSpec};
use fields::RecordView;
pub use load::{Problem, RuleSet, Severity, Sources};
pub use memo::MemoStats;
pub use meta::{Level, RuleKind, RuleMeta, SharedMeta};

/// Most records a correlation alert names in `trigger_seqs`.
pub const MAX_TRIGGER_SEQS: usize = 16;
/// Matches a correlation window keeps per group (the newest): rsigma re-counts a `value_count`
/// window on every match, so the window of a busy process (thousands of connects a second) must
/// not grow with its rate. A threshold rule keeps twice its threshold (at least
/// [`MIN_WINDOW_ENTRIES`]), so the cap never hides a count the rule asks for; temporal rules and
/// rules that set `rsigma.max_group_entries` themselves keep [`MAX_WINDOW_ENTRIES`] or their own.
pub const MIN_WINDOW_ENTRIES: usize = 32;
/// See [`MIN_WINDOW_ENTRIES`].
pub const MAX_WINDOW_ENTRIES: usize = 4096;
/// Correlation groups kept across all correlation rules; beyond it the stalest are dropped.
/// Each group costs about 1.4 KiB: rsigma's default (100,000) let a Python script writing
/// 100,000 distinct files under /tmp (the download-then-execute rule groups by path, for 30
/// minutes) grow the sensor from 50 to 186 MiB; with 20,000 it peaked at 95 MiB. The price: the
/// stalest group goes first, so a download followed by 20,000 decoy files before its execution
/// is no longer linked to it (it took 100,000 before).
pub const MAX_CORRELATION_GROUPS: usize = 20_000;

/// Settings of the detection stage (`[detection]` in the configuration).
#[derive(Debug, Clone)]
pub struct DetectConfig {
    /// Turn detection off entirely.
    pub enabled: bool,
    pub sources: Sources,
    /// Alerts below this level are not written.
    pub min_level: Level,
    /// Rule ids that never alert.
    pub disable: Vec<String>,
    pub exceptions: Vec<ExceptionSpec>,
    /// The same rule on the same process alerts at most once per this many seconds (later
    /// matches are counted in `suppressed`); 0 alerts on every match.
    pub suppress_secs: u64,
}

impl Default for DetectConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            sources: Sources {
                builtin: true,
                paths: Vec::new(),
                optional_dir: Some(load::SITE_RULES.into()),
            },
            min_level: Level::Low,
            disable: Vec::new(),
            exceptions: Vec::new(),
            suppress_secs: 60,
        }
    }
}

/// Why the detector could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("{} rule problem(s):\n{}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Rules(Vec<Problem>),
    #[error("detection.exception[{index}]: {reason}")]
    Exception { index: usize, reason: String },
    #[error("rule {rule}: {reason}")]
    Engine { rule: String, reason: String },
}

/// Counters of the detection stage.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DetectStats {
    pub evaluated: u64,
    pub alerts: u64,
    /// Matches not written: allowed by an exception.
    pub excepted: u64,
    /// Matches not written: the same rule on the same process within the suppression window.
    pub suppressed: u64,
}

/// The detection stage: owned by the record stage, fed every record in `seq` order.
pub struct Detector {
    /// One engine per category, indexed by [`Category::index`]; `None` when no rule applies.
    engines: Vec<Option<Engine>>,
    /// Results of records that read the same values as an earlier one.
    memo: memo::Memo,
    correlation: Option<CorrelationEngine>,
    pub(crate) repeats: repeats::Repeats,
    metas: HashMap<String, SharedMeta>,
    min_level: Level,
    disabled: HashSet<String>,
    exceptions: Vec<Exception>,
    suppress_secs: u64,
    /// (rule id, process GUID) → time (s) of the last alert written.
    last_alert: HashMap<(String, String), i64>,
    sessions: sessions::SessionCache,
    stats: DetectStats,
    unsupported: Vec<Problem>,
    /// The correlation rules, to start their state afresh (tests).
    #[cfg(test)]
    correlations: Vec<load::LoadedCorrelation>,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector").field("rules", &self.metas.len()).field("stats", &self.stats).finish()
    }
}

impl Detector {
    /// Loads the configured rules. Any error in a rule file, or an exception that does not
    /// compile, is an error: a sensor silently running without its rules is worse than one that
    /// does not start.
    pub fn new(cfg: &DetectConfig) -> Result<Self, DetectError> {
        let set = if cfg.enabled { load::load(&cfg.sources) } else { RuleSet::default() };
        Self::from_rules(&set, cfg)
    }

    /// Builds the detector from rules already read.
    pub fn from_rules(set: &RuleSet, cfg: &DetectConfig) -> Result<Self, DetectError> {
        if set.has_errors() {
            return Err(DetectError::Rules(set.errors().cloned().collect()));
        }
        let exceptions = cfg
            .exceptions
            .iter()
            .enumerate()
            .map(|(index, s)| Exception::new(s).map_err(|reason| DetectError::Exception { index, reason }))
            .collect::<Result<Vec<_>, _>>()?;
        let referenced: HashSet<&str> =
            set.correlations.iter().flat_map(|c| c.rule.rules.iter().map(String::as_str)).collect();
        let disabled: HashSet<String> = cfg.disable.iter().cloned().collect();
        let mut per_category: Vec<Vec<rsigma_eval::CompiledRule>> = vec![Vec::new(); Category::ALL.len()];
        let mut metas = HashMap::new();
        for rule in &set.rules {
            let id = rule.meta.id.as_str();
            if disabled.contains(id) && !referenced.contains(id) {
                continue;
            }
            for c in load::rule_categories(&rule.meta) {
                per_category[c.index()].push(rule.compiled.clone());
            }
            metas.insert(rule.meta.id.clone(), rule.meta.clone());
        }
        let mut engines = Vec::with_capacity(per_category.len());
        for rules in per_category {
            if rules.is_empty() {
                engines.push(None);
                continue;
            }
            let mut e = Engine::new();
            e.extend_compiled_rules(rules);
            for f in &set.filters {
                // Filters name rules by id; those not in this engine are simply not found.
                let _ = e.apply_filter(f);
            }
            engines.push(Some(e));
        }
        for c in &set.correlations {
            metas.insert(c.meta.id.clone(), c.meta.clone());
        }
        let correlation = correlation_engine(&set.correlations, cfg.suppress_secs)?;
        let unsupported =
            set.problems.iter().filter(|p| p.severity == Severity::Unsupported).cloned().collect();
        Ok(Self {
            engines,
            memo: memo::Memo::default(),
            correlation,
            repeats: repeats::Repeats::new(&set.correlations),
            metas,
            min_level: cfg.min_level,
            disabled,
            exceptions,
            suppress_secs: cfg.suppress_secs,
            last_alert: HashMap::new(),
            sessions: sessions::SessionCache::default(),
            stats: DetectStats::default(),
            unsupported,
            #[cfg(test)]
            correlations: set.correlations.clone(),
        })
    }

    /// Rules loaded (detection and correlation).
    pub fn rule_count(&self) -> usize {
        self.metas.len()
    }

    /// Rules left out because the sensor cannot evaluate them as written.
    pub fn unsupported(&self) -> &[Problem] {
        &self.unsupported
    }

    pub fn stats(&self) -> &DetectStats {
        &self.stats
    }

    /// Evaluations answered from the memo, and those that were not.
    pub fn memo_stats(&self) -> memo::MemoStats {
        self.memo.stats()
    }

    /// Correlation groups held now (at most [`MAX_CORRELATION_GROUPS`]).
    pub fn correlation_groups(&self) -> usize {
        self.correlation.as_ref().map_or(0, CorrelationEngine::state_count)
    }

    /// Forgets every correlation window, session and suppression (tests run case after case
    /// through one detector).
    #[cfg(test)]
    pub(crate) fn reset_state(&mut self) {
        self.correlation =
            correlation_engine(&self.correlations, self.suppress_secs).expect("rules compiled before");
        self.last_alert.clear();
        self.sessions = sessions::SessionCache::default();
        self.repeats = repeats::Repeats::new(&self.correlations);
    }

    /// Detection rules matching `record` before correlation, muting and suppression (tests of
    /// base rules that raise no alert of their own).
    #[cfg(test)]
    pub(crate) fn raw_matches(&self, record: &AuditRecord) -> Vec<String> {
        let session = record.process.as_ref().and_then(|p| self.sessions.get(p.session_id));
        let mut ids = Vec::new();
        for &cat in categories_of(record) {
            if let Some(engine) = &self.engines[cat.index()] {
                let view = RecordView::new(record, cat, session);
                ids.extend(engine.evaluate(&view).into_iter().filter_map(|r| r.header.rule_id));
            }
        }
        ids
    }

    /// Evaluates one record whose ancestors are in it (records read back from files); alerts
    /// it raises are pushed to `out` (ready for the record builder).
    pub fn evaluate(&mut self, record: &AuditRecord, out: &mut Vec<Enriched>) {
        self.evaluate_with(
            record,
            Ancestors::Listed(&record.ancestors),
            || Ancestry::shared(record.ancestors.clone()),
            out,
        );
    }

    /// Evaluates one record of the pipeline, whose ancestors are `ancestry` (shared, not in
    /// `record.ancestors`); its alerts share them.
    pub fn evaluate_shared(
        &mut self,
        record: &AuditRecord,
        ancestry: &Arc<Ancestry>,
        out: &mut Vec<Enriched>,
    ) {
        self.evaluate_with(record, Ancestors::Shared(ancestry), || Arc::clone(ancestry), out);
    }

    fn evaluate_with(
        &mut self,
        record: &AuditRecord,
        ancestors: Ancestors<'_>,
        shared: impl Fn() -> Arc<Ancestry>,
        out: &mut Vec<Enriched>,
    ) {
        if let Some(Event::Session(s)) = &record.event {
            self.sessions.observe(s);
        }
        let cats = categories_of(record);
        if cats.is_empty() {
            return;
        }
        self.stats.evaluated += 1;
        let session = record.process.as_ref().and_then(|p| self.sessions.get(p.session_id));
        let ts = record.time.as_ref().map_or(0, |t| t.seconds);
        let mut fired: Vec<(String, Option<EvaluationResult>, Category)> = Vec::new();
        for &cat in cats {
            let Some(engine) = &self.engines[cat.index()] else { continue };
            let view = RecordView::with_ancestors(record, ancestors, cat, session);
            let detections = self.memo.evaluate(engine, &view);
            if detections.is_empty() {
                continue;
            }
            let results = match &mut self.correlation {
                Some(ce) => {
                    let repeats = &mut self.repeats;
                    let fed: Vec<EvaluationResult> = detections
                        .iter()
                        .filter(|d| {
                            !d.header.rule_id.as_deref().is_some_and(|id| repeats.seen(id, &view, ts))
                        })
                        .cloned()
                        .collect();
                    // All held back: the correlation engine would feed nothing, chain nothing and
                    // drop the base-rule matches it does not `generate`.
                    if fed.is_empty() {
                        continue;
                    }
                    let results = ce.process_with_detections(&view, fed, ts);
                    for r in results.iter().filter(|r| matches!(r.body, ResultBody::Correlation(_))) {
                        repeats.fired(r.header.rule_id.as_deref().unwrap_or_default());
                    }
                    results
                }
                None => detections.into_owned(),
            };
            for r in results {
                let id = r.header.rule_id.clone().unwrap_or_else(|| format!("title:{}", r.header.rule_title));
                // A record evaluated as two categories raises a rule's alert once.
                if !fired.iter().any(|(f, ..)| *f == id) {
                    fired.push((id, Some(r), cat));
                }
            }
        }
        for (id, result, cat) in fired {
            if let Some(r) = result
                && let Some(alert) = self.alert(&id, &r, cat, record, ancestors, ts)
            {
                out.push(Enriched {
                    boot_ns: record.boot_ns,
                    process: record.process.clone(),
                    ancestors: shared(),
                    event: Event::Alert(alert),
                });
            }
        }
    }

    /// The alert for one match, or `None` when it is muted, excepted or suppressed.
    fn alert(
        &mut self,
        id: &str,
        r: &EvaluationResult,
        cat: Category,
        record: &AuditRecord,
        ancestors: Ancestors<'_>,
        ts: i64,
    ) -> Option<AlertEvent> {
        let meta = self.metas.get(id)?.clone();
        if meta.level < self.min_level || self.disabled.contains(id) {
            return None;
        }
        if self.exceptions.iter().any(|e| e.allows(id, record, ancestors)) {
            self.stats.excepted += 1;
            return None;
        }
        let correlation = matches!(r.body, ResultBody::Correlation(_));
        if !correlation && self.suppress_secs > 0 {
            let guid = record.process.as_ref().map(|p| p.guid.clone()).unwrap_or_default();
            let key = (id.to_owned(), guid);
            let window = i64::try_from(self.suppress_secs).unwrap_or(i64::MAX);
            match self.last_alert.get(&key) {
                Some(&last) if ts.saturating_sub(last) < window => {
                    self.stats.suppressed += 1;
                    return None;
                }
                _ => {
                    if self.last_alert.len() >= 65_536 {
                        self.last_alert.retain(|_, t| ts.saturating_sub(*t) < window);
                    }
                    self.last_alert.insert(key, ts);
                }
            }
        }
        self.stats.alerts += 1;
        Some(alert_event(&meta, r, cat, record.seq))
    }
}

/// The correlation engine for `rules` (`None` without correlation rules).
fn correlation_engine(
    rules: &[load::LoadedCorrelation],
    suppress_secs: u64,
) -> Result<Option<CorrelationEngine>, DetectError> {
    if rules.is_empty() {
        return Ok(None);
    }
    let mut ce = CorrelationEngine::new(CorrelationConfig {
        correlation_event_mode: CorrelationEventMode::Refs,
        max_correlation_events: MAX_TRIGGER_SEQS,
        action_on_match: CorrelationAction::Reset,
        suppress: Some(suppress_secs),
        max_group_entries: Some(MAX_WINDOW_ENTRIES),
        max_state_entries: MAX_CORRELATION_GROUPS,
        // Sigma: rules a correlation names alert on their own only with `generate: true`.
        emit_detections: false,
        ..CorrelationConfig::default()
    });
    for c in rules {
        let mut rule = c.rule.clone();
        if let Some(cap) = window_entries(&rule) {
            rule.custom_attributes
                .entry("rsigma.max_group_entries".to_owned())
                .or_insert_with(|| yaml_serde::Value::String(cap.to_string()));
        }
        ce.add_correlation(&rule)
            .map_err(|e| DetectError::Engine { rule: c.meta.id.clone(), reason: e.to_string() })?;
    }
    Ok(Some(ce))
}

/// The per-group window cap of a threshold rule: see [`MIN_WINDOW_ENTRIES`].
fn window_entries(rule: &rsigma_parser::CorrelationRule) -> Option<usize> {
    match &rule.condition {
        rsigma_parser::CorrelationCondition::Threshold { predicates, .. } => {
            let highest = predicates.iter().map(|(_, v)| *v).max()?;
            let cap = usize::try_from(highest.saturating_mul(2)).unwrap_or(usize::MAX);
            Some(cap.max(MIN_WINDOW_ENTRIES))
        }
        rsigma_parser::CorrelationCondition::Extended(_) => None,
    }
}

fn alert_event(meta: &RuleMeta, r: &EvaluationResult, cat: Category, seq: u64) -> AlertEvent {
    let mut a = AlertEvent {
        rule_id: meta.id.clone(),
        title: meta.title.clone(),
        level: meta.level.as_str().to_owned(),
        tags: meta.tags.clone(),
        techniques: meta.techniques.clone(),
        tactics: meta.tactics.clone(),
        description: meta.description.clone(),
        trigger_seqs: vec![seq],
        category: cat.name().to_owned(),
        rule_source: meta.source.clone(),
        author: meta.author.clone(),
        references: meta.references.clone(),
        ..AlertEvent::default()
    };
    match &r.body {
        ResultBody::Detection(d) => {
            a.matched = d
                .matched_fields
                .iter()
                .map(|m| match &m.value {
                    serde_json::Value::String(s) => format!("{}={s}", m.field),
                    v => format!("{}={v}", m.field),
                })
                .collect();
        }
        ResultBody::Correlation(c) => {
            a.correlation_type = c.correlation_type.as_str().to_owned();
            a.group_key = c.group_key.iter().cloned().collect();
            a.count = if c.aggregated_value.is_finite() && c.aggregated_value > 0.0 {
                c.aggregated_value as u64
            } else {
                0
            };
            a.window_secs = c.timespan_secs;
            let mut seqs: Vec<u64> = c
                .event_refs
                .iter()
                .flatten()
                .filter_map(|e| e.id.as_deref().and_then(|s| s.parse().ok()))
                .collect();
            if !seqs.contains(&seq) {
                seqs.push(seq);
            }
            seqs.sort_unstable();
            seqs.dedup();
            let skip = seqs.len().saturating_sub(MAX_TRIGGER_SEQS);
            a.trigger_seqs = seqs.split_off(skip);
        }
    }
    a
}

/// Loads rules for the offline tools (`sensor rules …`) and returns the set with its problems.
pub fn read_rules(sources: &Sources) -> RuleSet {
    load::load(sources)
}

/// Every rule's description, sorted by id (for `sensor rules list`).
pub fn list(set: &RuleSet) -> Vec<Arc<RuleMeta>> {
    let mut v: Vec<Arc<RuleMeta>> = set.metas().cloned().collect();
    v.sort_by(|a, b| a.id.cmp(&b.id));
    v
}

#[cfg(test)]
mod tests;
