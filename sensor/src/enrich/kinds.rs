//! The enricher's side of each kernel event kind: the [`Enrich`] trait that every kind
//! implements (in its module under `crate::kinds`), the dispatch generated from the kind table,
//! and the steps of the kinds that need the enricher's own state (the process table, the
//! sensitive-path filter, the sensor's protected objects).

use sensor_common::{EventHeader, kind, task::TASK_NO_MM};
use sensor_proto::v1::audit_record::Event;

use super::{Enriched, Enricher, events, file, inherit_program, net, procfs, tamper};
use crate::decode::{
    BpfCmdRaw, Decode, ExitRaw, FileRaw, ForkRaw, KernelEvent, PtraceRaw, SignalRaw, net::NetRaw,
    task::TaskRaw,
};

/// What the enricher does with an event kind.
pub trait Enrich: Decode {
    /// Events of this kind come on a bulk ring (file, network) and may overtake their
    /// process's lineage, so they wait for it (see [`super::parking`]). Lineage itself and the
    /// low-volume kinds share the process ring and never wait.
    const BULK: bool;

    /// The record of `raw`, or `None` when the event makes none; a record that must come
    /// before it (e.g. a DNS query after its datagram) goes to `out`.
    fn enrich(raw: &Self::Raw, cx: &mut Enricher, out: &mut Vec<Enriched>) -> Option<Enriched>;
}

macro_rules! dispatch {
    ([] $($(#[$doc:meta])* $kind:ident = $num:literal => $name:literal,)+) => {
        /// Whether `ev` came on a bulk ring ([`Enrich::BULK`]).
        #[inline]
        pub(super) fn is_bulk(ev: &KernelEvent) -> bool {
            match ev {
                $(KernelEvent::$kind(_) => <kind::$kind as Enrich>::BULK,)+
            }
        }

        /// Enriches `ev` by its kind's [`Enrich::enrich`].
        #[inline]
        pub(super) fn enrich(cx: &mut Enricher, ev: &KernelEvent, out: &mut Vec<Enriched>) -> Option<Enriched> {
            match ev {
                $(KernelEvent::$kind(raw) => <kind::$kind as Enrich>::enrich(raw, cx, out),)+
            }
        }
    };
}
sensor_common::for_each_event_kind!(dispatch);

impl Enricher {
    /// The record of an event by a process the table knows (or finds in `/proc`), for the kinds
    /// whose record is a function of the event alone.
    pub(crate) fn by_process(&mut self, header: &EventHeader, task: &TaskRaw, event: Event) -> Enriched {
        let process = self.known_process(header.tgid, header.tid, task);
        self.done(header.boot_ns, process, event)
    }

    /// A new process: it enters the table, running its parent's program until it execs.
    pub(crate) fn fork(&mut self, f: &ForkRaw) -> Enriched {
        self.table.advance(f.header.boot_ns);
        let mut process = self.process(f.header.tgid, f.header.tid, &f.task);
        // Until it execs, the child runs its parent's program.
        if let Some(parent) = self.table.get(&process.parent_guid) {
            inherit_program(&mut process, &parent.process);
        }
        self.table.on_fork(
            sensor_proto::v1::Process::clone(&process),
            f.parent_tgid,
            f.task.parent_start_boottime_ns,
        );
        let event = events::fork(f, process.parent_guid.clone());
        self.done(f.header.boot_ns, process, event)
    }

    /// A process ended: its record, then it leaves the table (after a grace period).
    pub(crate) fn exit(&mut self, x: &ExitRaw) -> Enriched {
        // Lineage events drive the table's clock: processes that exited more than the
        // grace period ago, and that nothing needs, are retired.
        self.table.advance(x.header.boot_ns);
        let mut process = self.known_process(x.header.tgid, x.header.tid, &x.task);
        if x.task.flags & TASK_NO_MM != 0
            && !process.exe_deleted
            && !process.exe_memfd
            && self.own_mnt_ns != 0
            && u64::from(x.task.mnt_ns) == self.own_mnt_ns
        {
            // The kernel released the executable before the exit tracepoint (< 6.16).
            process.exe_deleted = procfs::exe_gone(&process.exe);
        }
        self.hash_pending.remove(&process.guid);
        let done = self.done(x.header.boot_ns, process, events::exit(x));
        self.table
            .on_exit(&done.process.as_ref().map(|p| p.guid.clone()).unwrap_or_default(), x.header.boot_ns);
        done
    }

    /// A ptrace (or process_vm_*, pidfd_getfd) of another process, named by its identity.
    pub(crate) fn ptrace(&mut self, p: &PtraceRaw) -> Enriched {
        let process = self.known_process(p.header.tgid, p.header.tid, &p.task);
        let (target_guid, target_exe) = self.live_identity(p.target_pid);
        let event = events::ptrace(p, target_guid, target_exe, p.target_sensor);
        self.done(p.header.boot_ns, process, event)
    }

    /// A signal aimed at the sensor.
    pub(crate) fn signal(&mut self, g: &SignalRaw) -> Enriched {
        let process = self.known_process(g.header.tgid, g.header.tid, &g.task);
        let (target_guid, target_exe) = self.live_identity(g.target_tgid);
        self.done(g.header.boot_ns, process, tamper::signal(g, target_guid, target_exe))
    }

    /// A `bpf()` command: a record only when it concerns the sensor's own objects.
    pub(crate) fn bpf_access(&mut self, b: &BpfCmdRaw) -> Option<Enriched> {
        if !tamper::concerns_sensor(b, &self.protected) {
            return None;
        }
        let process = self.known_process(b.header.tgid, b.header.tid, &b.task);
        Some(self.done(b.header.boot_ns, process, tamper::bpf_access(b)))
    }

    /// A network operation; a DNS query it carried becomes a second record after it.
    pub(crate) fn network(&mut self, n: &NetRaw, out: &mut Vec<Enriched>) -> Enriched {
        let process = self.known_process(n.header.tgid, n.header.tid, &n.task);
        let (event, dns) = net::network(n, &mut self.malformed_dns);
        if let Some(dns) = dns {
            let first = self.done(n.header.boot_ns, process.clone(), event);
            out.push(first);
            self.done(n.header.boot_ns, process, dns)
        } else {
            self.done(n.header.boot_ns, process, event)
        }
    }

    /// A file operation: classified against the sensitive paths and the sensor's own files; a
    /// change to the sensitive-path list itself wakes the filter's refresher.
    pub(crate) fn file(&mut self, f: &FileRaw) -> Enriched {
        let process = self.known_process(f.header.tgid, f.header.tid, &f.task);
        let spare = self.spare_files.pop().unwrap_or_default();
        let mut event = match self.sensitive.read() {
            Ok(s) => file::file(f, &s, spare),
            Err(_) => file::file(f, &crate::filter::SensitivePaths::default(), spare),
        };
        if let Event::File(fe) = &mut event {
            fe.protected = self.protected_class(f.protected, fe);
        }
        if let (Event::File(fe), Some(w)) = (&event, &self.filter_waker)
            && file::replaces_sensitive(fe)
        {
            w.notify_one();
        }
        self.done(f.header.boot_ns, process, event)
    }
}
