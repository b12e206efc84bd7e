#!/bin/bash
# A program is copied into an anonymous memory file and executed from it.
# expect: sensor.execution.fileless T1620
# expect: sensor.defense_evasion.memfd_by_script T1620
. "$(dirname "$0")/lib.sh"
"$PY" - <<'PY'
import os
fd = os.memfd_create("payload", 0)
with open("/bin/true", "rb") as f:
    os.write(fd, f.read())
pid = os.fork()
if pid == 0:
    os.execv(f"/proc/self/fd/{fd}", ["payload"])
os.waitpid(pid, 0)
PY
