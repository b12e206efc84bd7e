#!/bin/bash
# A scan of 30 ports on the loopback interface.
# expect: sensor.discovery.port_scan T1046
. "$(dirname "$0")/lib.sh"
"$PY" - <<'PY'
import socket
for port in range(41000, 41030):
    s = socket.socket(); s.settimeout(0.2)
    try: s.connect(("127.0.0.1", port))
    except OSError: pass
    s.close()
PY
