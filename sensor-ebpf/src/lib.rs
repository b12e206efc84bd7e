//! Empty on purpose: the eBPF object is the `sensor` binary target (src/main.rs). This library
//! target exists so the agent's build script can depend on this crate (see sensor/build.rs).
#![no_std]
