# Helpers for the scenario scripts (sourced).
set -u
: "${SCN_DIR:?}" "${PY:=/usr/bin/python3}"

# A throw-away HTTP server on 127.0.0.1 serving $SCN_DIR/www; sets HTTP_PORT and HTTP_PID.
http_server() {
    mkdir -p "$SCN_DIR/www"
    "$PY" - "$SCN_DIR/www" > "$SCN_DIR/http.port" <<'PY' &
import http.server, socketserver, sys, os, functools
os.chdir(sys.argv[1])
h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
h.log_message = lambda *a: None
s = socketserver.TCPServer(("127.0.0.1", 0), h)
print(s.server_address[1], flush=True)
s.timeout = 0.2
import time
end = time.time() + 60
while time.time() < end and not os.path.exists(sys.argv[1] + "/../stop"):
    s.handle_request()
PY
    HTTP_PID=$!
    for _ in $(seq 50); do [ -s "$SCN_DIR/http.port" ] && break; sleep 0.1; done
    HTTP_PORT=$(cat "$SCN_DIR/http.port")
}

stop_http_server() {
    touch "$SCN_DIR/stop"
    wait "${HTTP_PID:-}" 2>/dev/null || true
}

# A TCP listener on 127.0.0.1 that sends `exit` to whoever connects; sets LISTEN_PORT, LISTEN_PID.
listener() {
    "$PY" - > "$SCN_DIR/listen.port" <<'PY' &
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
print(s.getsockname()[1], flush=True)
s.settimeout(20)
try:
    c, _ = s.accept(); c.sendall(b"exit\n"); c.settimeout(5); c.recv(100); c.close()
except OSError:
    pass
PY
    LISTEN_PID=$!
    for _ in $(seq 50); do [ -s "$SCN_DIR/listen.port" ] && break; sleep 0.1; done
    LISTEN_PORT=$(cat "$SCN_DIR/listen.port")
}
