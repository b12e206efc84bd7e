#!/bin/bash
# A cron job is planted in /etc/cron.d (and removed again).
# expect: sensor.persistence.cron T1053.003
. "$(dirname "$0")/lib.sh"
f=/etc/cron.d/sensor-scenario-job
made=""
[ -d /etc/cron.d ] || { mkdir -p /etc/cron.d; made=1; }
trap 'rm -f "$f"; [ -n "$made" ] && rmdir /etc/cron.d' EXIT
echo "* * * * * root $SCN_DIR/update >/dev/null 2>&1" > "$f"
