use std::{os::unix::fs::PermissionsExt as _, time::Duration};

use super::*;
use crate::sinks::spec::DiskOptions;

fn write_n(sink: &mut FileSink, n: usize, size: usize) {
    let rec = AuditRecord::default();
    for _ in 0..n {
        sink.write(&rec, &vec![7u8; size]).expect("write");
    }
    sink.flush().expect("flush");
}

fn unsynced(sink: &FileSink) -> bool {
    sink.current.as_ref().expect("a file is open").unsynced
}

/// `fsync = "batch"` syncs at a catch-up only once `fsync_interval` has passed since the
/// last sync, and says when the pipeline must flush again; urgent records and the stop sync
/// at once; the other policies never ask for a later flush.
#[test]
fn batch_syncs_at_most_once_per_interval() {
    let tmp = tempfile::tempdir().expect("tmp");
    // Long enough that a descheduled test thread does not pass it between two steps.
    let interval = Duration::from_secs(1);
    let opts = FileOptions { fsync_interval: interval, disk: DiskOptions::NONE, ..FileOptions::default() };
    let mut sink = FileSink::open(&tmp.path().join("rec"), opts).expect("open");
    assert_eq!(sink.flush_due(), None, "nothing written");
    write_n(&mut sink, 3, 10);
    // The file was opened (a sync point) just now: the bytes are in the kernel, not synced.
    assert!(unsynced(&sink));
    let due = sink.flush_due().expect("a later flush is asked for");
    assert!(due <= interval && due > Duration::ZERO, "{due:?}");
    std::thread::sleep(due);
    assert_eq!(sink.flush_due(), Some(Duration::ZERO));
    sink.flush().expect("flush");
    assert!(!unsynced(&sink), "synced once the interval was over");
    assert_eq!(sink.flush_due(), None);

    write_n(&mut sink, 1, 10);
    assert!(unsynced(&sink), "within the interval of the last sync");
    let rec = AuditRecord::default();
    sink.write(&rec, &[1u8; 10]).expect("write");
    sink.urgent(&rec, &[1u8; 10]).expect("urgent");
    assert!(!unsynced(&sink), "urgent records are synced at once");

    let zero =
        FileOptions { fsync_interval: Duration::ZERO, disk: DiskOptions::NONE, ..FileOptions::default() };
    let mut every = FileSink::open(&tmp.path().join("zero"), zero).expect("open");
    write_n(&mut every, 2, 10);
    assert!(!unsynced(&every), "a zero interval syncs at every catch-up");

    for fsync in [Fsync::Rotate, Fsync::Never] {
        let opts = FileOptions { fsync, disk: DiskOptions::NONE, ..FileOptions::default() };
        let mut sink = FileSink::open(&tmp.path().join(format!("{fsync:?}")), opts).expect("open");
        write_n(&mut sink, 2, 10);
        assert!(unsynced(&sink));
        assert_eq!(sink.flush_due(), None, "{fsync:?}");
    }
}

/// Pages of `file` (of `len` bytes) in the page cache, per MiB from the start, and the
/// pages of a MiB.
fn resident_per_mib(file: &File, len: usize) -> (Vec<usize>, usize) {
    use std::os::fd::AsRawFd as _;
    // SAFETY: a shared read-only mapping of an open file, unmapped below; `mincore` writes
    // one byte per page into a vector of that many bytes.
    unsafe {
        let page = usize::try_from(libc::sysconf(libc::_SC_PAGESIZE)).expect("page size");
        let map =
            libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, file.as_raw_fd(), 0);
        assert_ne!(map, libc::MAP_FAILED, "mmap: {}", std::io::Error::last_os_error());
        let mut pages = vec![0u8; len.div_ceil(page)];
        let rc = libc::mincore(map, len, pages.as_mut_ptr());
        let err = std::io::Error::last_os_error();
        libc::munmap(map, len);
        assert_eq!(rc, 0, "mincore: {err}");
        let per_mib = (1 << 20) / page;
        (pages.chunks(per_mib).map(|c| c.iter().filter(|&&p| p & 1 == 1).count()).collect(), per_mib)
    }
}

