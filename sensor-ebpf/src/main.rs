//! eBPF programs of the sensor. One module per hook domain; shared helpers in `kernel`, `task`,
//! `path`, `maps` and `emit`. Every program is a thin entry point; failures to build or send an
//! event become per-CPU loss counters, so nothing is dropped without being counted.
#![no_std]
#![no_main]

mod dispatch;
mod emit;
mod exec;
mod fentry;
mod file;
mod ia32;
mod kernel;
mod maps;
mod net;
mod path;
mod process;
mod syscalls;
mod tamper;
mod task;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    // A reachable panic is an infinite loop, which the verifier rejects: panics can never load.
    loop {}
}

/// License of the programs: GPL, as the helpers used require.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
