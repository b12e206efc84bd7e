#!/bin/bash
# A dropped copy of a script interpreter, run from shared memory, sets up a kernel-polled
# io_uring, through which it could open files and connect without a system call the tracepoints
# see (the io_uring rootkit technique).
# expect: sensor.defense_evasion.io_uring_from_dropped_binary T1562.001
# expect: sensor.defense_evasion.io_uring_sqpoll_by_script T1562.001
. "$(dirname "$0")/lib.sh"
drop="/dev/shm/scn-io-uring-$$"
mkdir "$drop"
trap 'rm -rf "$drop"' EXIT
cp "$PY" "$drop/python3"
"$drop/python3" - <<'PY'
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
params = (ctypes.c_uint32 * 30)()  # struct io_uring_params, 120 bytes
params[2] = 2  # flags: IORING_SETUP_SQPOLL
fd = libc.syscall(425, 8, params)  # io_uring_setup (same number on x86-64 and arm64)
assert fd >= 0, f"io_uring_setup failed: errno {ctypes.get_errno()}"
PY
