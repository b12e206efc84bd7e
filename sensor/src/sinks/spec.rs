//! `--output` specifications.

use std::{path::PathBuf, str::FromStr};

/// Where `jsonl` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonlTarget {
    Stdout,
    Path(PathBuf),
}

/// One `--output` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputSpec {
    /// `jsonl:PATH` or `jsonl:-`
    Jsonl(JsonlTarget),
    /// `file:DIR`
    File(PathBuf),
}

impl OutputSpec {
    /// The local file or directory this output writes to, if any.
    pub fn local_path(&self) -> Option<PathBuf> {
        match self {
            Self::Jsonl(JsonlTarget::Path(p)) | Self::File(p) => Some(p.clone()),
            Self::Jsonl(JsonlTarget::Stdout) => None,
        }
    }
}

impl FromStr for OutputSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (scheme, rest) = s
            .split_once(':')
            .ok_or_else(|| format!("`{s}`: expected SCHEME:TARGET, e.g. jsonl:- or file:/var/lib/sensor"))?;
        if rest.is_empty() {
            return Err(format!("`{s}`: missing target after `{scheme}:`"));
        }
        match scheme {
            "jsonl" if rest == "-" => Ok(Self::Jsonl(JsonlTarget::Stdout)),
            "jsonl" => Ok(Self::Jsonl(JsonlTarget::Path(rest.into()))),
            "file" => Ok(Self::File(rest.into())),
            other => Err(format!("`{s}`: unknown output `{other}` (supported: jsonl, file)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        assert_eq!("jsonl:-".parse(), Ok(OutputSpec::Jsonl(JsonlTarget::Stdout)));
        assert_eq!("jsonl:/x".parse(), Ok(OutputSpec::Jsonl(JsonlTarget::Path("/x".into()))));
        assert_eq!("file:/d".parse(), Ok(OutputSpec::File("/d".into())));
        assert!("kafka".parse::<OutputSpec>().unwrap_err().contains("SCHEME:TARGET"));
        assert!("nope:x".parse::<OutputSpec>().unwrap_err().contains("unknown output `nope`"));
        assert!("file:".parse::<OutputSpec>().unwrap_err().contains("missing target"));
    }
}
