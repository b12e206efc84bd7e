//! Reading rule files: the built-in set and the site's files and directories → parsed rules and
//! a list of problems, each naming the file, the rule and what is wrong.
//!
//! A file may hold several YAML documents (`---`); each is parsed on its own so a problem names
//! the document's rule. Errors (a document that does not parse, a rule that does not compile, a
//! duplicate id) stop the sensor's start; "unsupported" findings (a log source the sensor does
//! not produce, a field it does not provide) are reported and the rule is left out.

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
};

use rsigma_eval::{CompiledRule, compile_rule};
use rsigma_parser::{CorrelationRule, FilterRule, SigmaRule, parse_sigma_yaml};

use super::{
    category::Category,
    meta::{Level, RuleKind, RuleMeta, SharedMeta, attack_tags},
    validate,
};

/// Rule files larger than this are refused (a rule set is text written by people).
pub const MAX_RULE_FILE_BYTES: u64 = 4 << 20;

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The rule is left out because the sensor cannot evaluate it as written.
    Unsupported,
    /// The file or rule is broken: the sensor refuses to start with it.
    Error,
}

/// One thing wrong with a rule file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    /// The rule file (`builtin:NAME` for the built-in set).
    pub file: String,
    /// The rule's id (or title), when the document got that far.
    pub rule: Option<String>,
    /// 1-based line where the document starts.
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.severity {
            Severity::Error => "error",
            Severity::Unsupported => "unsupported",
        };
        write!(f, "{}:{}: {what}", self.file, self.line)?;
        if let Some(r) = &self.rule {
            write!(f, ": rule {r}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// A detection rule ready for the engine.
#[derive(Debug, Clone)]
pub struct LoadedRule {
    pub compiled: CompiledRule,
    pub meta: SharedMeta,
}

/// A correlation rule, its `rules:` resolved to rule ids.
#[derive(Debug, Clone)]
pub struct LoadedCorrelation {
    pub rule: CorrelationRule,
    pub meta: SharedMeta,
}

/// Everything read from the rule sources.
#[derive(Debug, Default, Clone)]
pub struct RuleSet {
    pub rules: Vec<LoadedRule>,
    pub correlations: Vec<LoadedCorrelation>,
    /// Sigma filter documents (applied to the rules they name).
    pub filters: Vec<FilterRule>,
    pub problems: Vec<Problem>,
    /// Files read.
    pub files: usize,
}

impl RuleSet {
    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|p| p.severity == Severity::Error)
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    /// Every loaded rule's description, detection rules first.
    pub fn metas(&self) -> impl Iterator<Item = &SharedMeta> {
        self.rules.iter().map(|r| &r.meta).chain(self.correlations.iter().map(|c| &c.meta))
    }
}

/// The built-in rule set (`rules/` in the repository), embedded at build time.
pub static BUILTIN: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/builtin_rules.rs"));

/// The site's rule directory the package creates; read when it exists.
pub const SITE_RULES: &str = "/etc/sensor/rules.d";

/// Where rules come from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// Load the built-in set.
    pub builtin: bool,
    /// Rule files, or directories searched (recursively) for `*.yml` and `*.yaml`. Each must
    /// exist.
    pub paths: Vec<PathBuf>,
    /// A directory read only when it exists (the site's drop-in directory, [`SITE_RULES`]).
    pub optional_dir: Option<PathBuf>,
}

/// Reads every source. Never fails: whatever is wrong is in `problems`.
pub fn load(sources: &Sources) -> RuleSet {
    let mut loader = Loader::default();
    if sources.builtin {
        for (name, text) in BUILTIN {
            loader.file(&format!("builtin:{name}"), text);
        }
    }
    for path in &sources.paths {
        loader.path(path);
    }
    if let Some(dir) = &sources.optional_dir
        && dir.is_dir()
        && !sources.paths.contains(dir)
    {
        loader.path(dir);
    }
    loader.finish()
}

/// Reads rules from text (tests and tools).
pub fn load_text(name: &str, text: &str) -> RuleSet {
    let mut loader = Loader::default();
    loader.file(name, text);
    loader.finish()
}

