#!/bin/bash
# A setuid copy of Python is made; an unprivileged user runs it and becomes root.
# expect: sensor.privilege_escalation.setuid_bit T1548.001
# expect: sensor.privilege_escalation.became_root T1068
# expect: sensor.privilege_escalation.root_shell_for_user T1548.001
. "$(dirname "$0")/lib.sh"
d=/var/tmp/sensor-scenario-$$
trap 'rm -rf "$d"' EXIT
mkdir -p -m 755 "$d"
cp "$PY" "$d/py"
chmod u+s "$d/py"
setpriv --reuid=65534 --regid=65534 --clear-groups "$d/py" -c 'import os; os.setuid(0)' 2>/dev/null || true
