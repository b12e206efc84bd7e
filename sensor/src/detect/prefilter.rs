//! Literal prefilters for case-insensitive regexes, so that rules written with wildcards in the
//! middle of a value (`'cat /dev/null >*sh_history'`) or with `|re|i` meet only the records
//! that can match them.
//!
//! rsigma indexes each rule by a literal every match must contain (a "witness") and evaluates
//! a rule only on records that contain one. It finds those literals in regexes too, but not in
//! case-insensitive ones: Sigma compiles a wildcard value to a regex with an inline `(?i)`,
//! whose syntax tree has a character class per letter instead of a literal. Such rules were
//! evaluated on every record of their category (for the SigmaHQ keyword rules, every exec,
//! regex by regex, on six fields).
//!
//! [`add_witnesses`] rewrites every such `Regex` matcher `r` into `AllOf[Contains(l), r]`,
//! where `l` is a literal every match of `r` contains (ASCII-case-insensitively). That is
//! the same matcher — `r` implies `Contains(l)` — that rsigma can now index, and whose cheap
//! substring test runs before the regex.
//!
//! Soundness: the literal is taken from the pattern read case-sensitively and then cut at
//! every character whose case-insensitive class holds a character outside ASCII (`k`, `s`:
//! the Kelvin sign and the long s), and at non-ASCII characters. What remains matches, under
//! `(?i)`, only its own ASCII case variants, which lowercase to the literal.

use std::sync::LazyLock;

use regex_syntax::hir::{Class, Hir, HirKind};
use rsigma_eval::{CompiledDetection, CompiledMatcher, CompiledRule, matcher::GroupMode};

/// Shorter literals select too much to be worth a prefilter.
const MIN_LITERAL: usize = 3;

/// Adds literal prefilters to the case-insensitive regexes of `rule` (see the module docs).
pub fn add_witnesses(rule: &mut CompiledRule) {
    for d in rule.detections.values_mut() {
        detection(d);
    }
}

fn detection(d: &mut CompiledDetection) {
    match d {
        CompiledDetection::AllOf(items) => items.iter_mut().for_each(|i| matcher(&mut i.matcher)),
        CompiledDetection::AnyOf(ds) | CompiledDetection::And(ds) => ds.iter_mut().for_each(detection),
        CompiledDetection::Keywords(m) => matcher(m),
        CompiledDetection::ArrayMatch { body, .. } => detection(body),
        CompiledDetection::Conditional { named, .. } => named.values_mut().for_each(detection),
    }
}

fn matcher(m: &mut CompiledMatcher) {
    let prefilter = match m {
        CompiledMatcher::Regex(re) => literals(re.as_str()).map(contains_any),
        CompiledMatcher::RegexSetMatch { set, mode } => {
            let per_pattern: Option<Vec<Vec<String>>> = set.patterns().iter().map(|p| literals(p)).collect();
            per_pattern.and_then(|mut lits| match mode {
                // Any pattern may match: one of their literals must be there.
                GroupMode::Any => Some(contains_any(lits.concat())),
                // Every pattern matches: the literals of one of them must be there.
                GroupMode::All => lits.pop().map(contains_any),
            })
        }
        // Inside a case-insensitive group the children see the value ASCII-lowercased, which
        // `Contains` of a lowercase ASCII literal (and `AllOf`) handle like any other child.
        CompiledMatcher::AnyOf(children)
        | CompiledMatcher::AllOf(children)
        | CompiledMatcher::CaseInsensitiveGroup { children, .. } => {
            children.iter_mut().for_each(matcher);
            None
        }
        CompiledMatcher::Not(inner) => {
            matcher(inner);
            None
        }
        _ => None,
    };
    if let Some(p) = prefilter {
        let regex = std::mem::replace(m, CompiledMatcher::Null);
        *m = CompiledMatcher::AllOf(vec![p, regex]);
    }
}

/// `Contains(l)` for one literal, an `AnyOf` of them for several.
fn contains_any(mut lits: Vec<String>) -> CompiledMatcher {
    let one = |value| CompiledMatcher::Contains { value, case_insensitive: true };
    if lits.len() == 1 {
        return one(lits.remove(0));
    }
    CompiledMatcher::AnyOf(lits.into_iter().map(one).collect())
}

/// Lowercase literals, one of which every match of `pattern` contains, for a pattern with a
/// leading `(?i)` and no other flag; `None` for every other pattern (rsigma reads the literals
/// of case-sensitive patterns itself) or when no literal of [`MIN_LITERAL`] bytes exists.
fn literals(pattern: &str) -> Option<Vec<String>> {
    let rest = pattern.strip_prefix("(?i)")?;
    if rest.contains("(?") {
        return None;
    }
    let hir = regex_syntax::ParserBuilder::new().build().parse(rest).ok()?;
    let lits = mandatory(&hir)?;
    lits.iter().all(|l| l.len() >= MIN_LITERAL).then_some(lits)
}

