//! What an alert says about its rule: id, title, level, ATT&CK tags, description, author, source.

use std::sync::Arc;

use super::category::Category;

/// Sigma's levels, lowest first (the order is the severity order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Level {
    Informational,
    #[default]
    Low,
    Medium,
    High,
    Critical,
}

impl Level {
    pub const ALL: [Self; 5] = [Self::Informational, Self::Low, Self::Medium, Self::High, Self::Critical];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Informational => "informational",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == s)
    }

    pub(super) fn from_sigma(l: Option<&rsigma_parser::Level>) -> Self {
        use rsigma_parser::Level as L;
        match l {
            Some(L::Informational) => Self::Informational,
            Some(L::Low) | None => Self::Low,
            Some(L::Medium) => Self::Medium,
            Some(L::High) => Self::High,
            Some(L::Critical) => Self::Critical,
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a rule matches one record or a group of records over time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleKind {
    /// A detection rule, evaluated on records of these categories (all when `None`).
    Detection { category: Option<Category> },
    /// A correlation rule over the detection rules it names.
    Correlation { correlation_type: String, rules: Vec<String>, group_by: Vec<String>, window_secs: u64 },
}

/// A loaded rule's description, shared by every alert it raises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleMeta {
    /// The rule's id; rules without one are known by `title:<title>`.
    pub id: String,
    pub title: String,
    pub level: Level,
    pub tags: Vec<String>,
    pub techniques: Vec<String>,
    pub tactics: Vec<String>,
    pub description: String,
    pub author: String,
    pub references: Vec<String>,
    /// `builtin:FILE` or the rule file's path.
    pub source: String,
    pub status: String,
    pub kind: RuleKind,
}

pub type SharedMeta = Arc<RuleMeta>;

/// ATT&CK tactics as Sigma tags name them (`attack.<tactic>`).
const TACTICS: &[&str] = &[
    "reconnaissance",
    "resource_development",
    "resource-development",
    "initial_access",
    "initial-access",
    "execution",
    "persistence",
    "privilege_escalation",
    "privilege-escalation",
    "defense_evasion",
    "defense-evasion",
    "credential_access",
    "credential-access",
    "discovery",
    "lateral_movement",
    "lateral-movement",
    "collection",
    "command_and_control",
    "command-and-control",
    "exfiltration",
    "impact",
];

/// Splits Sigma tags into ATT&CK technique ids (`T1059.004`) and tactics (`execution`).
pub fn attack_tags(tags: &[String]) -> (Vec<String>, Vec<String>) {
    let mut techniques = Vec::new();
    let mut tactics = Vec::new();
    for tag in tags {
        let Some(rest) = tag.strip_prefix("attack.") else { continue };
        let lower = rest.to_ascii_lowercase();
        if let Some(num) = lower.strip_prefix('t')
            && !num.is_empty()
            && num.chars().all(|c| c.is_ascii_digit() || c == '.')
        {
            techniques.push(format!("T{num}"));
        } else if TACTICS.contains(&lower.as_str()) {
            tactics.push(lower.replace('-', "_"));
        }
    }
    (techniques, tactics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_order_and_parse() {
        assert!(Level::Critical > Level::High && Level::Medium > Level::Informational);
        assert_eq!(Level::parse("medium"), Some(Level::Medium));
        assert_eq!(Level::parse("severe"), None);
    }

    #[test]
    fn attack_tags_split_into_techniques_and_tactics() {
        let tags: Vec<String> = [
            "attack.execution",
            "attack.t1059.004",
            "attack.T1105",
            "attack.defense-evasion",
            "car.2013-05-002",
            "attack.g0032",
        ]
        .map(String::from)
        .into();
        let (t, c) = attack_tags(&tags);
        assert_eq!(t, ["T1059.004", "T1105"]);
        assert_eq!(c, ["execution", "defense_evasion"]);
    }
}
