#!/bin/bash
# A systemd service unit is written (and removed again; never started).
# expect: sensor.persistence.systemd_unit T1543.002
. "$(dirname "$0")/lib.sh"
f=/etc/systemd/system/sensor-scenario-updater.service
trap 'rm -f "$f"' EXIT
printf '[Service]\nExecStart=%s/update\n[Install]\nWantedBy=multi-user.target\n' "$SCN_DIR" > "$f"
