//! The Debian archives this machine's apt already uses, read from its own configuration
//! (`/etc/apt/sources.list.d/*.sources` in deb822 form, `/etc/apt/sources.list` and
//! `sources.list.d/*.list` in one-line form). `vm-test` keeps their URIs and signing keys and
//! only asks them for other suites, so the project names no mirror of its own.

use std::{fs, path::Path};

use anyhow::bail;

/// One `deb` entry of an apt source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub uri: String,
    pub suites: Vec<String>,
    /// `Signed-By` / `[signed-by=…]`: a keyring path (or an inline key, kept as given).
    pub signed_by: Option<String>,
}

/// The machine's Debian archive (main suites) and security archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirrors {
    pub archive: Source,
    pub security: Source,
    /// True when no security source was configured and its URI was derived from the archive's
    /// (`…/debian` → `…/debian-security`, the layout of Debian's mirrors).
    pub security_derived: bool,
}

/// Release names a Debian suite starts with (`bookworm`, `bookworm-security`, …).
const DEBIAN_SUITES: [&str; 11] = [
    "buster",
    "bullseye",
    "bookworm",
    "trixie",
    "forky",
    "duke",
    "sid",
    "stable",
    "oldstable",
    "testing",
    "unstable",
];

/// Every `deb` entry in the machine's apt configuration under `etc_apt` (`/etc/apt`).
pub fn machine_sources(etc_apt: &Path) -> Vec<Source> {
    let mut out = Vec::new();
    if let Ok(text) = fs::read_to_string(etc_apt.join("sources.list")) {
        out.extend(parse_one_line(&text));
    }
    let mut parts: Vec<_> = fs::read_dir(etc_apt.join("sources.list.d"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    parts.sort();
    for path in parts {
        let Ok(text) = fs::read_to_string(&path) else { continue };
        match path.extension().and_then(|e| e.to_str()) {
            Some("sources") => out.extend(parse_deb822(&text)),
            Some("list") => out.extend(parse_one_line(&text)),
            _ => {} // *.disabled, *.save, …: apt ignores them too
        }
    }
    out
}

/// Entries of a deb822 `.sources` file (stanzas separated by blank lines).
pub fn parse_deb822(text: &str) -> Vec<Source> {
    let mut out = Vec::new();
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut flush = |fields: &mut Vec<(String, String)>| {
        let get = |k: &str| {
            fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.trim().to_owned())
        };
        let enabled = get("Enabled").is_none_or(|v| !v.eq_ignore_ascii_case("no"));
        let is_deb = get("Types").is_some_and(|t| t.split_whitespace().any(|t| t == "deb"));
        if enabled && is_deb {
            let suites: Vec<String> =
                get("Suites").unwrap_or_default().split_whitespace().map(str::to_owned).collect();
            let signed_by = get("Signed-By").filter(|s| !s.is_empty());
            for uri in get("URIs").unwrap_or_default().split_whitespace() {
                out.push(Source {
                    uri: uri.to_owned(),
                    suites: suites.clone(),
                    signed_by: signed_by.clone(),
                });
            }
        }
        fields.clear();
    };
    for line in text.lines() {
        if line.trim().is_empty() {
            flush(&mut fields);
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            // A continuation line (e.g. an inline key in Signed-By).
            if let Some((_, v)) = fields.last_mut() {
                v.push('\n');
                v.push_str(line.trim());
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            fields.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    flush(&mut fields);
    out
}

/// Entries of a one-line `sources.list`: `deb [opts] URI SUITE [COMPONENT...]`.
pub fn parse_one_line(text: &str) -> Vec<Source> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(rest) = line.strip_prefix("deb ").or_else(|| line.strip_prefix("deb\t")) else { continue };
        let rest = rest.trim_start();
        let (opts, rest) = match rest.strip_prefix('[') {
            Some(r) => r.split_once(']').unwrap_or((r, "")),
            None => ("", rest),
        };
        let mut words = rest.split_whitespace();
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else { continue };
        let signed_by = opts
            .split_whitespace()
            .find_map(|o| o.strip_prefix("signed-by="))
            .map(str::to_owned)
            .filter(|s| !s.is_empty());
        out.push(Source { uri: uri.to_owned(), suites: vec![suite.to_owned()], signed_by });
    }
    out
}

/// Whether `suite` is a Debian one, and whether it is a security suite.
fn debian_suite(suite: &str) -> Option<bool> {
    let (name, tail) = suite.split_once(['-', '/']).unwrap_or((suite, ""));
    // Security suites: `bookworm-security`; before bullseye, `buster/updates`.
    DEBIAN_SUITES.contains(&name).then_some(tail == "security" || (tail == "updates" && suite.contains('/')))
}

/// The machine's Debian archive and security archive, from its apt sources.
pub fn debian_mirrors(sources: &[Source]) -> anyhow::Result<Mirrors> {
    let find = |security: bool| {
        sources.iter().find(|s| s.suites.iter().any(|x| debian_suite(x) == Some(security))).cloned()
    };
    let Some(archive) = find(false) else {
        bail!(
            "no Debian archive in this machine's apt sources (/etc/apt/sources.list, \
             /etc/apt/sources.list.d/*.sources|*.list): vm-test fetches Debian's kernel packages \
             from the mirror apt already uses"
        );
    };
    let (security, security_derived) = match find(true) {
        Some(s) => (s, false),
        None => {
            let uri = format!("{}-security", archive.uri.trim_end_matches('/'));
            (Source { uri, suites: Vec::new(), signed_by: archive.signed_by.clone() }, true)
        }
    };
    Ok(Mirrors { archive, security, security_derived })
}

impl Mirrors {
    /// A one-line sources.list asking the machine's archives for `archive_suites` and
    /// `security_suites` (component `main`).
    pub fn sources_list(&self, archive_suites: &[&str], security_suites: &[&str]) -> String {
        let line = |src: &Source, suite: &str| {
            // An inline key (several lines) cannot go into a one-line entry; apt then uses its
            // trusted keyrings, as it does for entries without signed-by.
            let opts = match &src.signed_by {
                Some(k) if !k.contains('\n') && !k.contains(' ') => format!("[signed-by={k}] "),
                _ => String::new(),
            };
            format!("deb {opts}{} {suite} main\n", src.uri)
        };
        let mut s = String::new();
        for suite in archive_suites {
            s.push_str(&line(&self.archive, suite));
        }
        for suite in security_suites {
            s.push_str(&line(&self.security, suite));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEB822: &str = "\
Types: deb
# a comment
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: https://vendor.example/apt
Suites: nodistro
Components: main
";

    #[test]
    fn deb822_entries_and_their_archives() {
        let sources = parse_deb822(DEB822);
        assert_eq!(sources.len(), 3);
        let m = debian_mirrors(&sources).expect("mirrors");
        assert_eq!(m.archive.uri, "http://mirror.example/debian");
        assert_eq!(m.security.uri, "http://mirror.example/debian-security");
        assert!(!m.security_derived);
        let list = m.sources_list(&["sid"], &["bullseye-security"]);
        assert_eq!(
            list,
            "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror.example/debian sid main\n\
             deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] \
             http://mirror.example/debian-security bullseye-security main\n"
        );
    }

    #[test]
    fn one_line_entries_old_security_layout_and_a_derived_security_archive() {
        let text = "# deb http://ignored.example/debian bookworm main\n\
                    deb-src http://src.example/debian bookworm main\n\
                    deb [arch=amd64 signed-by=/k.gpg] http://m.example/debian/ bullseye main contrib\n\
                    deb http://s.example/ bullseye/updates main\n";
        let sources = parse_one_line(text);
        assert_eq!(sources.len(), 2);
        assert_eq!(sources[0].signed_by.as_deref(), Some("/k.gpg"));
        let m = debian_mirrors(&sources).expect("mirrors");
        assert_eq!(
            (m.archive.uri.as_str(), m.security.uri.as_str()),
            ("http://m.example/debian/", "http://s.example/")
        );

        let m = debian_mirrors(&sources[..1]).expect("mirrors");
        assert!(m.security_derived);
        assert_eq!(m.security.uri, "http://m.example/debian-security");
    }

    #[test]
    fn no_debian_source_is_an_error_naming_the_files() {
        let err =
            debian_mirrors(&parse_deb822("Types: deb\nURIs: https://v.example/apt\nSuites: nodistro\n"))
                .unwrap_err();
        assert!(err.to_string().contains("sources.list"), "{err}");
        assert!(parse_deb822("Types: deb\nEnabled: no\nURIs: http://x/debian\nSuites: sid\n").is_empty());
    }
}
