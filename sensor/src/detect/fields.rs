//! The field mapping: what a Sigma rule's field names mean on an audit record.
//!
//! Sigma's Linux rules use the field names of Sysmon for Linux (`Image`, `CommandLine`,
//! `ParentImage`, `TargetFilename`, `DestinationIp`, …). Records are read through this table
//! directly — no JSON is built per record — and the table is also the documentation
//! (`sensor rules fields`, README "Field mapping"). Beyond Sysmon: the whole ancestry
//! (`AncestorImage`, `AncestorCommandLine`: any ancestor matches), the login session
//! (`SessionUser`, `SessionService`, `SessionRemoteAddress`), and the executable's flags.

use std::{
    borrow::Cow,
    cell::{OnceCell, RefCell},
    sync::LazyLock,
};

use rsigma_eval::EventValue;
use sensor_proto::{
    AuditRecord,
    v1::{Ancestor, Process, audit_record::Event},
};

use super::{category::Category, kind::Detectable};
use crate::enrich::ancestry::Ancestors;

/// What the detector knows of a login session (from its `session` record).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionInfo {
    pub user: String,
    pub service: String,
    pub remote_address: String,
    pub remote_port: u32,
    pub tty: String,
}

/// Which records a field is present on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every record with an acting process (all categories but `loss`).
    Process,
    /// Records whose process belongs to a login session the sensor has seen.
    Session,
    /// Only records of these categories.
    Only(&'static [Category]),
}

impl Scope {
    /// True when a record of `cat` can carry the field.
    pub fn covers(self, cat: Category) -> bool {
        match self {
            Self::Process | Self::Session => cat != Category::Loss,
            Self::Only(cats) => cats.contains(&cat),
        }
    }

    /// Text for the documentation table.
    pub fn describe(self) -> String {
        match self {
            Self::Process => "all with a process".to_owned(),
            Self::Session => "all with a process in a known login session".to_owned(),
            Self::Only(cats) => cats.iter().map(|c| c.name()).collect::<Vec<_>>().join(", "),
        }
    }
}

pub type Getter = for<'a> fn(&'a RecordView<'a>) -> Option<EventValue<'a>>;

/// One field rules can use.
#[derive(Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub scope: Scope,
    pub doc: &'static str,
    pub get: Getter,
}

impl std::fmt::Debug for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Field").field("name", &self.name).field("scope", &self.scope).finish()
    }
}

/// A record as a Sigma event, evaluated as one category.
pub struct RecordView<'a> {
    pub record: &'a AuditRecord,
    /// The record's ancestors, nearest first (shared, not in `record.ancestors`, for records
    /// of the pipeline).
    pub ancestors: Ancestors<'a>,
    pub category: Category,
    pub session: Option<&'a SessionInfo>,
    command_line: OnceCell<String>,
    parent_command_line: OnceCell<String>,
    /// Every ancestor's command line, joined once per record (rules and the candidate index
    /// read `AncestorCommandLine` several times per record).
    ancestor_command_lines: OnceCell<Vec<String>>,
    /// The reads of the evaluation in progress, when the memo records them (`memo.rs`).
    reads: RefCell<Option<Reads>>,
}

/// A field's value as read by an evaluation, kept beyond the record.
pub type Read = (&'static Field, Option<EventValue<'static>>);

/// What one evaluation read from a record: every field once, in first-read order. The engine's
/// result is a function of these values alone, unless `volatile`.
#[derive(Debug, Default)]
pub struct Reads {
    pub fields: Vec<Read>,
    /// The evaluation read the record's identity (`to_json`: its `seq`), which no other record
    /// shares.
    pub volatile: bool,
}

impl<'a> RecordView<'a> {
    /// A record whose ancestors are in it (records read back from files, tests).
    pub fn new(record: &'a AuditRecord, category: Category, session: Option<&'a SessionInfo>) -> Self {
        Self::with_ancestors(record, Ancestors::Listed(&record.ancestors), category, session)
    }

    pub fn with_ancestors(
        record: &'a AuditRecord,
        ancestors: Ancestors<'a>,
        category: Category,
        session: Option<&'a SessionInfo>,
    ) -> Self {
        Self {
            record,
            ancestors,
            category,
            session,
            command_line: OnceCell::new(),
            parent_command_line: OnceCell::new(),
            ancestor_command_lines: OnceCell::new(),
            reads: RefCell::new(None),
        }
    }

