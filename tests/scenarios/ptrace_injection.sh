#!/bin/bash
# A script attaches to another process with ptrace (and detaches at once).
# expect: sensor.defense_evasion.ptrace_inject T1055.008
. "$(dirname "$0")/lib.sh"
sleep 5 & target=$!
"$PY" - "$target" <<'PY'
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
pid = int(sys.argv[1])
PTRACE_ATTACH, PTRACE_DETACH = 16, 17
if libc.ptrace(PTRACE_ATTACH, pid, None, None) == 0:
    os.waitpid(pid, 0)
    libc.ptrace(PTRACE_DETACH, pid, None, None)
PY
kill "$target" 2>/dev/null; wait "$target" 2>/dev/null || true
