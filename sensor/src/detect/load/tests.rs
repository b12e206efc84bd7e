use super::*;

const GOOD: &str = r"
title: Curl Downloads To Tmp
id: t-curl
level: medium
tags: [attack.command_and_control, attack.t1105]
logsource: {product: linux, category: process_creation}
detection:
  sel:
    Image|endswith: /curl
    CommandLine|contains: ' -o /tmp/'
  condition: sel
---
title: Many Renames
id: t-renames
correlation:
  type: event_count
  rules: [renamer]
  group-by: [ProcessGuid]
  timespan: 10s
  condition: {gte: 3}
level: high
---
title: Rename
id: t-rename
name: renamer
logsource: {product: linux, category: file_rename}
detection:
  sel:
    TargetFilename|endswith: .locked
  condition: sel
";

#[test]
fn documents_are_split_with_their_lines() {
    let docs = documents("a: 1\n---\nb: 2\n\n--- \nc: 3");
    assert_eq!(docs.iter().map(|(l, _)| *l).collect::<Vec<_>>(), [1, 3, 6]);
    assert_eq!(docs[1].1, "b: 2\n\n");
}

#[test]
fn rules_and_correlations_load_and_names_resolve() {
    let set = load_text("t.yml", GOOD);
    assert!(set.problems.is_empty(), "{:?}", set.problems);
    assert_eq!(set.rules.len(), 2);
    assert_eq!(set.correlations.len(), 1);
    assert_eq!(set.correlations[0].rule.rules, ["t-rename"], "the name resolves to the id");
    let curl = &set.rules[0].meta;
    assert_eq!((curl.id.as_str(), curl.level), ("t-curl", Level::Medium));
    assert_eq!(curl.techniques, ["T1105"]);
    assert_eq!(curl.kind, RuleKind::Detection { category: Some(Category::ProcessCreation) });
}

fn one_problem(text: &str) -> Problem {
    let set = load_text("bad.yml", text);
    assert_eq!(set.problems.len(), 1, "{:?}", set.problems);
    set.problems[0].clone()
}

#[test]
fn broken_rules_name_file_rule_line_and_reason() {
    let p = one_problem(
        "title: a\nid: ok\nlogsource: {product: linux, category: process_creation}\n\
         detection: {s: {Image: x}, condition: s}\n---\n\
         title: b\nid: bad-mod\nlogsource: {product: linux, category: process_creation}\n\
         detection:\n  s:\n    Image|sometimes: x\n  condition: s\n",
    );
    assert_eq!((p.severity, p.rule.as_deref(), p.line), (Severity::Error, Some("bad-mod"), 6));
    assert!(p.reason.contains("sometimes"), "{p}");
    assert!(p.to_string().starts_with("bad.yml:6: error: rule bad-mod: "), "{p}");

    let p = one_problem(
        "title: c\nid: bad-cond\nlogsource: {product: linux, category: process_creation}\n\
         detection: {s: {Image: x}, condition: s and not filter}\n",
    );
    assert_eq!((p.severity, p.rule.as_deref()), (Severity::Error, Some("bad-cond")));
    assert!(p.reason.contains("filter"), "{p}");

    let p = one_problem("title: d\nid: bad-yaml\ndetection: [unclosed\n");
    assert_eq!(p.severity, Severity::Error);

    let p = one_problem(
        "title: e\nid: bad-re\nlogsource: {product: linux, category: process_creation}\n\
         detection: {s: {Image|re: '(['}, condition: s}\n",
    );
    assert!(p.reason.contains("regex"), "{p}");
}

#[test]
fn duplicate_ids_and_missing_correlation_rules_are_errors() {
    let rule = "title: a\nid: same\nlogsource: {product: linux, category: process_creation}\n\
                detection: {s: {Image: x}, condition: s}\n";
    let p = one_problem(&format!("{rule}---\n{rule}"));
    assert!(p.reason.contains("duplicate rule id"), "{p}");

    let p = one_problem(
        "title: c\nid: corr\ncorrelation: {type: event_count, rules: [nope], group-by: [ProcessGuid], \
         timespan: 1m, condition: {gte: 2}}\n",
    );
    assert!(p.reason.contains("nope"), "{p}");
}

#[test]
fn unsupported_sources_and_fields_are_reported_not_loaded() {
    let p = one_problem(
        "title: a\nid: auditd\nlogsource: {product: linux, service: auditd}\n\
         detection: {s: {type: EXECVE}, condition: s}\n",
    );
    assert_eq!(p.severity, Severity::Unsupported);
    assert!(p.reason.contains("auditd"), "{p}");

    let p = one_problem(
        "title: a\nid: host\nlogsource: {product: linux, category: network_connection}\n\
         detection: {s: {DestinationHostname|endswith: .example}, condition: s}\n",
    );
    assert!(p.reason.contains("DestinationHostname"), "{p}");

    let p = one_problem(
        "title: a\nid: wrongcat\nlogsource: {product: linux, category: process_creation}\n\
         detection: {s: {TargetFilename: /x}, condition: s}\n",
    );
    assert!(p.reason.contains("not present on process_creation"), "{p}");

    let p = one_problem(
        "title: a\nid: win\nlogsource: {product: windows, category: process_creation}\n\
         detection: {s: {Image: x}, condition: s}\n",
    );
    assert!(p.reason.contains("windows"), "{p}");
}

#[test]
fn the_builtin_set_loads_without_problems() {
    let set = load(&Sources { builtin: true, ..Sources::default() });
    assert!(set.problems.is_empty(), "{:#?}", set.problems);
    assert!(!set.rules.is_empty());
    for m in set.metas() {
        assert!(m.id.starts_with("sensor."), "built-in rule ids are sensor.*: {}", m.id);
        assert!(
            !m.techniques.is_empty() && !m.tactics.is_empty(),
            "{} needs ATT&CK technique and tactic tags",
            m.id
        );
        assert!(!m.description.is_empty(), "{} needs a description", m.id);
    }
}

#[test]
fn category_less_keyword_rules_meet_command_lines_and_field_rules_the_actor_text() {
    let text = r"
title: History Cleared
id: t-keywords
logsource: {product: linux}
detection:
  keywords:
    - 'rm *bash_history'
  condition: keywords
---
title: Every Keyword
id: t-all-keywords
logsource: {product: linux}
detection:
  keywords:
    '|all':
      - 'bash -c /bin/bash'
      - '&/dev/tcp/'
  condition: keywords
---
title: Tmp Path
id: t-fields
logsource: {product: linux}
detection:
  sel:
    TargetFilename|startswith: /tmp/
  condition: sel
";
    let set = load_text("t.yml", text);
    assert!(set.problems.is_empty(), "{:?}", set.problems);
    let cats = |id: &str| rule_categories(&set.rules.iter().find(|r| r.meta.id == id).expect(id).meta);
    assert_eq!(cats("t-keywords"), [Category::ProcessCreation]);
    // Keywords written as a mapping without a field name (for the `all` modifier) are keywords.
    assert_eq!(cats("t-all-keywords"), [Category::ProcessCreation]);
    assert_eq!(cats("t-fields"), Category::UNSCOPED);
}