#[derive(Default)]
struct Loader {
    set: RuleSet,
    /// Rule id → where it was first defined.
    ids: HashMap<String, String>,
    /// Rule `name` → id (correlations may reference either).
    names: HashMap<String, String>,
}

impl Loader {
    fn path(&mut self, path: &Path) {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) => return self.error(&path.display().to_string(), None, 1, format!("cannot read: {e}")),
        };
        if meta.is_dir() {
            let mut files = Vec::new();
            collect_rule_files(path, 0, &mut files, &mut |p, e| {
                self.set.problems.push(Problem {
                    severity: Severity::Error,
                    file: p.display().to_string(),
                    rule: None,
                    line: 1,
                    reason: format!("cannot read: {e}"),
                });
            });
            files.sort();
            for f in files {
                self.read_file(&f);
            }
        } else {
            self.read_file(path);
        }
    }

    fn read_file(&mut self, path: &Path) {
        let name = path.display().to_string();
        match std::fs::metadata(path) {
            Ok(m) if m.len() > MAX_RULE_FILE_BYTES => {
                return self.error(&name, None, 1, format!("larger than {MAX_RULE_FILE_BYTES} bytes"));
            }
            Err(e) => return self.error(&name, None, 1, format!("cannot read: {e}")),
            Ok(_) => {}
        }
        match std::fs::read(path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => self.file(&name, &text),
                Err(e) => self.error(&name, None, 1, format!("not UTF-8 text: {e}")),
            },
            Err(e) => self.error(&name, None, 1, format!("cannot read: {e}")),
        }
    }

    fn file(&mut self, file: &str, text: &str) {
        self.set.files += 1;
        for (line, doc) in documents(text) {
            if doc.trim().is_empty()
                || doc.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
            {
                continue;
            }
            self.document(file, line, doc);
        }
    }

    fn document(&mut self, file: &str, line: usize, doc: &str) {
        let collection = match parse_sigma_yaml(doc) {
            Ok(c) => c,
            Err(e) => return self.error(file, guess_rule(doc), line, e.to_string()),
        };
        for e in &collection.errors {
            self.error(file, guess_rule(doc), line, e.clone());
        }
        for rule in collection.rules {
            self.rule(file, line, rule);
        }
        for mut corr in collection.correlations {
            temporal_default(doc, &mut corr);
            self.correlation(file, line, corr);
        }
        self.set.filters.extend(collection.filters);
    }

    fn rule(&mut self, file: &str, line: usize, mut rule: SigmaRule) {
        let key = rule.id.clone().unwrap_or_else(|| format!("title:{}", rule.title));
        if !self.claim_id(file, line, &key, rule.name.as_deref()) {
            return;
        }
        let category = match validate::logsource(&rule.logsource) {
            // A rule of keywords only and no category searches text written for a shell or a log
            // line: on our records, the command line of an exec (see `Category::UNSCOPED`).
            Ok(None) if keywords_only(&rule.detection) => Some(Category::ProcessCreation),
            Ok(c) => c,
            Err(reason) => return self.unsupported(file, &key, line, reason),
        };
        if let Err(reason) = validate::fields(&rule.detection, category) {
            return self.unsupported(file, &key, line, reason);
        }
        if rule.detection.timeframe.is_some() {
            return self.unsupported(
                file,
                &key,
                line,
                "`timeframe` aggregations are deprecated in Sigma; write a correlation rule".into(),
            );
        }
        rule.id = Some(key.clone());
        let compiled = match compile_rule(&rule) {
            Ok(mut c) => {
                super::prefilter::add_witnesses(&mut c);
                c
            }
            Err(e) => return self.error(file, Some(key), line, e.to_string()),
        };
        let (techniques, tactics) = attack_tags(&rule.tags);
        let meta = RuleMeta {
            id: key,
            title: rule.title.clone(),
            level: Level::from_sigma(rule.level.as_ref()),
            techniques,
            tactics,
            tags: rule.tags.clone(),
            description: rule.description.clone().unwrap_or_default().trim().to_owned(),
            author: rule.author.clone().unwrap_or_default(),
            references: rule.references.clone(),
            source: file.to_owned(),
            status: rule.status.map(|s| format!("{s:?}").to_ascii_lowercase()).unwrap_or_default(),
            kind: RuleKind::Detection { category },
        };
        self.set.rules.push(LoadedRule { compiled, meta: Arc::new(meta) });
    }

    fn correlation(&mut self, file: &str, line: usize, corr: CorrelationRule) {
        let key = corr.id.clone().unwrap_or_else(|| format!("title:{}", corr.title));
        if !self.claim_id(file, line, &key, corr.name.as_deref()) {
            return;
        }
        if let Err(reason) = validate::correlation(&corr) {
            return self.unsupported(file, &key, line, reason);
        }
        let (techniques, tactics) = attack_tags(&corr.tags);
        let meta = RuleMeta {
            id: key,
            title: corr.title.clone(),
            level: Level::from_sigma(corr.level.as_ref()),
            techniques,
            tactics,
            tags: corr.tags.clone(),
            description: corr.description.clone().unwrap_or_default().trim().to_owned(),
            author: corr.author.clone().unwrap_or_default(),
            references: corr.references.clone(),
            source: file.to_owned(),
            status: corr.status.map(|s| format!("{s:?}").to_ascii_lowercase()).unwrap_or_default(),
            kind: RuleKind::Correlation {
                correlation_type: validate::correlation_type_name(corr.correlation_type).to_owned(),
                rules: corr.rules.clone(),
                group_by: corr.group_by.clone(),
                window_secs: corr.timespan.seconds,
            },
        };
        self.set.correlations.push(LoadedCorrelation { rule: corr, meta: Arc::new(meta) });
    }

    /// Records `key` as defined here; false (and an error) when another rule has it.
    fn claim_id(&mut self, file: &str, line: usize, key: &str, name: Option<&str>) -> bool {
        if let Some(first) = self.ids.get(key) {
            let reason = format!("duplicate rule id (first defined in {first})");
            self.error(file, Some(key.to_owned()), line, reason);
            return false;
        }
        self.ids.insert(key.to_owned(), format!("{file}:{line}"));
        if let Some(n) = name {
            self.names.insert(n.to_owned(), key.to_owned());
        }
        true
    }

    fn error(&mut self, file: &str, rule: Option<String>, line: usize, reason: String) {
        self.set.problems.push(Problem {
            severity: Severity::Error,
            file: file.to_owned(),
            rule,
            line,
            reason,
        });
    }

    fn unsupported(&mut self, file: &str, rule: &str, line: usize, reason: String) {
        self.set.problems.push(Problem {
            severity: Severity::Unsupported,
            file: file.to_owned(),
            rule: Some(rule.to_owned()),
            line,
            reason,
        });
    }

    /// Resolves correlation references (ids or names) and drops correlations whose rules are
    /// missing.
    fn finish(mut self) -> RuleSet {
        let known: BTreeMap<&str, ()> = self.set.rules.iter().map(|r| (r.meta.id.as_str(), ())).collect();
        let mut kept = Vec::new();
        for mut c in std::mem::take(&mut self.set.correlations) {
            let mut missing = Vec::new();
            for r in &mut c.rule.rules {
                if known.contains_key(r.as_str()) {
                    continue;
                }
                match self.names.get(r.as_str()) {
                    Some(id) if known.contains_key(id.as_str()) => *r = id.clone(),
                    _ => missing.push(r.clone()),
                }
            }
            // Aliases name rules the same ways `rules:` does.
            for a in &mut c.rule.aliases {
                a.mapping = std::mem::take(&mut a.mapping)
                    .into_iter()
                    .map(|(r, f)| match self.names.get(&r) {
                        Some(id) if !known.contains_key(r.as_str()) => (id.clone(), f),
                        _ => (r, f),
                    })
                    .collect();
            }
            if missing.is_empty() {
                let mut meta = (*c.meta).clone();
                if let RuleKind::Correlation { rules, .. } = &mut meta.kind {
                    rules.clone_from(&c.rule.rules);
                }
                c.meta = Arc::new(meta);
                kept.push(c);
            } else {
                let (file, line) = (c.meta.source.clone(), self.line_of(&c.meta.id));
                let reason = format!("refers to rules that are not loaded: {}", missing.join(", "));
                let problem =
                    Problem { severity: Severity::Error, file, rule: Some(c.meta.id.clone()), line, reason };
                self.set.problems.push(problem);
            }
        }
        self.set.correlations = kept;
        self.set
    }

    fn line_of(&self, id: &str) -> usize {
        self.ids.get(id).and_then(|at| at.rsplit_once(':')).and_then(|(_, l)| l.parse().ok()).unwrap_or(1)
    }
}

