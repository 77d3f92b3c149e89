#!/bin/sh
# Runs inside the nspawn guest (see nspawn.sh): sets up yandex-token as the
# README says, with a second instance in demo mode playing Yandex, and checks
# the flow, the redirect, reload and stop with curl and systemctl.
set -eu
fail() {
    echo "FAIL: $*" >&2
    journalctl --no-pager -n 60 -u yandex-token.service -u fake-yandex.service >&2 || true
    exit 1
}

systemd-sysusers /etc/sysusers.d/yandex-token.conf
mkdir -p /etc/yandex-token
make-self-signed.sh /etc/yandex-token localhost >/dev/null
chgrp yandex-token /etc/yandex-token/privkey.pem
chmod 0640 /etc/yandex-token/privkey.pem
secret="guest-secret-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s\n' "$secret" >/etc/yandex-token/client_secret
chmod 0600 /etc/yandex-token/client_secret
cat >/etc/yandex-token/env <<ENV
YANDEX_TOKEN_CLIENT_ID=nspawn-app
YANDEX_TOKEN_OAUTH_URL=https://localhost:8443/demo/oauth/
YANDEX_TOKEN_CA_FILE=/run/fake-yandex/demo-cert.pem
YANDEX_TOKEN_REDIRECT_URI=https://localhost/get_token
YANDEX_TOKEN_LOGIN_URL=https://localhost:8443/demo/oauth/info
YANDEX_TOKEN_ALLOW_LOGINS=demo-user
YANDEX_TOKEN_DIRECT_URL=https://localhost:8443/demo/oauth/direct/json/v5/
ENV

# The fake Yandex: `demo` with the app's credentials, ready when it says so.
systemd-run --quiet --unit=fake-yandex -p Type=notify -p RuntimeDirectory=fake-yandex \
    /usr/local/bin/yandex-token demo --listen 127.0.0.1:8443 --token-dir /run/fake-yandex \
    --client-id nspawn-app --client-secret-file /etc/yandex-token/client_secret \
    || fail "the fake Yandex did not start"

# The guest boots the host's enabled services: a web server there would hold
# the ports the sockets need.
for unit in nginx apache2 caddy lighttpd; do systemctl stop "$unit.service" 2>/dev/null || true; done
busy=$(ss -Hltn '( sport = :80 or sport = :443 )' 2>/dev/null || true)
[ -z "$busy" ] || fail "ports 80/443 are taken in the guest: $busy"

systemctl daemon-reload
systemctl start yandex-token.socket yandex-token-http.socket || fail "sockets"
systemctl is-active --quiet yandex-token.service && fail "the service started before any connection"

cat /etc/yandex-token/fullchain.pem /run/fake-yandex/demo-cert.pem >/tmp/cas.pem
curl_() { curl -sS --max-time 20 --cacert /tmp/cas.pem -c /tmp/jar -b /tmp/jar "$@"; }