/// Lowercase literals, one of which every match of `hir` contains under `(?i)`.
fn mandatory(hir: &Hir) -> Option<Vec<String>> {
    match hir.kind() {
        // The longest run of characters that `(?i)` matches only in ASCII case variants.
        HirKind::Literal(lit) => std::str::from_utf8(&lit.0)
            .ok()?
            .split(|c: char| !c.is_ascii() || FOLDS_OUTSIDE_ASCII.contains(&c.to_ascii_lowercase()))
            .max_by_key(|s| s.len())
            .filter(|s| !s.is_empty())
            .map(|s| vec![s.to_ascii_lowercase()]),
        // Every part is required: the part whose shortest literal is longest.
        HirKind::Concat(parts) => parts
            .iter()
            .filter_map(mandatory)
            .max_by_key(|l| (l.iter().map(String::len).min().unwrap_or(0), std::cmp::Reverse(l.len()))),
        // One branch is required: every branch must give literals.
        HirKind::Alternation(branches) => {
            let mut all = Vec::new();
            for b in branches {
                all.extend(mandatory(b)?);
            }
            Some(all)
        }
        HirKind::Repetition(rep) if rep.min >= 1 => mandatory(&rep.sub),
        HirKind::Capture(cap) => mandatory(&cap.sub),
        _ => None,
    }
}

/// ASCII letters that `(?i)` also matches with a character outside ASCII (the Kelvin sign for
/// `k`, the long s for `s`), read from the regex parser's own case folding.
static FOLDS_OUTSIDE_ASCII: LazyLock<Vec<char>> = LazyLock::new(|| {
    ('a'..='z')
        .filter(|c| {
            let Ok(hir) =
                regex_syntax::ParserBuilder::new().case_insensitive(true).build().parse(&c.to_string())
            else {
                return true;
            };
            match hir.kind() {
                HirKind::Class(Class::Unicode(cls)) => cls.ranges().iter().any(|r| !r.end().is_ascii()),
                HirKind::Class(Class::Bytes(cls)) => cls.ranges().iter().any(|r| !r.end().is_ascii()),
                HirKind::Literal(_) => false,
                _ => true,
            }
        })
        .collect()
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_k_and_s_fold_outside_ascii() {
        assert_eq!(*FOLDS_OUTSIDE_ASCII, vec!['k', 's']);
    }

    #[test]
    fn wildcard_patterns_give_their_longest_safe_literal() {
        assert_eq!(literals(r"(?i)cat /dev/null >.*sh_history"), Some(vec!["cat /dev/null >".to_owned()]));
        // `s` and `k` are cut out: "shred " → "hred ", longer than "tory" of "_history".
        assert_eq!(literals(r"(?i)shred .*_history"), Some(vec!["hred ".to_owned()]));
        assert_eq!(literals(r"(?i)^/usr/bin/(curl|wget)$"), Some(vec!["r/bin/".to_owned()]));
        assert_eq!(literals(r"(?i)(nc|ncat) -e"), Some(vec![" -e".to_owned()]));
        assert_eq!(literals(r"(?i)(wget|curl).*\|"), Some(vec!["wget".to_owned(), "curl".to_owned()]));
        assert_eq!(literals(r"(?i)(ab|cd).*"), None, "a branch without a literal of three bytes");
        assert_eq!(literals(r"cat .*history"), None, "case-sensitive: rsigma reads it itself");
        assert_eq!(literals(r"(?i)a.*b"), None);
    }

    #[test]
    fn a_prefiltered_regex_matches_exactly_what_it_matched() {
        let re = regex::Regex::new(r"(?i)cat /dev/null >.*sh_history").unwrap();
        let mut m = CompiledMatcher::Regex(re);
        matcher(&mut m);
        assert!(matches!(&m, CompiledMatcher::AllOf(v) if v.len() == 2));
        let event = rsigma_eval::PlainEvent::new(String::new());
        for (text, hit) in [
            ("CAT /DEV/NULL > ~/.bash_history", true),
            ("cat /dev/null > ~/.zsh_history", true),
            ("cat /dev/null > notes.txt", false),
            ("cat /dev/zero > ~/.bash_history", false),
        ] {
            let v = rsigma_eval::EventValue::Str(text.into());
            assert_eq!(m.matches(&v, &event), hit, "{text}");
        }
    }

    /// A SigmaHQ keyword rule (wildcards inside a case-insensitive group) is rewritten and still
    /// matches what it matched, through rsigma's index.
    #[test]
    fn a_keyword_rule_keeps_its_matches() {
        // The SigmaHQ test rules beside the repository (or where the machine keeps them).
        let rule = "rules/linux/builtin/lnx_shell_clear_cmd_history.yml";
        let yaml = [
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/sigma"),
            "/work/shared/sigma".into(),
        ]
        .iter()
        .find_map(|root| std::fs::read_to_string(root.join(rule)).ok())
        .expect("the SigmaHQ test rules (../shared/sigma next to the repository)");
        let collection = rsigma_parser::parse_sigma_yaml(&yaml).expect("parses");
        let mut rule = rsigma_eval::compile_rule(&collection.rules[0]).expect("compiles");
        add_witnesses(&mut rule);
        let dump = format!("{:?}", rule.detections);
        assert!(dump.contains("\"cat /dev/null >\""), "the regex set got its literals: {dump}");
        let mut engine = rsigma_eval::Engine::new();
        engine.add_compiled_rule(rule);
        for (line, hit) in [
            ("cat /dev/null > /root/.bash_history", true),
            ("SHRED -u /home/nurse/.zsh_history", true),
            ("history -c", true),
            ("cat /dev/null > /tmp/x", false),
            ("ls -l /home/nurse", false),
        ] {
            let event = serde_json::json!({ "CommandLine": line, "Image": "/usr/bin/bash" });
            let found = !engine.evaluate(&rsigma_eval::JsonEvent::borrow(&event)).is_empty();
            assert_eq!(found, hit, "{line}");
        }
    }
}
