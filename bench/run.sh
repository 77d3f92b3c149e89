#!/bin/sh
# yandex-token against nginx `return 302`, side by side in one run (issue 5).
#   bench/run.sh [ROUNDS=3] [SECONDS=10]
# Builds the release binary, makes a throwaway ECDSA P-256 certificate, and
# runs nginx (worker_processes 1) and yandex-token side by side for ROUNDS
# rounds, each measure taken for one and then the other: servers on CPU 0,
# load generator on CPU 1, TLS 1.3 (X25519) on loopback.
# Prints one table of medians with the ratios. Needs: nginx, wrk, h2load
# (apt-get install nginx-light wrk nghttp2-client), python3, taskset.
set -eu
rounds=${1:-3}
seconds=${2:-10}
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
for tool in nginx wrk h2load python3 taskset; do
    command -v "$tool" >/dev/null || { echo "bench/run.sh needs $tool" >&2; exit 1; }
done
# Two builds: examples bring the dev-dependencies' tokio features, which
# must not reach the measured binary.
cargo build --release --quiet --bin yandex-token
cargo build --release --quiet --example flood --example startup --example exchange_latency --example handshakes
# The size target is for the build without ACME; both sizes are reported.
cargo build --release --quiet --no-default-features --bin yandex-token --target-dir "$repo/target/minimal"
bin=$repo/target/release/yandex-token
flood=$repo/target/release/examples/flood
work=$(mktemp -d)
pids=""
cleanup() {
    for pid in $pids; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM
ulimit -n "$(ulimit -Hn)"

certs/make-self-signed.sh "$work" localhost 127.0.0.1 >/dev/null
cert=$work/fullchain.pem
key=$work/privkey.pem
echo bench-secret >"$work/secret"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- the two servers -------------------------------------------------------
nginx_conf() { # port
    mkdir -p "$work/nginx"
    cat >"$work/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 20000; }
http {
    access_log off;
    client_body_temp_path $work/nginx; proxy_temp_path $work/nginx; fastcgi_temp_path $work/nginx;
    uwsgi_temp_path $work/nginx; scgi_temp_path $work/nginx;
    server {
        listen 127.0.0.1:$1 ssl http2;
        ssl_certificate $cert;
        ssl_certificate_key $key;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / { return 302 https://oauth.yandex.ru/authorize?response_type=code&client_id=bench; }
    }
}
CONF
}
start_nginx() { # port
    nginx_conf "$1"
    taskset -c 0 nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" 2>>"$work/nginx/error.log" &
    server_pid=$!
}
start_yandex_token() { # port [extra args]
    port=$1; shift
    taskset -c 0 "$bin" serve --listen "127.0.0.1:$port" --cert "$cert" --key "$key" --client-id bench \
        --client-secret-file "$work/secret" --token-dir "$work/tokens" --allow-any-login "$@" 2>"$work/yt.log" &
    server_pid=$!
}
wait_ready() { # port
    python3 - "$1" <<'PY'
import socket, ssl, sys, time
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
deadline = time.time() + 10
while time.time() < deadline:
    try:
        with ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            if s.recv(12):
                sys.exit(0)
    except OSError:
        time.sleep(0.005)
sys.exit(1)
PY
}
# "user system" CPU time in clock ticks of a process and its children,
# e.g. nginx's worker.
cpu_of() {
    user=0; system=0
    for pid in $1 $(ps -o pid= --ppid "$1" 2>/dev/null); do
        set -- $(awk '{ print $14, $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0 0)
        user=$((user + $1)); system=$((system + $2))
    done
    echo "$user $system"
}
rss_of() { # MiB of the process and its children
    total=0
    for pid in $1 $(ps -o pid= --ppid "$1" 2>/dev/null); do
        kb=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
        total=$((total + kb))
    done
    awk -v kb="$total" 'BEGIN { printf "%.1f", kb / 1024 }'
}
hz=$(getconf CLK_TCK)

# Exec to first HTTPS answer, measured by examples/startup.rs (polls every
# 100 us, verifies the certificate); median of 5.
startup_ms() { # name port
    for _ in 1 2 3 4 5; do
        if [ "$1" = nginx ]; then
            nginx_conf "$2"
            "$repo/target/release/examples/startup" "$2" "$cert" -- taskset -c 0 nginx -c "$work/nginx/nginx.conf" -p "$work/nginx"
        else
            "$repo/target/release/examples/startup" "$2" "$cert" -- taskset -c 0 "$bin" serve --listen "127.0.0.1:$2" \
                --cert "$cert" --key "$key" --client-id bench --client-secret-file "$work/secret" --token-dir "$work/tokens" --allow-any-login
        fi
    done | sort -n | sed -n 3p
}

# --- one round: both servers, each measure taken for one and then the other --
# Runs a command and prints, to stderr, the % of one core it kept busy.
with_cpu='import resource, subprocess, sys, time
start = time.monotonic()
subprocess.run(sys.argv[1:], check=True)
wall = time.monotonic() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(round(100 * (usage.ru_utime + usage.ru_stime) / wall), file=sys.stderr)'
# -> "requests requests/s wrk's-CPU-%": how busy wrk kept its own core
# (100 %: wrk, not the server, set the rate).
run_wrk() { # port extra-header
    if [ -n "$2" ]; then
        python3 -c "$with_cpu" taskset -c 1 wrk -t1 -c64 -d"${seconds}s" -H "$2" "https://localhost:$1/get_token" \
            >"$work/wrk.txt" 2>"$work/wrk-cpu.txt"
    else
        python3 -c "$with_cpu" taskset -c 1 wrk -t1 -c64 -d"${seconds}s" "https://localhost:$1/get_token" \
            >"$work/wrk.txt" 2>"$work/wrk-cpu.txt"
    fi
    awk -v cpu="$(tail -n 1 "$work/wrk-cpu.txt")" '/requests in/ { r = $1 } /Requests\/sec/ { s = $2 }
        END { print r, s, cpu }' "$work/wrk.txt"
}
# One wrk run against $server_pid -> "requests/s", the server's CPU us per
# request (in all, in user space, in the kernel) and wrk's CPU %. The
# kernel's part (reading the request, sending the answer, and on loopback
# also the receiving side's TCP work) is much the same for any server.
load_and_cpu() { # port extra-header
    before=$(cpu_of "$server_pid")
    wrk_result=$(run_wrk "$1" "$2")
    after=$(cpu_of "$server_pid")
    echo "$before $after $wrk_result" | awk -v hz="$hz" '{
        us = 1e6 / hz / $5; user = ($3 - $1) * us; kernel = ($4 - $2) * us
        printf "%s %.2f %.2f %.2f %s\n", $6, user + kernel, user, kernel, $7 }'
}
rss_now() { rss_of "$server_pid"; echo; }
keep_alive() { load_and_cpu "$1" ""; }
one_request_per_connection() { load_and_cpu "$1" "Connection: close"; }
http2() { # port -> requests/s
    taskset -c 1 h2load -n 50000 -c 32 -m 10 "https://localhost:$1/get_token" 2>/dev/null |
        awk '/^finished in/ { r = $4 } END { print r + 0 }'
}
# The same connections as wrk's Connection: close run, from a client that
# needs less CPU per connection than either server, so the server sets the
# rate (wrk's own ~430 us per connection caps it otherwise).
handshakes() { # port -> connections/s
    taskset -c 1 "$repo/target/release/examples/handshakes" "127.0.0.1:$1" "$cert" /get_token 64 "$seconds" |
        awk '$4 != 0 { print "handshakes: " $4 " connections failed" > "/dev/stderr" } { print $2 }'
}
# Runs a measure for both servers, one after the other (which goes first
# alternates from round to round), appending each figure to that server's
# row. Both servers run through the round (the idle one costs nothing), so
# the two figures a round's ratio compares are taken seconds apart, not a
# minute apart, and a drift of a shared machine falls on both alike.
each() { # measure
    for name in $order; do
        server_pid=$(cat "$work/$name.pid")
        printf ' %s' $("$1" "$(cat "$work/$name.port")") >>"$work/$name.row"
    done
}
round() { # number
    if [ $(($1 % 2)) -eq 1 ]; then order="nginx yandex-token"; else order="yandex-token nginx"; fi
    for name in nginx yandex-token; do
        port=$(free_port)
        echo "$port" >"$work/$name.port"
        printf '%s %s' "$name" "$(startup_ms "$name" "$port")" >"$work/$name.row"
    done
    for name in nginx yandex-token; do
        port=$(cat "$work/$name.port")
        if [ "$name" = nginx ]; then start_nginx "$port"; else start_yandex_token "$port"; fi
        echo "$server_pid" >"$work/$name.pid"
        pids="$pids $server_pid"
        wait_ready "$port"
    done
    each rss_now
    each keep_alive
    each rss_now
    each one_request_per_connection
    each http2
    each handshakes
    for name in nginx yandex-token; do
        echo >>"$work/$name.row"
        cat "$work/$name.row" >>"$work/results"
        server_pid=$(cat "$work/$name.pid")
        kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
    done
}

: >"$work/results"
for round in $(seq 1 "$rounds"); do
    echo "round $round/$rounds" >&2
    round "$round"
done

# 10,000 idle TLS connections (handshake done, nothing sent), per server,
# measured after 8 s: all are open by then, and the 10 s header-read
# timeout has not begun closing them.
idle_conns() { # name start-function [args] -> "MiB-before MiB-with held"
    shift
    port=$(free_port)
    start=$1; shift
    "$start" "$port" "$@"
    wait_ready "$port"
    before=$(rss_of "$server_pid")
    taskset -c 1 "$flood" "127.0.0.1:$port" "$cert" 10000 8 idle >"$work/flood.txt"
    with=$(rss_of "$server_pid")
    held=$(tail -n 1 "$work/flood.txt" | sed -n 's/.*held=\([0-9]*\).*/\1/p')
    kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
    echo "$before $with $held"
}
set -- $(idle_conns nginx start_nginx); nginx_idle10k="$2 MiB ($3 held)"
set -- $(idle_conns yt start_yandex_token --max-connections 12000); yt_before=$1; yt_with=$2; yt_held=$3
per_conn=$(awk -v a="$yt_before" -v b="$yt_with" -v n="$yt_held" 'BEGIN { printf "%d", (b - a) * 1048576 / n }')

size=$(stat -c %s "$bin")
size_minimal=$(stat -c %s "$repo/target/minimal/release/yandex-token")
exchange=$(taskset -c 0 "$repo/target/release/examples/exchange_latency" 2000 | sed -n 's/^added by the exchange at p50: //p')
python3 - "$work/results" "$rounds" "$seconds" "$size" "$size_minimal" "$yt_with" "$yt_held" "$per_conn" "$nginx_idle10k" "$exchange" <<'PY'
import statistics, sys
path, rounds, seconds, size, size_minimal, yt10k, held, per_conn, nginx10k, exchange = sys.argv[1:]
rows = {}
for line in open(path):
    name, *values = line.split()
    rows.setdefault(name, []).append([float(v) for v in values])
med = {name: [statistics.median(col) for col in zip(*vals)] for name, vals in rows.items()}
n, y = med["nginx"], med["yandex-token"]
# Each round's ratio compares two runs seconds apart; on a shared machine
# their median is steadier than the ratio of the two medians.
ratios = [[b / a if a else float("nan") for a, b in zip(rn, ry)]
          for rn, ry in zip(rows["nginx"], rows["yandex-token"])]
# In the order of the rows' columns: the order `round` measures in.
cols = ["startup to first answer ms", "RSS idle MiB", "keep-alive req/s", "CPU us/req",
        "CPU us/req, user space", "CPU us/req, kernel", "wrk's own CPU %, keep-alive",
        "RSS after keep-alive MiB", "new TLS conn/s", "CPU us/conn", "CPU us/conn, user space",
        "CPU us/conn, kernel", "wrk's own CPU %, new connections", "h2load req/s",
        "new TLS conn/s, rustls client (examples/handshakes.rs)"]
# ...and in the order of the table.
shown = [2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 14, 13, 1, 7, 0]
print(f"medians of {rounds} interleaved rounds, wrk -t1 -c64 -d{seconds}s, server on CPU 0, load on CPU 1\n")
print("| measure | nginx `return 302` | yandex-token `GET /get_token` | ratio (yt / nginx), median of rounds | ratio per round |")
print("|---|---|---|---|---|")
def fig(v):
    return f"{v:,.2f}" if v < 100 else f"{v:,.1f}"
for i in shown:
    col = cols[i]
    each = [r[i] for r in ratios]
    print(f"| {col} | {fig(n[i])} | {fig(y[i])} | {statistics.median(each):.2f} | "
          + " ".join(f"{r:.2f}" for r in each) + " |")
print(f"| RSS with 10,000 idle TLS connections | {nginx10k} | {yt10k} MiB ({held} held) | | |")
# What user-space work alone can reach: our kernel time over nginx's total.
floor_req = statistics.median(ry[5] / rn[3] for rn, ry in zip(rows["nginx"], rows["yandex-token"]))
floor_conn = statistics.median(ry[11] / rn[9] for rn, ry in zip(rows["nginx"], rows["yandex-token"]))
print(f"\nyandex-token's kernel time alone is {floor_req:.2f}x nginx's whole CPU per request "
      f"and {floor_conn:.2f}x per new connection (medians of rounds): "
      "no user-space change can take a ratio below that.")
print(f"\nyandex-token: {per_conn} bytes per idle TLS connection; release binary, stripped: "
      f"{int(size) / 1048576:.2f} MiB with the default features (ACME included), "
      f"{int(size_minimal) / 1048576:.2f} MiB without ACME (--no-default-features);")
print(f"the token exchange adds {exchange} at p50 to a local endpoint that answers at once (examples/exchange_latency.rs)")
PY
