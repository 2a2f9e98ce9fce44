#!/usr/bin/env bash
# make fresh-check: the README's two commands, `make run` then `make test`,
# each once, in a new minimal Debian 12 root that has only what make needs,
# the Go toolchain and a clean clone of this repository's HEAD. A missing
# package in the Makefile's lists fails here and nowhere else.
#
# The root runs in a mount and pid namespace of its own (unshare + chroot):
# every mount it makes, the tests' included, vanishes with it, and killing
# it kills everything inside. The minimal base tarball is cached in
# FRESH_CACHE (default ~/.cache/applbuild-fresh) so reruns skip mmdebstrap.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${FRESH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/applbuild-fresh}
mirror=${FRESH_MIRROR:-http://deb.debian.org/debian}
goroot=$(go env GOROOT)
[ "$(id -u)" -eq 0 ] || { echo "fresh-check: needs root (mmdebstrap, chroot, namespaces)" >&2; exit 1; }
for p in mmdebstrap unshare git tar; do
	command -v "$p" >/dev/null || { echo "fresh-check: $p missing (apt-get install mmdebstrap util-linux git tar)" >&2; exit 1; }
done

work=$(mktemp -d /var/tmp/applbuild-fresh.XXXXXX)
pid=""
# shellcheck disable=SC2317 # run by the traps
cleanup() {
	status=$?
	trap - EXIT INT TERM
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid" 2>/dev/null || true # --kill-child: the namespace dies with it
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf --one-file-system "$work"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$cache"
base=$cache/bookworm-minbase.tar
if [ ! -s "$base" ]; then
	echo "fresh-check: bootstrapping a minimal Debian 12 into $base"
	# Its own mount and pid namespaces and a TMPDIR in $work: killed at any
	# point, it leaves no mount on the host and nothing outside $work.
	TMPDIR=$work unshare --mount --pid --fork --kill-child --propagation=private -- \
		mmdebstrap --variant=minbase --format=tar --include=make,ca-certificates,git \
		bookworm "$work/base.tar" "$mirror" &
	pid=$!
	wait "$pid"
	pid=""
	mv "$work/base.tar" "$base"
fi

root=$work/root
mkdir "$root"
tar -C "$root" -xf "$base"
git clone -q --no-local "$repo" "$root/src/applbuild"
mkdir -p "$root/usr/local"
cp -a "$goroot" "$root/usr/local/go"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# The machine's own trust anchors (a site's egress proxy CA) go in like its
# resolv.conf: network setup, not a package the Makefile should install.
mkdir -p "$root/usr/local/share/ca-certificates"
if [ -d /usr/local/share/ca-certificates ]; then
	cp -a /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
fi

start=$(date +%s)
# Inside the namespaces: the kernel's file systems, a private /run and /tmp,
# then the two commands as the README gives them, as root.
# shellcheck disable=SC2016 # expanded by the inner shell
unshare --mount --pid --fork --kill-child --propagation=private -- sh -ec '
	root=$1
	# The root is a mount point, as / is on a machine: a build makes its
	# mounts private (unshare --propagation=private), which fails on a
	# chroot that is only a directory.
	mount --bind "$root" "$root"
	mount --rbind /dev "$root/dev"; mount --make-rslave "$root/dev"
	mount --rbind /sys "$root/sys"; mount --make-rslave "$root/sys"
	mount -t proc proc "$root/proc"
	mount -t tmpfs tmpfs "$root/run"
	mount -t tmpfs tmpfs "$root/tmp"
	exec chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
		PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		bash -c "update-ca-certificates >/dev/null && cd /src/applbuild && make run && make test"
' sh "$root" &
pid=$!
if wait "$pid"; then status=0; else status=$?; fi
pid=""
echo "fresh-check: make run, make test in a fresh Debian 12: $([ $status -eq 0 ] && echo passed || echo "failed ($status)") in $(( $(date +%s) - start ))s"
exit "$status"
