#!/bin/sh
# Scans the real server's TLS with testssl.sh and sslyze, as operators do:
#   tests/scan/tls-scan.sh path/to/yandex-token [path/to/sslyze]
# Loopback only; stops everything it started; about a minute.
# Passes when testssl.sh reports nothing above LOW (except cert_revocation,
# which a test PKI cannot have) and sslyze --mozilla_config=intermediate
# exits 0.
set -eu
bin=$(realpath "$1")
sslyze=$(command -v "${2:-sslyze}" || true)
[ -n "$sslyze" ] && sslyze=$(realpath "$sslyze") || { echo "sslyze not found: pip install sslyze" >&2; exit 1; }
work=$(mktemp -d)
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT INT TERM
cd "$work"

# A test CA and an ECDSA P-256 leaf for localhost, valid 90 days.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
    -days 90 -subj "/CN=yandex-token scan CA" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout privkey.pem -out leaf.csr \
    -subj "/CN=localhost" 2>/dev/null
cat > ext.cnf <<'EXT'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EXT
openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 90 -extfile ext.cnf \
    -out leaf.pem 2>/dev/null
cat leaf.pem ca.pem > fullchain.pem
echo scan-secret > secret

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" serve --listen "127.0.0.1:$port" --cert fullchain.pem --key privkey.pem --client-id scan \
    --client-secret-file secret --token-dir tokens --allow-any-login 2>server.log &
pid=$!
i=0
until grep -q "listening on" server.log; do
    i=$((i + 1)); [ $i -lt 100 ] || { cat server.log; exit 1; }; sleep 0.1
done

status=0
echo "== testssl.sh"
timeout 300 testssl --quiet --color 0 --warnings off --nodns none --ip 127.0.0.1 --add-ca ca.pem \
    -p -s -f -P -S -h -U --jsonfile testssl.json "localhost:$port" >testssl.txt 2>&1 || true
python3 - testssl.json <<'PY' || status=1
import json, sys
findings = json.load(open(sys.argv[1]))
allowed = {"cert_revocation"}
bad = [f for f in findings
       if f.get("severity") in ("MEDIUM", "HIGH", "CRITICAL") and f.get("id") not in allowed]
for f in findings:
    if f.get("severity") in ("LOW", "MEDIUM", "HIGH", "CRITICAL", "WARN"):
        print(f"  {f['severity']:8} {f['id']}: {f.get('finding', '')}")
print(f"testssl.sh: {len(findings)} findings, {len(bad)} above LOW (besides {', '.join(sorted(allowed))})")
sys.exit(1 if bad else 0)
PY

echo "== sslyze --mozilla_config=intermediate"
if timeout 300 "$sslyze" --mozilla_config=intermediate --certinfo_ca_file ca.pem "localhost:$port{127.0.0.1}" >sslyze.txt 2>&1; then
    grep -E "Compliant" sslyze.txt || true
else
    status=1
    tail -n 30 sslyze.txt
fi
exit $status