    /// Starts recording what the evaluation reads (see [`Reads`]).
    pub fn record_reads(&self) {
        *self.reads.borrow_mut() = Some(Reads::default());
    }

    /// The reads recorded since [`Self::record_reads`], and stops recording.
    pub fn take_reads(&self) -> Option<Reads> {
        self.reads.borrow_mut().take()
    }

    /// The value of `f` on this record as rules see it: session fields from a `session` record
    /// itself, absent outside the field's scope.
    pub fn value_of(&self, f: &Field) -> Option<EventValue<'_>> {
        if let Some(v) = self.session_override(f.name) {
            return v;
        }
        if !f.scope.covers(self.category) {
            return None;
        }
        (f.get)(self)
    }

    /// `value_of`, noted in the reads when they are recorded.
    fn read(&self, f: &'static Field) -> Option<EventValue<'_>> {
        let v = self.value_of(f);
        if let Some(reads) = self.reads.borrow_mut().as_mut()
            && !reads.fields.iter().any(|(g, _)| std::ptr::eq(*g, f))
        {
            reads.fields.push((f, v.clone().map(owned)));
        }
        v
    }

    fn process(&self) -> Option<&'a Process> {
        self.record.process.as_deref()
    }

    fn parent(&self) -> Option<&'a Ancestor> {
        self.ancestors.first()
    }

    pub(crate) fn event(&self) -> Option<&'a Event> {
        self.record.event.as_ref()
    }
}

/// argv as one command line, arguments separated by a space (as Sysmon for Linux writes it).
pub fn command_line(argv: &[String]) -> String {
    argv.join(" ")
}

pub(crate) fn s(v: &str) -> Option<EventValue<'_>> {
    Some(EventValue::Str(Cow::Borrowed(v)))
}

/// A string field that is absent when empty (unknown), so `|exists` and `null` mean something.
pub(crate) fn ne(v: &str) -> Option<EventValue<'_>> {
    (!v.is_empty()).then_some(EventValue::Str(Cow::Borrowed(v)))
}

pub(crate) fn int(v: impl Into<i64>) -> Option<EventValue<'static>> {
    Some(EventValue::Int(v.into()))
}

pub(crate) fn boolean(v: bool) -> Option<EventValue<'static>> {
    Some(EventValue::Str(Cow::Borrowed(if v { "true" } else { "false" })))
}

pub(crate) fn int_u64(v: u64) -> Option<EventValue<'static>> {
    Some(EventValue::Int(i64::try_from(v).unwrap_or(i64::MAX)))
}

macro_rules! ev {
    ($v:expr, $pat:pat $(if $guard:expr)? => $out:expr) => {
        match $v.event() {
            Some($pat) $(if $guard)? => $out,
            _ => None,
        }
    };
}
pub(crate) use ev;

mod events;
mod process;
mod tamper;

/// The fields of each record kind's own table ([`Detectable::FIELDS`]), in schema order.
macro_rules! kind_fields {
    ($($variant:ident($msg:ident) $name:ident,)+) => {
        [$(<sensor_proto::v1::$msg as Detectable>::FIELDS),+]
    };
}

/// Every field, in documentation order: the process's, the events' shared table, each record
/// kind's own, then the tamper fields.
pub static FIELDS: LazyLock<Vec<&'static Field>> = LazyLock::new(|| {
    let kinds = sensor_proto::for_each_event!(kind_fields);
    process::PROCESS
        .iter()
        .chain(events::EVENTS)
        .chain(kinds.into_iter().flatten())
        .chain(tamper::TAMPER)
        .collect()
});

/// Rules look fields up by name on every evaluation: a fast hash, not SipHash (the names are
/// ours, not attacker-chosen).
static FIELD_INDEX: LazyLock<crate::fastmap::FastMap<&'static str, &'static Field>> =
    LazyLock::new(|| FIELDS.iter().map(|f| (f.name, *f)).collect());

/// The process fields a keyword (field-less) detection searches on `process_creation` records:
/// those of a Sysmon for Linux process event. Keywords are written against one event's text; the
/// whole ancestry and the session are matched by naming their fields (`AncestorCommandLine`, …).
/// On other records keywords search the event's own fields: the process's text was searched at
/// its exec.
const KEYWORD_PROCESS_FIELDS: &[&str] =
    &["Image", "CommandLine", "CurrentDirectory", "User", "ParentImage", "ParentCommandLine"];

