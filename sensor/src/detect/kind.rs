//! What detection needs from each record kind. Every record kind implements [`Detectable`] in
//! its own module under `crate::kinds`; the dispatch over the record's `oneof event` is
//! generated from the schema (`sensor_proto::match_event!`), so a new kind that does not say
//! how it is evaluated does not compile.

use super::{category::Category, fields::Field};

/// A record kind as the detector sees it.
pub trait Detectable {
    /// Fields only records of this kind have, in documentation order (chained after the shared
    /// ones in [`super::fields::FIELDS`]). Most kinds' fields are still in the shared tables.
    const FIELDS: &'static [Field];

    /// The categories a record of this kind is evaluated as (most: one; none for the sensor's
    /// own verdicts and checkpoints, so it never alerts on them).
    fn categories(&self) -> &'static [Category];

    /// The system call's return value (field `Result`), when the record carries one.
    fn result(&self) -> Option<i64>;

    /// The errno name of a failed call (field `Error`), when the record carries one.
    fn error(&self) -> Option<&str>;

    /// The system call (field `Syscall`), when the record names one.
    fn syscall(&self) -> Option<&str>;
}
