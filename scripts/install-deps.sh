#!/bin/sh
# install-deps.sh - installs the Debian packages raftfs needs to build, test and run. Idempotent:
# does nothing when everything is present; otherwise one apt-get update, then one install.
set -eu
PACKAGES="build-essential pkg-config libfuse3-dev fuse3 libevent-dev libssl-dev openssl libtpl-dev libcunit1-dev
clang libclang-rt-14-dev clang-format iptables iproute2 procps psmisc git vim-tiny attr strace
sqlite3 e2fsprogs"

missing=
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done
if [ -z "$missing" ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
else
	SUDO=
fi
echo "install-deps: installing:$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
