#!/bin/bash
# A web server runs a shell: a copy of Python named nginx stands in for an exploited portal.
# expect: sensor.initial_access.shell_from_service T1190
. "$(dirname "$0")/lib.sh"
mkdir -p "$SCN_DIR/srv"
cp "$PY" "$SCN_DIR/srv/nginx"
"$SCN_DIR/srv/nginx" -c 'import subprocess; subprocess.run(["/bin/sh", "-c", "id; uname -a"], capture_output=True)'