/// Sigma: a temporal correlation without a `condition` needs every rule it names in the window
/// (the parser would otherwise default to any one of them).
fn temporal_default(doc: &str, corr: &mut CorrelationRule) {
    use rsigma_parser::{ConditionOperator, CorrelationCondition, CorrelationType};
    if !matches!(corr.correlation_type, CorrelationType::Temporal | CorrelationType::TemporalOrdered) {
        return;
    }
    let has_condition = yaml_serde::from_str::<yaml_serde::Value>(doc)
        .ok()
        .and_then(|v| v.get("correlation").map(|c| c.get("condition").is_some()))
        .unwrap_or(true);
    if !has_condition {
        let n = u64::try_from(corr.rules.len()).unwrap_or(u64::MAX);
        corr.condition = CorrelationCondition::Threshold {
            predicates: vec![(ConditionOperator::Gte, n)],
            field: None,
            percentile: None,
        };
    }
}

/// Splits YAML text into documents at `---` lines; yields each with its first line (1-based).
fn documents(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = 0usize;
    let mut start_line = 1usize;
    let mut offset = 0usize;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let trimmed = line.trim_end();
        if trimmed == "---" || trimmed.starts_with("--- ") || trimmed == "..." {
            out.push((start_line, &text[start..offset]));
            start = offset + line.len();
            start_line = i + 2;
        }
        offset += line.len();
    }
    out.push((start_line, &text[start..]));
    out
}

