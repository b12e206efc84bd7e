//! Human units in the configuration file: sizes (`"64MiB"`, `"1 GB"`, or a plain integer of
//! bytes, read by `bytesize`) and durations (`"30s"`, `"1h30m"`, `"500ms"`, read by `humantime`,
//! the grammar `sensor trace --since` uses too). The errors say what is accepted.

use std::{fmt, time::Duration};

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// A size in bytes. Binary units (KiB, MiB, GiB, TiB) are powers of 1024, decimal units (KB, MB,
/// GB, TB) powers of 1000; units are case-insensitive; `B` or no unit means bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

/// A duration written with units: `ms`, `s`, `m`, `h`, `d`, combinable (`"1h30m"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

/// Parses `"64MiB"`, `"64 MiB"`, `"4096"`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if !t.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!("`{s}` is not a size: expected a number and a unit, e.g. \"64MiB\""));
    }
    match t.parse::<bytesize::ByteSize>() {
        // bytesize saturates on overflow.
        Ok(b) if b.as_u64() == u64::MAX => Err(format!("`{s}` is too large")),
        Ok(b) => Ok(b.as_u64()),
        Err(e) => Err(format!(
            "`{s}` is not a size ({e}): use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB, e.g. \"64MiB\""
        )),
    }
}

/// Parses `"30s"`, `"1h30m"`, `"500ms"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        format!("`{s}` is not a duration ({e}): expected a number and a unit (ms, s, m, h, d), e.g. \"30s\"")
    })
}

/// `67108864` → `64MiB`; sizes that are not whole binary units stay in bytes.
pub fn format_size(n: u64) -> String {
    for (unit, mult) in [("TiB", 1u64 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if n >= mult && n.is_multiple_of(mult) {
            return format!("{}{unit}", n / mult);
        }
    }
    format!("{n}B")
}

/// `5400s` → `1h 30m`.
pub fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as \"64MiB\" or a number of bytes")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v).map(Size).map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
                parse_size(v).map(Size).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration with a unit, such as \"30s\" or \"1h\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                parse_duration(v).map(HumanDuration).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("64 mib"), Ok(64 << 20));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("12B"), Ok(12));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert!(parse_size("12 parsecs").unwrap_err().contains("use B, KiB"));
        assert!(parse_size("MiB").unwrap_err().contains("not a size"));
        assert!(parse_size("99999999TiB").unwrap_err().contains("too large"));
        assert_eq!(format_size(64 << 20), "64MiB");
        assert_eq!(format_size(1000), "1000B");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        for bad in ["", "30", "s", "1fortnight", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h 30m");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1s 500ms");
        assert!(parse_duration("30").unwrap_err().contains("e.g. \"30s\""));
    }
}
