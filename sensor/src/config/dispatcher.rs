//! `[sensor] syscall_dispatcher` and `syscall_fentry`: `"auto"` (the default), `true` or `false`.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};

use crate::options::{SyscallDispatcher, SyscallFentry};

/// The setting as read from the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DispatcherSetting(pub SyscallDispatcher);

/// `syscall_fentry`: the same three values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FentrySetting(pub SyscallFentry);

impl<'de> Deserialize<'de> for FentrySetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let DispatcherSetting(s) = DispatcherSetting::deserialize(d)?;
        Ok(Self(match s {
            SyscallDispatcher::Auto => SyscallFentry::Auto,
            SyscallDispatcher::On => SyscallFentry::On,
            SyscallDispatcher::Off => SyscallFentry::Off,
        }))
    }
}

impl<'de> Deserialize<'de> for DispatcherSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DispatcherSetting;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false or \"auto\"")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(DispatcherSetting(if v { SyscallDispatcher::On } else { SyscallDispatcher::Off }))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                match v {
                    "auto" => Ok(DispatcherSetting(SyscallDispatcher::Auto)),
                    other => Err(E::custom(format!("`{other}`: expected true, false or \"auto\""))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::DispatcherSetting;
    use crate::options::SyscallDispatcher;

    #[derive(Debug, serde::Deserialize)]
    struct T {
        d: DispatcherSetting,
    }

    fn read(v: &str) -> Result<SyscallDispatcher, String> {
        toml::from_str::<T>(&format!("d = {v}")).map(|t| t.d.0).map_err(|e| e.to_string())
    }

    #[test]
    fn auto_true_and_false_are_read_and_anything_else_is_named() {
        assert_eq!(read("\"auto\""), Ok(SyscallDispatcher::Auto));
        assert_eq!(read("true"), Ok(SyscallDispatcher::On));
        assert_eq!(read("false"), Ok(SyscallDispatcher::Off));
        let e = read("\"yes\"").expect_err("not a setting");
        assert!(e.contains("`yes`: expected true, false or \"auto\""), "{e}");
        assert!(read("1").expect_err("a number").contains("true, false or \"auto\""));
    }

    #[test]
    fn the_fentry_setting_reads_the_same_values() {
        #[derive(Debug, serde::Deserialize)]
        struct F {
            f: super::FentrySetting,
        }
        let read =
            |v: &str| toml::from_str::<F>(&format!("f = {v}")).map(|t| t.f.0).map_err(|e| e.to_string());
        use crate::options::SyscallFentry;
        assert_eq!(read("\"auto\""), Ok(SyscallFentry::Auto));
        assert_eq!(read("true"), Ok(SyscallFentry::On));
        assert_eq!(read("false"), Ok(SyscallFentry::Off));
        assert!(
            read("\"fast\"").expect_err("not a setting").contains("`fast`: expected true, false or \"auto\"")
        );
    }
}