page=$(curl_ -L https://localhost/get_token) || fail "GET /get_token"
echo "$page" | grep -q DEMO || fail "no consent page: $page"
allow=$(echo "$page" | sed -n 's/.*id="allow" href="\([^"]*\)".*/\1/p' | sed 's/&amp;/\&/g')
token=$(curl_ -L "https://localhost:8443$allow") || fail "Allow"
echo "$token" | grep -q '"access_token":"demo-' || fail "no token: $token"
echo "ok: the flow through the socket-activated service returned a token"

[ "$(stat -c '%a %U' /var/lib/yandex-token/token.json)" = "600 yandex-token" ] ||
    fail "token.json is $(stat -c '%a %U' /var/lib/yandex-token/token.json)"
[ "$(stat -c '%a' /var/lib/yandex-token)" = 700 ] || fail "state directory mode"
echo "ok: /var/lib/yandex-token/token.json is 0600, owned by yandex-token"

location=$(curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' 'http://localhost/get_token?x=1')
[ "$location" = "308 https://localhost/get_token?x=1" ] || fail "redirect: $location"
echo "ok: port 80 answers 308 to https"

fingerprint() {
    openssl s_client -connect localhost:443 -servername localhost </dev/null 2>/dev/null |
        openssl x509 -noout -fingerprint -sha256
}
before=$(fingerprint)
make-self-signed.sh /tmp/new localhost >/dev/null
install -m 0644 /tmp/new/fullchain.pem /etc/yandex-token/fullchain.pem
install -m 0640 -g yandex-token /tmp/new/privkey.pem /etc/yandex-token/privkey.pem
systemctl reload yandex-token.service || fail "reload"
after=$(fingerprint)
expected=$(openssl x509 -in /etc/yandex-token/fullchain.pem -noout -fingerprint -sha256)
[ "$before" != "$after" ] && [ "$after" = "$expected" ] || fail "reload did not swap the certificate"
echo "ok: systemctl reload serves the new certificate"

systemctl stop yandex-token.service
[ "$(systemctl show -P Result yandex-token.service)" = success ] || fail "stop result"
[ "$(systemctl show -P ExecMainStatus yandex-token.service)" = 0 ] || fail "exit status"
echo "ok: systemctl stop exits cleanly"

[ "$(stat -c '%a %U' /var/lib/yandex-token/accounts/demo-user.json)" = "600 yandex-token" ] ||
    fail "no accounts/demo-user.json"
token_of() { grep -o '"access_token": *"[^"]*"' /var/lib/yandex-token/accounts/demo-user.json; }
before=$(token_of)
systemctl start yandex-token-refresh.service || fail "the refresh service failed"
[ "$(token_of)" = "$before" ] || fail "a token a year from expiry was refreshed"
grep -q '"status": "ok"' /var/lib/yandex-token/accounts/demo-user.json ||
    fail "status did not record the Direct check: $(cat /var/lib/yandex-token/accounts/demo-user.json)"
systemctl enable --now yandex-token-refresh.timer >/dev/null 2>&1 || fail "the timer"
systemctl is-active --quiet yandex-token-refresh.timer || fail "the timer is not active"
echo "ok: the refresh service runs (nothing due) and its timer is active"

# ACME under the hardened unit: Pebble (Let's Encrypt's test CA) in the
# guest, its DNS answering 127.0.0.1 for every name, validating tls-alpn-01
# on port 443, which the socket hands to the service.
if command -v pebble >/dev/null 2>&1 && command -v pebble-challtestsrv >/dev/null 2>&1; then
    make-self-signed.sh /run/pebble localhost 127.0.0.1 >/dev/null
    chmod 0644 /run/pebble/privkey.pem
    cat >/run/pebble/config.json <<JSON
{"pebble": {"listenAddress": "127.0.0.1:14000", "managementListenAddress": "127.0.0.1:15000",
 "certificate": "/run/pebble/fullchain.pem", "privateKey": "/run/pebble/privkey.pem",
 "httpPort": 80, "tlsPort": 443, "ocspResponderURL": "", "externalAccountBindingRequired": false}}
JSON
    systemd-run --quiet --unit=pebble-dns pebble-challtestsrv -dns01 127.0.0.1:8053 -http01 "" \
        -https01 "" -tlsalpn01 "" -management 127.0.0.1:8055 -defaultIPv6 "" || fail "pebble-challtestsrv"
    systemd-run --quiet --unit=pebble -E PEBBLE_VA_NOSLEEP=1 \
        pebble -config /run/pebble/config.json -dnsserver 127.0.0.1:8053 || fail "pebble"
    i=0
    until curl -s -o /dev/null --cacert /run/pebble/fullchain.pem https://127.0.0.1:14000/dir; do
        i=$((i + 1))
        [ $i -lt 100 ] || fail "pebble did not come up"
        sleep 0.1
    done
    install -m 0644 /run/pebble/fullchain.pem /etc/yandex-token/pebble-listener.pem
    cat >>/etc/yandex-token/env <<ENV
YANDEX_TOKEN_ACME_DOMAINS=token.example.com
YANDEX_TOKEN_ACME_DIRECTORY=https://127.0.0.1:14000/dir
YANDEX_TOKEN_ACME_CA_FILE=/etc/yandex-token/pebble-listener.pem
YANDEX_TOKEN_ACME_RETRY=1s
ENV
    # Type=notify: `systemctl start` returns once READY=1 came, which is
    # only with the certificate.
    timeout 60 systemctl start yandex-token.service || fail "the ACME service did not become ready"
    status=$(systemctl show -P StatusText yandex-token.service)
    case $status in "serving the certificate for token.example.com"*) ;; *) fail "status: $status" ;; esac
    curl -s --cacert /run/pebble/fullchain.pem https://127.0.0.1:15000/roots/0 >/tmp/pebble-root.pem
    answer=$(curl -sS --max-time 20 --cacert /tmp/pebble-root.pem --resolve token.example.com:443:127.0.0.1 \
        https://token.example.com/healthz) || fail "the ACME certificate does not verify"
    [ "$answer" = ok ] || fail "healthz: $answer"
    [ "$(stat -c '%a %U' /var/lib/yandex-token/acme/certificate.json)" = "600 yandex-token" ] ||
        fail "the ACME cache is $(stat -c '%a %U' /var/lib/yandex-token/acme/certificate.json)"
    echo "ok: ACME: READY=1 with a certificate from Pebble (tls-alpn-01 through the socket), verified, cached 0600"
    systemctl restart yandex-token.service || fail "restart"
    journalctl --no-pager -o cat -u yandex-token.service | grep -q "serving the cached certificate" ||
        fail "the cached certificate was not reused"
    systemctl stop yandex-token.service
    echo "ok: ACME: a restart serves the cached certificate"
else
    echo "skipped: ACME under systemd (pebble is not installed)"
fi

log=$(journalctl --no-pager -o cat -u yandex-token.service)
echo "$log" | grep -q "method=GET path=/get_token status=200" || fail "no access log line"
echo "$log" | grep -q "$secret" && fail "the secret is in the journal"
echo "$log" | grep -q "code=" && fail "a code is in the journal"
echo "ok: the journal has the access log and no secret"
echo PASS
