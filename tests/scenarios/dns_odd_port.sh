#!/bin/bash
# A DNS query is sent to a resolver on a non-standard port (nothing listens; the query is enough).
# expect: sensor.command_and_control.dns_odd_port T1071.004
. "$(dirname "$0")/lib.sh"
"$PY" - <<'PY'
import socket, struct
q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
for label in "c2.example.net".split("."):
    q += bytes([len(label)]) + label.encode()
q += b"\0" + struct.pack(">HH", 16, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(q, ("127.0.0.1", 5300))
PY
