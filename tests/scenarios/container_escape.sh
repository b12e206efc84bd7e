#!/bin/bash
# Enter the namespaces of process 1 (the host's own here, so nothing changes).
# expect: sensor.privilege_escalation.namespace_escape T1611
. "$(dirname "$0")/lib.sh"
nsenter -t 1 -m -u -n /bin/true 2>/dev/null || true
