#!/bin/sh
# Install what building and testing mq needs, on Debian or Ubuntu: as root
# through apt-get, otherwise print the command to run.
set -u
# Build: pkg-config, libsodium, zlib.  Tests: bats and its libraries,
# mandoc (man page lint), clang (fuzzing), strace (crash and fault
# injection), valgrind (leaks), python3 (the history checker), jq,
# e2fsprogs and xfsprogs (power cuts), redis-server (the bridge test),
# bindfs (the NFS scenarios: a FUSE mount through which inotify sees
# nothing).
pkgs="pkg-config libsodium-dev zlib1g-dev bats bats-assert bats-support mandoc
clang strace valgrind python3 jq e2fsprogs xfsprogs redis-server bindfs"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
		missing="$missing $p"
done
command -v cc >/dev/null 2>&1 || missing="$missing gcc"
command -v make >/dev/null 2>&1 || missing="$missing make"
[ -z "$missing" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
	echo "deps: missing:$missing (install them with your package manager)" >&2
	exit 1
fi
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing:$missing; run as root:" >&2
	echo "  apt-get install -y$missing" >&2
	exit 1
fi
echo "deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
apt-get install -y -q $missing >/dev/null ||
	{ apt-get update -q >/dev/null && apt-get install -y -q $missing >/dev/null; }