/// The id or title of a document that did not parse, read line by line.
fn guess_rule(doc: &str) -> Option<String> {
    let find = |key: &str| {
        doc.lines().find_map(|l| {
            let v = l.strip_prefix(key)?.trim().trim_matches(|c| c == '\'' || c == '"');
            (!v.is_empty()).then(|| v.to_owned())
        })
    };
    find("id:").or_else(|| find("title:").map(|t| format!("title:{t}")))
}

/// Rule files under `dir` (at most 16 levels deep; hidden entries skipped).
fn collect_rule_files(
    dir: &Path,
    depth: usize,
    out: &mut Vec<PathBuf>,
    on_error: &mut dyn FnMut(&Path, std::io::Error),
) {
    if depth > 16 {
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => return on_error(dir, e),
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        match entry.file_type() {
            Ok(t) if t.is_dir() => collect_rule_files(&path, depth + 1, out, on_error),
            Ok(_) if matches!(path.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")) => {
                out.push(path)
            }
            Ok(_) => {}
            Err(e) => on_error(&path, e),
        }
    }
}

/// True when every detection of the rule is field-less (keywords), also when written as a
/// mapping with a modifier and no field name (`'|all': [...]`).
fn keywords_only(d: &rsigma_parser::Detections) -> bool {
    fn keywords(d: &rsigma_parser::Detection) -> bool {
        match d {
            rsigma_parser::Detection::Keywords(_) => true,
            rsigma_parser::Detection::AllOf(items) => {
                !items.is_empty() && items.iter().all(|i| i.field.name.is_none())
            }
            rsigma_parser::Detection::AnyOf(v) => v.iter().all(keywords),
            _ => false,
        }
    }
    !d.named.is_empty() && d.named.values().all(keywords)
}

/// Categories a loaded detection rule is evaluated on.
pub fn rule_categories(meta: &RuleMeta) -> Vec<Category> {
    match &meta.kind {
        RuleKind::Detection { category: Some(c) } => vec![*c],
        RuleKind::Detection { category: None } => Category::UNSCOPED.to_vec(),
        RuleKind::Correlation { .. } => Vec::new(),
    }
}

#[cfg(test)]
mod tests;
