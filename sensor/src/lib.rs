//! The sensor's userspace agent: loads the eBPF programs and turns kernel events into audit
//! records. Data flows one way: `sources` → `decode` → `enrich` → `recordbuild` → `sinks`, wired
//! together by `pipeline`.

pub mod btf;
pub mod capacity;
pub mod cli;
pub mod config;
pub mod decode;
pub mod detect;
pub mod enrich;
pub mod exclusive;
pub mod fastmap;
pub mod file_syscalls;
pub mod filter;
pub mod flow;
pub mod guard;
pub mod handover;
pub mod kernel;
pub mod kinds;
pub mod lifecycle;
pub mod links;
pub mod loader;
pub mod metrics;
pub mod mountinfo;
pub mod options;
pub mod pin;
pub mod pipeline;
pub mod protect;
pub mod queue;
pub mod ratelimit;
pub mod recordbuild;
pub mod recordfile;
pub mod sinks;
pub mod sources;
pub mod stats;
pub mod text;
pub mod trace;
pub mod tracefs;

#[cfg(test)]
mod module_graph_tests;
