#!/bin/sh
# Boots Debian's systemd in systemd-nspawn on an overlay of the host root,
# installs the given yandex-token binary and the shipped units into it, and
# runs guest.sh inside: the flow through the socket-activated service
# against a fake Yandex, reload, stop. Cleans up every mount and process.
#   tests/systemd/nspawn.sh path/to/yandex-token
set -eu
bin=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work=$(mktemp -d /tmp/yandex-token-nspawn.XXXXXX)
nspawn_pid=""
leader=""

cleanup() {
    status=$?
    if [ -n "$leader" ]; then kill -s RTMIN+4 "$leader" 2>/dev/null || true; fi
    if [ -n "$nspawn_pid" ]; then
        # Give the guest 20 s to power off, then stop it hard.
        i=0
        while kill -0 "$nspawn_pid" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
        kill -KILL "$nspawn_pid" 2>/dev/null || true
        wait "$nspawn_pid" 2>/dev/null || true
    fi
    if [ $status -ne 0 ] && [ -f "$work/console.log" ]; then
        echo "--- guest console (last 40 lines) ---" >&2
        tail -n 40 "$work/console.log" >&2 || true
    fi
    umount -R "$work/root" 2>/dev/null || true
    umount "$work/t" 2>/dev/null || true
    rm -rf "$work"
    exit $status
}
trap cleanup EXIT INT TERM

mkdir "$work/t"
mount -t tmpfs tmpfs "$work/t"
mkdir "$work/t/upper" "$work/t/work" "$work/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$work/t/upper,workdir=$work/t/work" "$work/root"
# An empty /dev: nspawn populates its own.
rm -rf "$work/t/upper/dev" && mkdir "$work/t/upper/dev"

install -m 0755 "$bin" "$work/root/usr/local/bin/yandex-token"
install -m 0755 "$repo/certs/make-self-signed.sh" "$work/root/usr/local/bin/make-self-signed.sh"
install -m 0755 "$here/guest.sh" "$work/root/usr/local/bin/yandex-token-guest-test"
install -m 0644 "$repo"/systemd/yandex-token.service "$repo"/systemd/yandex-token.socket \
    "$repo"/systemd/yandex-token-http.socket "$repo"/systemd/yandex-token-refresh.service \
    "$repo"/systemd/yandex-token-refresh.timer "$work/root/etc/systemd/system/"
mkdir -p "$work/root/etc/sysusers.d"
install -m 0644 "$repo/systemd/yandex-token.sysusers" "$work/root/etc/sysusers.d/yandex-token.conf"

SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 systemd-nspawn --quiet --directory="$work/root" \
    --private-network --register=no --keep-unit --link-journal=no \
    --machine="yandex-token-$$" --boot >"$work/console.log" 2>&1 </dev/null &
nspawn_pid=$!

i=0
while [ -z "$leader" ]; do
    leader=$(pgrep -P "$nspawn_pid" -x systemd || true)
    i=$((i + 1))
    [ $i -lt 300 ] || { echo "the guest's systemd did not start" >&2; exit 1; }
    [ -n "$leader" ] || sleep 0.1
done
# Waits for the boot to finish (the guest's bus socket may not exist yet at
# first); "degraded" (a host service failing in the guest) is fine here.
i=0
while :; do
    state=$(nsenter -t "$leader" -a systemctl is-system-running --wait 2>/dev/null || true)
    case $state in running | degraded) break ;; esac
    i=$((i + 1))
    [ $i -lt 600 ] || { echo "the guest did not finish booting: $state" >&2; exit 1; }
    sleep 0.2
done
echo "guest booted: $state"
timeout 300 nsenter -t "$leader" -a /usr/local/bin/yandex-token-guest-test
