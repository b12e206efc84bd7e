//! One module per record kind — a variant of the record's `oneof event` in the schema — holding
//! what every stage needs to know of that kind: its syslog severity ([`SyslogSeverity`]), how
//! detection evaluates it and its own rule fields ([`Detectable`]), how `sensor trace` folds it
//! ([`Traced`]) and its OCSF mapping ([`Ocsf`]); and, when a kernel event kind feeds it, that
//! kind's decoding ([`Decode`]), enrichment ([`Enrich`]) and attachment ([`Attachable`]),
//! implemented on the kind's marker type (`sensor_common::kind::X`, generated from the kind table).
//!
//! The stages define those traits and dispatch over the record with `sensor_proto::match_event!`,
//! which is generated from the schema, and over kernel events with code generated from
//! `sensor_common::for_each_event_kind!`; the modules below are declared from the schema's list
//! (`sensor_proto::for_each_event!`). A record kind added to the proto therefore needs a file
//! `kinds/<field name>.rs` here, and the compiler names every trait it still has to implement.
//! Nothing outside this module refers to it: it depends on the stages, never the reverse.
//!
//! [`SyslogSeverity`]: crate::sinks::syslog::SyslogSeverity
//! [`Detectable`]: crate::detect::kind::Detectable
//! [`Traced`]: crate::trace::fold::Traced
//! [`Ocsf`]: crate::recordbuild::ocsf::Ocsf
//! [`Decode`]: crate::decode::Decode
//! [`Enrich`]: crate::enrich::kinds::Enrich
//! [`Attachable`]: crate::loader::attach::Attachable

/// What the kind modules use: the record types, the stages' traits and their helpers.
mod prelude {
    pub(crate) use sensor_common::{self as sc, EventHeader, kind, names};
    pub(crate) use sensor_proto::v1::{audit_record::Event, *};
    pub(crate) use serde_json::{Map, Value, json};

    pub(crate) use crate::{
        decode::{self, Decode, DecodeError},
        detect::{
            category::{Category, file_categories},
            fields::{Field, Scope, boolean, ev, int, ne, s},
            kind::Detectable,
        },
        enrich::{Enriched, Enricher, events, kinds::Enrich},
        loader::attach::{
            Attach, Attachable, attach_cred, attach_file, attach_net, attach_ptrace, attach_signal,
            syscall_collector,
        },
        recordbuild::ocsf::{
            APP_LIFECYCLE, AUTH, BASE, DNS, FILE, FINDING, KERNEL_EXT, Mapping, NET, Ocsf, PROCESS, activity,
            file_activity, file_obj, finding, process, result,
        },
        sinks::syslog::{
            SEVERITY_CRITICAL, SEVERITY_ERROR, SEVERITY_INFO, SEVERITY_NOTICE, SEVERITY_WARNING,
            SyslogSeverity,
        },
        trace::fold::{Fact, Kind, Traced, file_fact, net_fact, result_note},
    };
}

macro_rules! kind_modules {
    ($($variant:ident($msg:ident) $name:ident,)+) => {
        $(mod $name;)+
    };
}
sensor_proto::for_each_event!(kind_modules);
