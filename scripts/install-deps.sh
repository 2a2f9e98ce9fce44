#!/bin/sh
# Installs the Debian packages applbuild's build and tests need, only those
# missing, without letting their services start on this machine.
set -eu
missing=""
for p in "$@"; do
	if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
# A policy-rc.d that forbids starting services: the test suites run the
# daemons themselves, on loopback and in namespaces, never as host services.
policy=/usr/sbin/policy-rc.d
made_policy=""
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
	$SUDO chmod 755 "$policy"
	made_policy=1
fi
# The trap must not replace the script's status: a false test as its last
# command made a successful install exit 1 where policy-rc.d already existed.
cleanup() {
	status=$?
	if [ -n "$made_policy" ]; then $SUDO rm -f "$policy"; fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
retry() {
	n=0
	until "$@"; do
		n=$((n + 1))
		[ "$n" -ge 3 ] && return 1
		echo "retrying ($n): $*" >&2
		sleep $((n * 5))
	done
}
retry $SUDO apt-get update -q
# shellcheck disable=SC2086
retry $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
