//! `[detection]`: which rules, from which level, what is muted, and the site's exceptions.
//!
//! ```toml
//! [detection]
//! rules = ["/srv/soc/rules"]        # Sigma files or directories, added to the built-in set
//! site_rules = "/etc/sensor/rules.d" # read when it exists ("" turns it off)
//! builtin = true                     # the built-in rule set
//! min_level = "low"                  # informational, low, medium, high, critical
//! disable = ["sensor.discovery.burst"]
//! suppress = "60s"                   # one alert per rule and process per this long
//!
//! [[detection.exception]]
//! rules = ["sensor.execution.shell_from_service"]
//! ancestor_image = ["/opt/monitoring/bin/*"]
//! ```

use std::path::PathBuf;

use serde::Deserialize;

use super::{Validator, units::HumanDuration};
use crate::detect::{DetectConfig, Level, exceptions::ExceptionSpec};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DetectionSection {
    enabled: Option<bool>,
    builtin: Option<bool>,
    #[serde(default)]
    rules: Vec<PathBuf>,
    site_rules: Option<PathBuf>,
    min_level: Option<String>,
    #[serde(default)]
    disable: Vec<String>,
    suppress: Option<HumanDuration>,
    #[serde(default)]
    exception: Vec<ExceptionSection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExceptionSection {
    #[serde(default)]
    rules: Vec<String>,
    #[serde(default)]
    image: Vec<String>,
    #[serde(default)]
    ancestor_image: Vec<String>,
    #[serde(default)]
    user: Vec<String>,
    #[serde(default)]
    command_line: Vec<String>,
}

impl Validator {
    pub(super) fn detection(&mut self, d: DetectionSection) -> DetectConfig {
        let mut c = DetectConfig::default();
        c.enabled = d.enabled.unwrap_or(c.enabled);
        c.sources.builtin = d.builtin.unwrap_or(c.sources.builtin);
        for (i, p) in d.rules.iter().enumerate() {
            self.absolute(&format!("detection.rules[{i}]"), p);
        }
        c.sources.paths = d.rules;
        if let Some(dir) = d.site_rules {
            if dir.as_os_str().is_empty() {
                c.sources.optional_dir = None;
            } else {
                self.absolute("detection.site_rules", &dir);
                c.sources.optional_dir = Some(dir);
            }
        }
        if let Some(l) = d.min_level {
            match Level::parse(&l) {
                Some(level) => c.min_level = level,
                None => self.problem(
                    "detection.min_level",
                    format!("`{l}` is not a level (informational, low, medium, high, critical)"),
                ),
            }
        }
        for (i, id) in d.disable.iter().enumerate() {
            if id.trim().is_empty() {
                self.problem(format!("detection.disable[{i}]"), "empty rule id");
            }
        }
        c.disable = d.disable;
        if let Some(HumanDuration(s)) = d.suppress {
            c.suppress_secs = s.as_secs();
        }
        for (i, e) in d.exception.into_iter().enumerate() {
            let spec = ExceptionSpec {
                rules: e.rules,
                image: e.image,
                ancestor_image: e.ancestor_image,
                user: e.user,
                command_line: e.command_line,
            };
            if let Err(reason) = crate::detect::exceptions::Exception::new(&spec) {
                self.problem(format!("detection.exception[{i}]"), reason);
            }
            c.exceptions.push(spec);
        }
        c
    }
}
