//! The kernel side of tamper evidence: telling the programs who the sensor is (the `CONTROL`
//! map), and which programs, maps and links are its own (`OWN_IDS`, frozen once filled), so
//! that `bpf()` commands by other processes on them are reported.

use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd};

use anyhow::Context as _;
use aya::{
    Ebpf,
    maps::{Array, HashMap, Map, MapData},
};
use sensor_common::{
    names,
    tamper::{Control, OBJ_LINK, OBJ_MAP, OBJ_PROG, own_id_key},
};
use tracing::{debug, info, warn};

/// `BPF_MAP_FREEZE` (include/uapi/linux/bpf.h).
const BPF_MAP_FREEZE: libc::c_long = 22;

/// Writes the control block: the sensor's tgid (signals and process access aimed at it are
/// reported, its own changes to its protected files are not), and the tgid whose own activity is
/// not reported (`ignore_tgid`, 0: report everything).
pub fn claim(ebpf: &mut Ebpf, ignore_tgid: u32) -> anyhow::Result<()> {
    let mut control: Array<_, Control> =
        Array::try_from(ebpf.map_mut(names::MAP_CONTROL).context("map CONTROL missing")?)?;
    write_control(&mut control, ignore_tgid)
}

/// Writes the control block of this process into `control`.
pub fn write_control<T: std::borrow::BorrowMut<MapData>>(
    control: &mut Array<T, Control>,
    ignore_tgid: u32,
) -> anyhow::Result<()> {
    let c = Control {
        ignore_tgid,
        sensor_tgid: std::process::id(),
        // 0: the programs compare the tgid only (the sensor is alive while it reads the rings).
        sensor_start_ns: 0,
        muted: 0,
        _reserved: 0,
    };
    control.set(0, c, 0).context("writing the CONTROL map")
}

/// The data of a map of the object.
pub fn map_data(m: &Map) -> Option<&MapData> {
    match m {
        Map::Array(d)
        | Map::HashMap(d)
        | Map::LruHashMap(d)
        | Map::PerCpuArray(d)
        | Map::PerCpuHashMap(d)
        | Map::ProgramArray(d)
        | Map::RingBuf(d) => Some(d),
        _ => None,
    }
}

/// Kernel ids of every map of the object (call before any map is taken out).
pub fn map_ids(ebpf: &Ebpf) -> Vec<u32> {
    ebpf.maps().filter_map(|(_, m)| map_data(m)?.info().ok().map(|i| i.id())).collect()
}

/// Fills `OWN_IDS` with the ids of the sensor's programs, maps (`map_ids`) and the links of its
/// programs, then freezes the map so no process can change the list. Call after attach.
/// Failures are logged: the collectors still run, only the `bpf()` tamper check is weaker.
pub fn register_own_ids(ebpf: &mut Ebpf, map_ids: &[u32]) {
    let progs: Vec<u32> = ebpf.programs().filter_map(|(_, p)| p.info().ok().map(|i| i.id())).collect();
    // Links are found through their programs (raw tracepoint links are bpf links; classic
    // tracepoint links are bpf links of type perf_event from 5.15 on, invisible before).
    let links: Vec<u32> =
        held_links().into_iter().filter(|l| progs.contains(&l.program_id)).map(|l| l.id).collect();
    let Some(map) = ebpf.map_mut(names::MAP_OWN_IDS) else {
        warn!("map OWN_IDS missing: bpf() commands on the sensor's objects are not reported");
        return;
    };
    let res = (|| -> anyhow::Result<()> {
        let mut own: HashMap<_, u64, u32> = HashMap::try_from(&mut *map)?;
        let keys = progs
            .iter()
            .map(|id| own_id_key(OBJ_PROG, *id))
            .chain(map_ids.iter().map(|id| own_id_key(OBJ_MAP, *id)))
            .chain(links.iter().map(|id| own_id_key(OBJ_LINK, *id)));
        for k in keys {
            own.insert(k, 1, 0).context("filling OWN_IDS")?;
        }
        Ok(())
    })();
    if let Err(e) = res {
        warn!(error = %format!("{e:#}"), "own object ids incomplete: bpf() commands on them may go unreported");
        return;
    }
    info!(programs = progs.len(), maps = map_ids.len(), links = links.len(), "own BPF objects registered");
    // Only the loader writes these: nobody may change them later.
    let decoding = [sensor_common::ia32::MAP_IA32_SYSCALLS, sensor_common::ia32::MAP_IA32_SOCKETCALL];
    for name in
        [names::MAP_OWN_IDS, names::MAP_FILE_SYSCALLS, names::MAP_NET_SYSCALLS].into_iter().chain(decoding)
    {
        if let Some(d) = ebpf.map(name).and_then(map_data)
            && let Err(e) = freeze(d.fd().as_fd())
        {
            debug!(map = name, error = %e, "map not frozen (kernels before 5.2)");
        }
    }
}

