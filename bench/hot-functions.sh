#!/bin/sh
# Writes build/hot-functions.txt, the functions build.rs has the linker lay
# out first: those the release binary executes, first for startup and one
# /healthz, then for keep-alive, HTTP/2, TLS 1.2 and one-request
# connections, then for a whole flow with its token exchange (the demo).
# Rerun it after a dependency update or a large change; bench/run.sh's
# "RSS idle" shows when the list has gone stale. About 2 minutes once both
# builds are compiled.
#   bench/hot-functions.sh
# Needs: valgrind, curl, h2load, python3 (apt-get install valgrind
# nghttp2-client curl python3).
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
for tool in valgrind curl h2load python3; do
    command -v "$tool" >/dev/null || { echo "bench/hot-functions.sh needs $tool" >&2; exit 1; }
done
# The shipped release builds, with and without ACME, with their symbols
# kept. Only this last crate gets the extra flag, so every dependency and
# the library keep the symbol names (hashes included) they have in
# `cargo build --release`; the two builds name many functions differently,
# so the list holds both sets.
cargo rustc --release --quiet --bin yandex-token --target-dir target/hot -- -C strip=none
cargo rustc --release --quiet --no-default-features --bin yandex-token --target-dir target/hot-minimal -- -C strip=none
work=$(mktemp -d)
pid=""
cleanup() {
    [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM
certs/make-self-signed.sh "$work" localhost 127.0.0.1 >/dev/null
echo bench-secret >"$work/secret"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url=https://localhost:$port

# Runs the binary under callgrind with ARGS, waits for its first answer,
# runs LOAD (a shell function), stops it.
traced() { # out load args...
    out=$1; load=$2; shift 2
    valgrind --tool=callgrind --demangle=no --compress-strings=no --compress-pos=no \
        --callgrind-out-file="$work/$out" "$bin" "$@" 2>"$work/$out.log" &
    pid=$!
    i=0
    until curl -sk --max-time 5 "$url/healthz" >/dev/null 2>&1; do
        i=$((i + 1)); [ "$i" -lt 300 ] || { cat "$work/$out.log" >&2; exit 1; }
        sleep 0.1
    done
    "$load"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    pid=""
}
serve() {
    traced "$@" serve --listen "127.0.0.1:$port" --cert "$work/fullchain.pem" --key "$work/privkey.pem" \
        --client-id bench --client-secret-file "$work/secret" --token-dir "$work/tokens" --allow-any-login
}
nothing() { :; }
load() {
    h2load --h1 -n 300 -c 4 "$url/get_token" >/dev/null
    h2load -n 300 -c 4 -m 4 "$url/get_token" >/dev/null
    for _ in 1 2 3 4 5 6 7 8; do
        curl -sk -H 'Connection: close' "$url/get_token" >/dev/null
        curl -sk --tls-max 1.2 "$url/get_token" >/dev/null
    done
    curl -sk "$url/nowhere" "$url/metrics" "$url/get_token?code=x&state=y" >/dev/null
}
flow() {
    jar=$work/jar
    page=$(curl -skL -c "$jar" -b "$jar" "$url/get_token")
    allow=$(echo "$page" | sed -n 's/.*id="allow" href="\([^"]*\)".*/\1/p' | sed 's/&amp;/\&/g')
    curl -sk -L -c "$jar" -b "$jar" "$url$allow" | grep -q access_token
}
for build in hot hot-minimal; do
    bin=$repo/target/$build/release/yandex-token
    serve "$build-1-startup.out" nothing
    serve "$build-2-load.out" load
    traced "$build-3-flow.out" flow demo --listen "127.0.0.1:$port" --token-dir "$work/demo-$build"
done

# Function names, each stage's new ones after the last; sorted within a
# stage, so a rerun changes only the lines whose functions changed.
python3 - "$work" >build/hot-functions.txt <<'PY'
import glob, os, sys
work = sys.argv[1]
seen = set()
for stage in ("1-startup", "2-load", "3-flow"):
    new = set()
    for trace in sorted(glob.glob(f"{work}/*-{stage}.out")):
        ob = cob = None
        for line in open(trace, errors="replace"):
            key, _, value = line.rstrip("\n").partition("=")
            if key == "ob":
                ob = value
            elif key == "cob":
                cob = value
            elif key in ("fn", "cfn"):
                obj = cob if key == "cfn" and cob else ob
                cob = None
                name = value.split("'")[0]  # callgrind marks recursion as name'2
                if obj and os.path.basename(obj) == "yandex-token" and not name.startswith(("0x", "(")):
                    new.add(name)
    for name in sorted(new - seen):
        print(name)
    seen |= new
PY
echo "build/hot-functions.txt: $(wc -l <build/hot-functions.txt) functions" >&2
