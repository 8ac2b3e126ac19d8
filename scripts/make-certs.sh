#!/bin/sh
# make-certs.sh - a CA, a certificate per node and client certificates for raftfs's TLS, with the
# openssl command line (for tests, and to start a cluster across machines: raftfs(8), TLS).
#
# Usage: scripts/make-certs.sh DIR ID=ADDR... [client=NAME...] [--days=N]
#   DIR/ca.pem, DIR/ca.key        the CA (made once: an existing DIR/ca.key is reused, so that
#                                 running the script again issues new certificates of the same CA)
#   DIR/nodeID.pem, nodeID.key    node ID's certificate: CN=nodeID, subjectAltName = ADDR (an IP
#                                 address, or a DNS name), for both ends of TLS (serverAuth and
#                                 clientAuth). ADDR may carry a :PORT, which is ignored.
#   DIR/NAME.pem, NAME.key        a client certificate, CN=NAME (clientAuth only); without any
#                                 client=NAME, one named "client" is made.
# Keys are ECDSA P-256, written 0600. Certificates last N days (default 825).
# Then, on node 1 (its address is 10.0.0.1):
#   raftfs --id=1 --cluster=... --cert-file=DIR/node1.pem --key-file=DIR/node1.key \
#          --peer-trusted-ca-file=DIR/ca.pem --trusted-ca-file=DIR/ca.pem ...
#   raftfsctl --cacert=DIR/ca.pem --cert=DIR/client.pem --key=DIR/client.key ...
set -eu

usage() {
	echo "usage: $0 DIR ID=ADDR... [client=NAME...] [--days=N]" >&2
	exit 1
}

[ $# -ge 2 ] || usage
dir=$1
shift
days=825
for a in "$@"; do
	case $a in
	--days=*) days=${a#--days=} ;;
	esac
done
case $days in
'' | *[!0-9]*) echo "$0: --days wants a number" >&2; exit 1 ;;
esac
command -v openssl >/dev/null || {
	echo "$0: openssl is missing (scripts/install-deps.sh)" >&2
	exit 1
}
mkdir -p "$dir"
umask 077
tmp=$(mktemp -d "${TMPDIR:-/tmp}/make-certs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

newkey() { # newkey FILE
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
	chmod 600 "$1"
}

if [ ! -f "$dir/ca.key" ] || [ ! -f "$dir/ca.pem" ]; then
	newkey "$dir/ca.key"
	openssl req -x509 -new -key "$dir/ca.key" -out "$dir/ca.pem" -days "$days" \
		-subj "/CN=raftfs CA" -addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
	chmod 644 "$dir/ca.pem"
fi

sign() { # sign NAME CN EXTENSIONS
	newkey "$dir/$1.key"
	openssl req -new -key "$dir/$1.key" -subj "/CN=$2" -out "$tmp/$1.csr" 2>/dev/null
	printf '%s\n' "$3" >"$tmp/$1.ext"
	openssl x509 -req -in "$tmp/$1.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
		-set_serial "0x$(openssl rand -hex 16)" -days "$days" -extfile "$tmp/$1.ext" \
		-out "$dir/$1.pem" 2>/dev/null
	chmod 644 "$dir/$1.pem"
}

clients=0
for a in "$@"; do
	case $a in
	--days=*) ;;
	client=*)
		name=${a#client=}
		case $name in
		'' | */* | .*) echo "$0: bad client name '$name'" >&2; exit 1 ;;
		esac
		sign "$name" "$name" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
		clients=$((clients + 1))
		;;
	*=*)
		id=${a%%=*}
		addr=${a#*=}
		case $id in
		'' | *[!0-9]*) echo "$0: bad node id in '$a'" >&2; exit 1 ;;
		esac
		case $addr in
		\[*) echo "$0: IPv6 addresses are not supported: '$a'" >&2; exit 1 ;;
		*:*) addr=${addr%:*} ;;
		esac
		[ -n "$addr" ] || { echo "$0: no address in '$a'" >&2; exit 1; }
		case $addr in
		*[!0-9.]*) san="DNS:$addr" ;;
		*) san="IP:$addr" ;;
		esac
		sign "node$id" "node$id" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=$san"
		;;
	*) usage ;;
	esac
done
if [ "$clients" -eq 0 ]; then
	sign client client "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
fi
echo "make-certs: certificates in $dir"
