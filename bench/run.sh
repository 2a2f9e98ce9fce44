#!/usr/bin/env bash
# make bench: measure applbuild against its peers on this machine, in one
# run, and write docs/benchmarks.md (see bench/applbench for what and how).
# Arguments go to bench/applbench: -runs N, -cold-runs N, -xt-runs N,
# -truly-cold=false, -xen-tools=false, -clusters LIST (the cluster drills
# timed, default web-cluster,mysql-ha,nfs-ha; "" none). BENCH_DIR (default
# /var/tmp/applbuild-bench) keeps the .deb pool and the last run's logs.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
	echo "bench: run as root (mmdebstrap, tar -x of a rootfs, xen-create-image)" >&2
	exit 1
fi
BENCH_DIR=${BENCH_DIR:-/var/tmp/applbuild-bench}
GO=${GO:-go}
mkdir -p "$BENCH_DIR"

# One bench at a time: the cleanup below removes every run directory.
exec 9>"$BENCH_DIR/lock"
if ! flock -n 9; then
	echo "bench: another bench holds $BENCH_DIR/lock" >&2
	exit 1
fi

tmp=$(mktemp -d)
cleanup() {
	rc=$?
	trap - EXIT INT TERM
	# applbench cleans up after itself, even when interrupted; this is for
	# the case where it could not (killed): loop devices and mounts under a
	# run directory, the run directories, xen-tools' log of the bench host.
	losetup --list --noheadings --raw --output NAME,BACK-FILE 2>/dev/null |
		while read -r dev file; do
			case "$file" in "$BENCH_DIR"/run-*) losetup -d "$dev" || true ;; esac
		done
	findmnt -rn -o TARGET | grep "^$BENCH_DIR/run-" | sort -r | xargs -r -n1 umount -l || true
	rm -rf "$BENCH_DIR"/run-* "$tmp"
	rm -f /var/log/xen-tools/applbench-xt.log /var/log/xen-tools/applbench-xt.*.log
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ -x bin/applbuild ] || "$GO" build -trimpath -o bin/applbuild ./cmd/applbuild
"$GO" build -o "$tmp/applbench" ./bench/applbench
"$tmp/applbench" -bin bin/applbuild -repo . -dir "$BENCH_DIR" -out docs/benchmarks.md "$@"
