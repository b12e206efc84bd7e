//! The field mapping: what a Sigma rule's field names mean on an audit record.
//!
//! Sigma's Linux rules use the field names of Sysmon for Linux (`Image`, `CommandLine`,
//! `ParentImage`, `TargetFilename`, `DestinationIp`, …). Records are read through this table
//! directly — no JSON is built per record — and the table is also the documentation
//! (`sensor rules fields`, README "Field mapping"). Beyond Sysmon: the whole ancestry
//! (`AncestorImage`, `AncestorCommandLine`: any ancestor matches), the login session
//! (`SessionUser`, `SessionService`, `SessionRemoteAddress`), and the executable's flags.

use std::{borrow::Cow, cell::OnceCell, collections::HashMap, sync::LazyLock};

use rsigma_eval::EventValue;
use sensor_proto::{
    AuditRecord,
    v1::{Ancestor, Process, audit_record::Event},
};

use super::category::Category;

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

type Getter = for<'a> fn(&'a RecordView<'a>) -> Option<EventValue<'a>>;

/// One field rules can use.
#[derive(Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub scope: Scope,
    pub doc: &'static str,
    get: Getter,
}

impl std::fmt::Debug for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Field").field("name", &self.name).field("scope", &self.scope).finish()
    }
}

/// A record as a Sigma event, evaluated as one category.
pub struct RecordView<'a> {
    pub record: &'a AuditRecord,
    pub category: Category,
    pub session: Option<&'a SessionInfo>,
    command_line: OnceCell<String>,
    parent_command_line: OnceCell<String>,
}

impl<'a> RecordView<'a> {
    pub fn new(record: &'a AuditRecord, category: Category, session: Option<&'a SessionInfo>) -> Self {
        Self {
            record,
            category,
            session,
            command_line: OnceCell::new(),
            parent_command_line: OnceCell::new(),
        }
    }

    fn process(&self) -> Option<&'a Process> {
        self.record.process.as_ref()
    }

    fn parent(&self) -> Option<&'a Ancestor> {
        self.record.ancestors.first()
    }

    fn event(&self) -> Option<&'a Event> {
        self.record.event.as_ref()
    }

    /// The value of a field, if this record has it.
    pub fn field(&self, name: &str) -> Option<EventValue<'_>> {
        let f = FIELD_INDEX.get(name)?;
        if !f.scope.covers(self.category) {
            return None;
        }
        (f.get)(self)
    }
}

/// argv as one command line, arguments separated by a space (as Sysmon for Linux writes it).
pub fn command_line(argv: &[String]) -> String {
    argv.join(" ")
}

fn s(v: &str) -> Option<EventValue<'_>> {
    Some(EventValue::Str(Cow::Borrowed(v)))
}

/// A string field that is absent when empty (unknown), so `|exists` and `null` mean something.
fn ne(v: &str) -> Option<EventValue<'_>> {
    (!v.is_empty()).then_some(EventValue::Str(Cow::Borrowed(v)))
}

fn int(v: impl Into<i64>) -> Option<EventValue<'static>> {
    Some(EventValue::Int(v.into()))
}

fn boolean(v: bool) -> Option<EventValue<'static>> {
    Some(EventValue::Str(Cow::Borrowed(if v { "true" } else { "false" })))
}

fn int_u64(v: u64) -> Option<EventValue<'static>> {
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

mod events;
mod process;

/// Every field, in documentation order: the process's, then the events'.
pub static FIELDS: LazyLock<Vec<&'static Field>> =
    LazyLock::new(|| process::PROCESS.iter().chain(events::EVENTS).collect());

static FIELD_INDEX: LazyLock<HashMap<&'static str, &'static Field>> =
    LazyLock::new(|| FIELDS.iter().map(|f| (f.name, *f)).collect());

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

impl rsigma_eval::Event for RecordView<'_> {
    fn get_field(&self, path: &str) -> Option<EventValue<'_>> {
        // The sessions' fields are filled from the session record itself on `session` records.
        if self.category == Category::Session
            && let Some(Event::Session(s)) = self.event()
        {
            match path {
                "SessionUser" => return ne(&s.user),
                "SessionService" => return ne(&s.service),
                "SessionRemoteAddress" => return ne(&s.remote_address),
                "SessionRemotePort" => {
                    return (s.remote_port != 0).then_some(EventValue::Int(s.remote_port.into()));
                }
                "SessionTerminal" => return ne(&s.tty),
                _ => {}
            }
        }
        self.field(path)
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

    fn visit_string_values(&self, visit: &mut dyn FnMut(&str)) {
        for f in FIELDS.iter().filter(|f| f.scope.covers(self.category)) {
            if let Some(v) = rsigma_eval::Event::get_field(self, f.name) {
                visit_value(&v, visit);
            }
        }
    }

    fn to_json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        map.insert("event_id".into(), serde_json::Value::String(self.record.seq.to_string()));
        for f in FIELDS.iter().filter(|f| f.scope.covers(self.category)) {
            if let Some(v) = rsigma_eval::Event::get_field(self, f.name) {
                map.insert(f.name.into(), v.to_json());
            }
        }
        serde_json::Value::Object(map)
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
