#!/bin/bash
# A login script is added to /etc/profile.d (and removed again).
# expect: sensor.persistence.shell_profile T1546.004
. "$(dirname "$0")/lib.sh"
f=/etc/profile.d/sensor-scenario.sh
trap 'rm -f "$f"' EXIT
echo "# (nothing: scenario)" >> "$f"