/// Per category: the fields a keyword detection searches on its records.
static KEYWORD_FIELDS: LazyLock<Vec<Vec<&'static Field>>> = LazyLock::new(|| {
    Category::ALL
        .iter()
        .map(|&cat| {
            FIELDS
                .iter()
                .copied()
                .filter(|f| f.scope.covers(cat))
                .filter(|f| match f.scope {
                    Scope::Only(_) => true,
                    Scope::Session => cat == Category::Session,
                    Scope::Process => {
                        cat == Category::ProcessCreation && KEYWORD_PROCESS_FIELDS.contains(&f.name)
                    }
                })
                .collect()
        })
        .collect()
});

/// The fields keyword detections search on records of `cat` (documentation, tests).
pub fn keyword_fields(cat: Category) -> impl Iterator<Item = &'static str> {
    KEYWORD_FIELDS[cat.index()].iter().map(|f| f.name)
}

/// The field mapping as a Markdown table (`sensor rules fields`, the README).
pub fn markdown_table() -> String {
    let mut s = String::from("| field | on | meaning |\n|---|---|---|\n");
    for f in FIELDS.iter() {
        s.push_str(&format!("| `{}` | {} | {} |\n", f.name, f.scope.describe(), f.doc.replace('|', "\\|")));
    }
    s
}

/// The field of this name, if the sensor provides it.
pub fn lookup(name: &str) -> Option<&'static Field> {
    FIELD_INDEX.get(name).copied()
}

impl RecordView<'_> {
    /// On `session` records, the session's fields come from the record itself.
    fn session_override(&self, path: &str) -> Option<Option<EventValue<'_>>> {
        if self.category != Category::Session {
            return None;
        }
        let Some(Event::Session(s)) = self.event() else { return None };
        Some(match path {
            "SessionUser" => ne(&s.user),
            "SessionService" => ne(&s.service),
            "SessionRemoteAddress" => ne(&s.remote_address),
            "SessionRemotePort" => (s.remote_port != 0).then_some(EventValue::Int(s.remote_port.into())),
            "SessionTerminal" => ne(&s.tty),
            _ => return None,
        })
    }
}

/// A value that no longer borrows from the record.
fn owned(v: EventValue<'_>) -> EventValue<'static> {
    match v {
        EventValue::Str(s) => EventValue::Str(Cow::Owned(s.into_owned())),
        EventValue::Int(i) => EventValue::Int(i),
        EventValue::Float(f) => EventValue::Float(f),
        EventValue::Bool(b) => EventValue::Bool(b),
        EventValue::Null => EventValue::Null,
        EventValue::Array(items) => EventValue::Array(items.into_iter().map(owned).collect()),
        EventValue::Map(kv) => {
            EventValue::Map(kv.into_iter().map(|(k, v)| (Cow::Owned(k.into_owned()), owned(v))).collect())
        }
    }
}

impl rsigma_eval::Event for RecordView<'_> {
    /// Names the sensor does not provide are absent on every record (and need no noting).
    fn get_field(&self, path: &str) -> Option<EventValue<'_>> {
        self.read(FIELD_INDEX.get(path)?)
    }

    fn any_string_value(&self, pred: &dyn Fn(&str) -> bool) -> bool {
        let mut hit = false;
        self.visit_string_values(&mut |v| hit = hit || pred(v));
        hit
    }

    fn all_string_values(&self) -> Vec<Cow<'_, str>> {
        let mut out = Vec::new();
        self.visit_string_values(&mut |v| out.push(Cow::Owned(v.to_owned())));
        out
    }

    /// What keyword detections search: see [`KEYWORD_PROCESS_FIELDS`].
    fn visit_string_values(&self, visit: &mut dyn FnMut(&str)) {
        for &f in &KEYWORD_FIELDS[self.category.index()] {
            if let Some(v) = self.read(f) {
                visit_value(&v, visit);
            }
        }
    }

    /// Only the record's `seq`: rsigma asks for this to keep references to the records a
    /// correlation counted (the alert's `trigger_seqs`); the record itself is in the stream.
    fn to_json(&self) -> serde_json::Value {
        if let Some(reads) = self.reads.borrow_mut().as_mut() {
            reads.volatile = true;
        }
        serde_json::json!({ "event_id": self.record.seq.to_string() })
    }
}

fn visit_value(v: &EventValue<'_>, visit: &mut dyn FnMut(&str)) {
    match v {
        EventValue::Str(s) => visit(s),
        EventValue::Array(items) => items.iter().for_each(|i| visit_value(i, visit)),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