/// `BPF_MAP_FREEZE`: no more changes to the map from user space (the programs may still write).
pub fn freeze(fd: BorrowedFd<'_>) -> std::io::Result<()> {
    // `union bpf_attr` for this command: `__u32 map_fd`, the rest zero.
    bpf(BPF_MAP_FREEZE, &[u64::from(u32::try_from(fd.as_raw_fd()).unwrap_or(u32::MAX))]).map(drop)
}

/// `bpf()` with a small attribute block.
pub(crate) fn bpf(cmd: libc::c_long, attr: &[u64]) -> std::io::Result<i64> {
    // SAFETY: the bpf syscall reads `size_of_val(attr)` bytes from a valid pointer.
    let r = unsafe {
        libc::syscall(libc::SYS_bpf, cmd, attr.as_ptr(), std::mem::size_of_val(attr) as libc::c_uint)
    };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(r) }
}

/// A BPF link whose descriptor this process holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldLink {
    pub id: u32,
    pub program_id: u32,
}

/// The BPF links this process holds a descriptor of, from `/proc/self/fdinfo` (`link_id:` and
/// `prog_id:` lines, printed for link descriptors since 5.8). Not `aya::programs::loaded_links`:
/// that takes a descriptor of every link of the machine by id, which another sensor running
/// (a restart that overlaps, a second instance) rightly reports as a `bpf()` command on its
/// objects.
pub fn held_links() -> Vec<HeldLink> {
    let mut links: Vec<HeldLink> = held_link_fds().into_iter().map(|(_, l)| l).collect();
    links.sort_unstable_by_key(|l| l.id);
    links.dedup();
    links
}

/// This process's BPF link descriptors, with their links (see [`held_links`]).
pub fn held_link_fds() -> Vec<(i32, HeldLink)> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fdinfo") else { return Vec::new() };
    dir.filter_map(Result::ok)
        .filter_map(|e| {
            let fd: i32 = e.file_name().to_str()?.parse().ok()?;
            Some((fd, fdinfo_link(&std::fs::read_to_string(e.path()).ok()?)?))
        })
        .collect()
}

/// The link of one descriptor's fdinfo text, if it is a BPF link.
fn fdinfo_link(info: &str) -> Option<HeldLink> {
    let field = |name: &str| info.lines().find_map(|l| l.strip_prefix(name)?.trim().parse::<u32>().ok());
    Some(HeldLink { id: field("link_id:")?, program_id: field("prog_id:")? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_come_from_link_descriptors_only() {
        let link = "pos:\t0\nflags:\t02000000\nmnt_id:\t15\nino:\t2071\nlink_type:\traw_tracepoint\n\
                    link_id:\t41\nprog_tag:\t9a0b3c1d2e3f4a5b\nprog_id:\t123\ntp_name:\tsys_enter\n";
        assert_eq!(fdinfo_link(link), Some(HeldLink { id: 41, program_id: 123 }));
        // A program's or a map's descriptor, and a plain file's, are not links.
        let prog =
            "pos:\t0\nflags:\t02000002\nprog_type:\t26\nprog_jited:\t1\nprog_tag:\tab\nprog_id:\t123\n";
        assert_eq!(fdinfo_link(prog), None);
        assert_eq!(fdinfo_link("pos:\t0\nflags:\t0100000\nmnt_id:\t29\nino:\t5\n"), None);
    }
}