/// Each sync drops the page cache of what the sync before it made durable (record files are
/// written once: they must not grow the page cache for ever); the bytes of the last sync
/// interval stay cached for a shipper tailing the file, and the file reads back whole.
#[test]
fn synced_records_leave_the_page_cache_one_sync_later() {
    // Beside the test binary, on the disk it was built on: a tmpfs (a common `/tmp`) has no
    // page cache to drop.
    let exe = std::env::current_exe().expect("the test binary");
    let tmp = tempfile::tempdir_in(exe.parent().expect("its directory")).expect("tmp");
    let zero =
        FileOptions { fsync_interval: Duration::ZERO, disk: DiskOptions::NONE, ..FileOptions::default() };
    let mut sink = FileSink::open(&tmp.path().join("rec"), zero).expect("open");
    // Three syncs of 2 MiB each (a zero interval syncs at every flush; `write_n` flushes).
    for _ in 0..3 {
        write_n(&mut sink, 32, 64 * 1024);
    }
    let len = usize::try_from(sink.current.as_ref().expect("open").len).expect("len");
    let path = record_files(&tmp.path().join("rec")).expect("list").pop().expect("a record file");
    let file = File::open(&path).expect("open the record file");
    let (resident, per_mib) = resident_per_mib(&file, len);
    assert_eq!(resident.len(), 7, "{len} bytes: 6 MiB of data and frame headers");
    // After the third sync, what the first two synced is dropped (a page the range only
    // partly covers stays: the file's frames do not end on page boundaries); what the last
    // sync made durable stays.
    assert!(resident[..4].iter().sum::<usize>() <= 2, "synced earlier and still cached: {resident:?}");
    assert!(resident[4..6].iter().all(|&n| n == per_mib), "the last sync's pages dropped: {resident:?}");
    assert_eq!(fs::read(&path).expect("read back").len(), len, "the file is whole");
}

#[test]
fn rotates_by_size_and_keeps_count_and_bytes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("rec");
    let opts =
        FileOptions { max_file_bytes: 1000, max_files: 3, disk: DiskOptions::NONE, ..FileOptions::default() };
    let mut sink = FileSink::open(&dir, opts).expect("open");
    write_n(&mut sink, 50, 98); // 100-byte frames: a new file every 10 records
    let files = record_files(&dir).expect("list");
    assert_eq!(files.len(), 3, "{files:?}");
    assert_eq!(fs::metadata(&dir).expect("dir").permissions().mode() & 0o777, 0o700);
    for f in &files {
        assert_eq!(fs::metadata(f).expect("file").permissions().mode() & 0o777, 0o600);
    }

    // One sink per directory at a time (the directory lock).
    assert!(FileSink::open(&dir, FileOptions::default()).is_err(), "a second sink on one directory");
    drop(sink);
    let opts = FileOptions {
        max_file_bytes: 1000,
        max_total_bytes: 2500,
        disk: DiskOptions::NONE,
        ..FileOptions::default()
    };
    let mut sink = FileSink::open(&dir, opts).expect("reopen");
    write_n(&mut sink, 50, 98);
    let total: u64 =
        record_files(&dir).expect("list").iter().map(|f| fs::metadata(f).expect("m").len()).sum();
    assert!(total <= 2500 + 1000, "retention keeps about max_total_bytes, got {total}");
}

#[test]
fn a_new_run_sorts_after_the_last_even_when_the_clock_stepped_back() {
    let tmp = tempfile::tempdir().expect("tmp");
    // The last run's file was stamped an hour ahead of this clock (NTP stepped it back since).
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("now").as_millis();
    let future = tmp.path().join(recordfile::file_name(now + 3_600_000, 4));
    fs::write(&future, b"").expect("old file");
    for _ in 0..2 {
        // Two runs within one millisecond start their numbering at 0 again.
        let mut sink =
            FileSink::open(tmp.path(), FileOptions { disk: DiskOptions::NONE, ..FileOptions::default() })
                .expect("open");
        write_n(&mut sink, 1, 10);
        assert_eq!(sink.unwritten, 0, "the record was written");
    }
    let files = record_files(tmp.path()).expect("list");
    assert_eq!(files.len(), 3, "{files:?}");
    assert_eq!(files[0], future, "older files sort first: {files:?}");
    for f in &files[1..] {
        assert_eq!(fs::metadata(f).expect("meta").len(), 11, "{f:?} holds its record");
    }
}

#[test]
fn rotates_by_age() {
    let tmp = tempfile::tempdir().expect("tmp");
    let opts = FileOptions {
        max_file_age: Duration::from_millis(50),
        disk: DiskOptions::NONE,
        ..FileOptions::default()
    };
    let mut sink = FileSink::open(tmp.path(), opts).expect("open");
    write_n(&mut sink, 1, 10);
    std::thread::sleep(Duration::from_millis(80));
    write_n(&mut sink, 1, 10);
    assert_eq!(record_files(tmp.path()).expect("list").len(), 2);
}
