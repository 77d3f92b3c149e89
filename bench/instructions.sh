#!/bin/sh
# User-space instructions per keep-alive `GET /get_token`, counted by
# valgrind's callgrind: a figure that, unlike CPU time, does not move with
# whatever else the machine is doing, so a change to the request path can be
# judged in one run.
#   bench/instructions.sh [BINARY]     (default: builds the release binary)
# Runs the server under callgrind twice, serves 1,000 and then 3,000
# requests over 4 keep-alive connections (h2load --h1), and divides the
# difference by 2,000, which cancels start-up and the 4 handshakes.
# Needs: valgrind, h2load (apt-get install valgrind nghttp2-client), curl.
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
for tool in valgrind h2load curl python3; do
    command -v "$tool" >/dev/null || { echo "bench/instructions.sh needs $tool" >&2; exit 1; }
done
if [ $# -ge 1 ]; then
    bin=$(realpath "$1")
else
    (cd "$repo" && cargo build --release --quiet --bin yandex-token)
    bin=$repo/target/release/yandex-token
fi

instructions() { # requests -> total instructions of the server process
    work=$(mktemp -d)
    "$repo/certs/make-self-signed.sh" "$work" localhost 127.0.0.1 >/dev/null
    echo bench-secret >"$work/secret"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out" "$bin" serve \
        --listen "127.0.0.1:$port" --cert "$work/fullchain.pem" --key "$work/privkey.pem" \
        --client-id bench --client-secret-file "$work/secret" --token-dir "$work/tokens" --allow-any-login 2>"$work/log" &
    pid=$!
    i=0
    until curl -sk -o /dev/null "https://127.0.0.1:$port/healthz"; do
        i=$((i + 1)); [ $i -lt 150 ] || { kill "$pid"; cat "$work/log" >&2; exit 1; }; sleep 0.2
    done
    h2load --h1 -n "$1" -c 4 "https://localhost:$port/get_token" >"$work/h2load.txt" 2>&1
    grep -q "$1 succeeded" "$work/h2load.txt" || { kill "$pid"; cat "$work/h2load.txt" >&2; exit 1; }
    kill "$pid"; wait "$pid" 2>/dev/null || true
    awk '/^summary:/ { print $2 }' "$work/callgrind.out"
    rm -rf "$work"
}

few=$(instructions 1000)
many=$(instructions 3000)
echo "$(( (many - few) / 2000 )) instructions per GET /get_token (keep-alive; $few for 1,000 requests, $many for 3,000)"
