#!/bin/sh
# What the real curl sees when it POSTs a body nobody takes: yandex-token
# (the demo's server, both flow modes: /get_token answers 413 in paste mode,
# 405 in callback mode, /healthz 405) next to nginx with
# client_max_body_size 8k (413), over HTTP/2 and HTTP/1.1, bodies of 20 kB,
# 200 kB and 2 MB ("Expect:" off, so the whole body is on its way).
# Prints how many answers curl saw out of how many were sent. Loopback
# only, about ten seconds; stops what it starts.
#
#   bench/oversized.sh [path/to/yandex-token]    (default: builds release)
set -eu
cd "$(dirname "$0")/.."
bin=${1:-}
if [ -z "$bin" ]; then
    cargo build --release --quiet
    bin=target/release/yandex-token
fi
work=$(mktemp -d)
pids=""
# Stops the servers and removes the bodies, whichever way the script ends.
trap 'kill $pids 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT INT TERM

for size in 20000 200000 2000000; do
    head -c "$size" /dev/zero | tr '\0' x > "$work/body-$size"
done

"$bin" demo --listen 127.0.0.1:18501 >/dev/null 2>"$work/callback.log" &
pids="$pids $!"
"$bin" demo --flow paste --listen 127.0.0.1:18502 >/dev/null 2>"$work/paste.log" &
pids="$pids $!"

have_nginx=no
if command -v nginx >/dev/null 2>&1; then
    have_nginx=yes
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
        -keyout "$work/key.pem" -out "$work/cert.pem" -days 1 2>/dev/null
    cat > "$work/nginx.conf" <<CONF
pid $work/nginx.pid;
error_log $work/nginx.err;
daemon off;
worker_processes 1;
events {}
http {
    access_log off;
    client_body_temp_path $work/body;
    server {
        listen 127.0.0.1:18503 ssl http2;
        ssl_certificate $work/cert.pem;
        ssl_certificate_key $work/key.pem;
        client_max_body_size 8k;
        location / { return 200 "ok\n"; }
    }
}
CONF
    nginx -c "$work/nginx.conf" &
    pids="$pids $!"
fi

# Ready once each answers.
for port in 18501 18502 18503; do
    [ "$port" = 18503 ] && [ "$have_nginx" = no ] && continue
    tries=0
    until curl -sk -o /dev/null "https://localhost:$port/healthz" 2>/dev/null; do
        tries=$((tries + 1))
        [ "$tries" -lt 100 ] || { echo "port $port never answered" >&2; exit 1; }
        sleep 0.1
    done
done

# count NAME EXPECTED URL...: POSTs every body to every URL over both
# protocols; prints how many answers had the expected status.
count() {
    name=$1 expected=$2
    shift 2
    seen=0 sent=0 failures=""
    for url in "$@"; do
        for size in 20000 200000 2000000; do
            for protocol in --http2 --http1.1; do
                code=$(curl -sk -o /dev/null -w '%{http_code}' --max-time 20 "$protocol" -H 'Expect:' \
                    -H 'Content-Type: application/x-www-form-urlencoded' \
                    --data-binary "@$work/body-$size" "$url" 2>/dev/null || true)
                sent=$((sent + 1))
                if [ "$code" = "$expected" ]; then
                    seen=$((seen + 1))
                else
                    failures="$failures $protocol:$size:$code"
                fi
            done
        done
    done
    printf '%-44s %2d of %2d seen%s\n' "$name" "$seen" "$sent" "${failures:+ (missed:$failures)}"
}

curl --version | head -1
count "yandex-token paste: POST /get_token (413)" 413 https://localhost:18502/get_token
count "yandex-token: POST /get_token, /healthz (405)" 405 https://localhost:18501/get_token \
    https://localhost:18501/healthz https://localhost:18502/healthz
if [ "$have_nginx" = yes ]; then
    count "nginx client_max_body_size 8k (413)" 413 https://localhost:18503/
else
    echo "nginx: not installed (apt-get install nginx-light)"
fi
