#!/bin/sh
# Slow-connection flood (issue 4): N connections held open slowly (half
# mid-handshake, half slowloris) while curl probes GET /get_token; every
# probe must answer within 1 s, and peak RSS must stay under 64 MiB.
#   bench/flood.sh [CONNECTIONS=10000] [PROBES=30]
# Loopback only; server on CPU 0, flood on CPU 1; stops what it starts.
set -eu
connections=${1:-10000}
probes=${2:-30}
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
# Two builds: examples bring the dev-dependencies' tokio features, which
# must not reach the measured binary.
cargo build --release --quiet --bin yandex-token
cargo build --release --quiet --example flood
bin=$repo/target/release/yandex-token
flood=$repo/target/release/examples/flood
work=$(mktemp -d)
server=""; flooder=""
cleanup() {
    [ -n "$flooder" ] && kill "$flooder" 2>/dev/null
    [ -n "$server" ] && kill "$server" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT INT TERM
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

certs/make-self-signed.sh "$work" localhost 127.0.0.1 >/dev/null
echo flood-secret > "$work/secret"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
taskset -c 0 "$bin" serve --listen "127.0.0.1:$port" --cert "$work/fullchain.pem" --key "$work/privkey.pem" \
    --client-id flood --client-secret-file "$work/secret" --token-dir "$work/tokens" --allow-any-login ${FLOOD_SERVER_ARGS:-} 2>"$work/server.log" &
server=$!
until grep -q "listening on" "$work/server.log"; do sleep 0.05; done
rss() { awk -v k="$1:" '$1 == k { print int($2 / 1024) }' "/proc/$server/status"; }
idle_rss=$(rss VmRSS)

taskset -c 1 "$flood" "127.0.0.1:$port" "$work/fullchain.pem" "$connections" 600 >"$work/flood.log" &
flooder=$!
# Ramp-up: until the flood holds 90 % of its connections (or 30 s).
target=$((connections * 9 / 10))
i=0
while :; do
    held=$(tail -n 1 "$work/flood.log" 2>/dev/null | sed -n 's/.*held=\([0-9]*\).*/\1/p')
    [ "${held:-0}" -ge "$target" ] && break
    i=$((i + 1)); [ $i -lt 300 ] || break
    sleep 0.1
done

fail=0; worst=0; slow=0; answers=""
for n in $(seq 1 "$probes"); do
    out=$(curl -s -o /dev/null --max-time 5 -w '%{http_code} %{time_total}' --cacert "$work/fullchain.pem" \
        "https://localhost:$port/get_token" || echo "000 5")
    code=${out% *}; t=${out#* }
    ms=$(awk -v t="$t" 'BEGIN { printf "%d", t * 1000 }')
    answers="$answers $ms"
    [ "$code" = 302 ] || fail=$((fail + 1))
    [ "$ms" -lt 1000 ] || slow=$((slow + 1))
    [ "$ms" -gt "$worst" ] && worst=$ms
    sleep 0.3
done
held=$(tail -n 1 "$work/flood.log" | sed -n 's/.*held=\([0-9]*\).*/\1/p')
peak=$(rss VmHWM); now=$(rss VmRSS)
cat <<REPORT
flood: $connections slow connections requested, $held held at the end ($(tail -n 1 "$work/flood.log"))
probes: $probes x curl GET /get_token: $fail failed, $slow over 1 s, worst ${worst} ms
probe latencies (ms):$answers
server RSS: idle ${idle_rss} MiB, under flood ${now} MiB, peak ${peak} MiB
REPORT
[ "$fail" -eq 0 ] && [ "$slow" -eq 0 ] && [ "$peak" -lt 64 ]
