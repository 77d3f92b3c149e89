#!/bin/sh
# Makes a self-signed ECDSA P-256 certificate and key for local use:
#   certs/make-self-signed.sh [DIR] [NAME...]
# DIR defaults to this script's directory (certs/), NAME to localhost.
# The key is created 0600. Never use this pair on a public server: browsers
# will warn, and Yandex's callback needs a trusted certificate (see README.md).
set -eu
dir=${1:-$(dirname "$0")}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] || set -- localhost
cn=$1
san=""
for name in "$@"; do
    case $name in
        *[!0-9.]*) case $name in *:*) entry="IP:$name" ;; *) entry="DNS:$name" ;; esac ;;
        *) entry="IP:$name" ;;
    esac
    san="${san:+$san,}$entry"
done
mkdir -p "$dir"
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$dir/privkey.pem" -out "$dir/fullchain.pem" -days 365 \
    -subj "/CN=$cn" -addext "subjectAltName=$san" \
    -addext "basicConstraints=critical,CA:FALSE" -addext "keyUsage=critical,digitalSignature" \
    -addext "extendedKeyUsage=serverAuth" 2>/dev/null
chmod 0644 "$dir/fullchain.pem"
echo "wrote $dir/fullchain.pem and $dir/privkey.pem for: $*"
