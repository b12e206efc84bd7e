//! Site exceptions (`[[detection.exception]]`): known-good activity that a rule would flag, allowed
//! by image, ancestor, user or command line, for one rule, several, or all (`"*"`).
//!
//! Patterns are globs on the whole value: `*` matches any run of characters (also `/`), `?` one
//! character. Within one criterion any pattern may match; all given criteria must match.

use regex::Regex;
use sensor_proto::AuditRecord;

use crate::enrich::ancestry::Ancestors;

use super::fields::command_line;

/// One exception as configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExceptionSpec {
    /// Rule ids it applies to; `"*"` for every rule.
    pub rules: Vec<String>,
    /// The acting process's executable.
    pub image: Vec<String>,
    /// Any ancestor's executable.
    pub ancestor_image: Vec<String>,
    /// The acting process's user name (or uid in decimal).
    pub user: Vec<String>,
    /// The acting process's command line.
    pub command_line: Vec<String>,
}

/// A compiled exception.
#[derive(Debug, Clone)]
pub struct Exception {
    rules: Vec<String>,
    image: Vec<Regex>,
    ancestor_image: Vec<Regex>,
    user: Vec<String>,
    command_line: Vec<Regex>,
}

impl Exception {
    /// Compiles a spec; the error names the pattern.
    pub fn new(spec: &ExceptionSpec) -> Result<Self, String> {
        if spec.rules.is_empty() {
            return Err("`rules` is empty: name the rule ids (or \"*\")".into());
        }
        if spec.image.is_empty()
            && spec.ancestor_image.is_empty()
            && spec.user.is_empty()
            && spec.command_line.is_empty()
        {
            return Err("no criterion: give image, ancestor_image, user or command_line".into());
        }
        let globs = |v: &[String]| v.iter().map(|g| glob(g)).collect::<Result<Vec<_>, _>>();
        Ok(Self {
            rules: spec.rules.clone(),
            image: globs(&spec.image)?,
            ancestor_image: globs(&spec.ancestor_image)?,
            user: spec.user.clone(),
            command_line: globs(&spec.command_line)?,
        })
    }

    /// True when this exception allows `rule_id` firing on `record`, whose ancestors are
    /// `ancestors`.
    pub fn allows(&self, rule_id: &str, record: &AuditRecord, ancestors: Ancestors<'_>) -> bool {
        if !self.rules.iter().any(|r| r == "*" || r == rule_id) {
            return false;
        }
        let Some(p) = &record.process else { return false };
        let any = |res: &[Regex], v: &str| res.iter().any(|r| r.is_match(v));
        (self.image.is_empty() || any(&self.image, &p.exe))
            && (self.ancestor_image.is_empty() || ancestors.iter().any(|a| any(&self.ancestor_image, &a.exe)))
            && (self.user.is_empty() || self.user.iter().any(|u| *u == p.user || *u == p.uid.to_string()))
            && (self.command_line.is_empty() || any(&self.command_line, &command_line(&p.argv)))
    }
}

fn glob(pattern: &str) -> Result<Regex, String> {
    let mut re = String::with_capacity(pattern.len() + 8);
    re.push_str("^(?s:");
    for c in pattern.chars() {
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push_str(")$");
    Regex::new(&re).map_err(|e| format!("pattern `{pattern}`: {e}"))
}

#[cfg(test)]
mod tests {
    use sensor_proto::v1::{Ancestor, Process};

    use super::*;

    fn rec(exe: &str, user: &str, parent: &str) -> AuditRecord {
        AuditRecord {
            process: Some(Box::new(Process {
                exe: exe.into(),
                user: user.into(),
                uid: 1000,
                argv: vec![exe.into(), "-x".into()],
                ..Default::default()
            })),
            ancestors: vec![Ancestor { exe: parent.into(), ..Default::default() }],
            ..Default::default()
        }
    }

    fn allows(e: &Exception, rule_id: &str, r: &AuditRecord) -> bool {
        e.allows(rule_id, r, Ancestors::Listed(&r.ancestors))
    }

    #[test]
    fn all_criteria_must_match_and_rules_must_be_named() {
        let e = Exception::new(&ExceptionSpec {
            rules: vec!["r1".into()],
            image: vec!["/usr/bin/*".into()],
            ancestor_image: vec!["*/ansible*".into()],
            ..Default::default()
        })
        .expect("compiles");
        assert!(allows(&e, "r1", &rec("/usr/bin/curl", "root", "/usr/bin/ansible-playbook")));
        assert!(!allows(&e, "r2", &rec("/usr/bin/curl", "root", "/usr/bin/ansible-playbook")));
        assert!(!allows(&e, "r1", &rec("/tmp/curl", "root", "/usr/bin/ansible-playbook")));
        assert!(!allows(&e, "r1", &rec("/usr/bin/curl", "root", "/usr/sbin/sshd")));

        let any = Exception::new(&ExceptionSpec {
            rules: vec!["*".into()],
            user: vec!["1000".into()],
            command_line: vec!["* -x".into()],
            ..Default::default()
        })
        .expect("compiles");
        assert!(allows(&any, "whatever", &rec("/bin/x", "", "/sbin/init")));
    }

    #[test]
    fn empty_specs_are_refused() {
        assert!(Exception::new(&ExceptionSpec::default()).is_err());
        assert!(Exception::new(&ExceptionSpec { rules: vec!["*".into()], ..Default::default() }).is_err());
    }
}
