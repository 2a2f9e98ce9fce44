// Package rootfs builds Debian root filesystems with mmdebstrap and keeps
// them in a content-addressed cache, one tarball per distinct request.
//
// # What the key covers
//
// An entry's key is the sha256 of a canonical JSON encoding of the
// normalized Request (defaults filled, components and packages sorted and
// deduplicated, files sorted by path and left out when there are none), the
// bootstrap tool and its version ("mmdebstrap 1.3.5"),
// and FormatVersion, which this package bumps whenever it changes what it
// does to a tree (hooks, cleanup, layout). The key cannot know the state of
// the mirror: two builds of the same request a week apart may install
// different package versions. That is accepted; the entry records the exact
// versions it holds (Entry.Packages), and Cache.Refresh or Cache.Prune forces
// a rebuild against the mirror as it is now.
//
// # Variant
//
// The default variant is minbase (Essential plus Priority: required), measured
// on trixie with systemd-sysv, udev, linux-image-amd64 and initramfs-tools:
//
//	apt        88 packages, 315 MB tar   no login, passwd, tzdata: no console login
//	minbase    96 packages, 324 MB tar   smallest set a person can log in to
//	important 153 packages, 358 MB tar   adds cron, nano, vim-tiny, nftables, ifupdown, e2fsprogs, ...
//
// minbase keeps the Plan the one place that decides what an image holds: a
// plan that needs ifupdown, iproute2, e2fsprogs (fsck of an ext4 root at
// boot) or dbus names them. Recommends are not installed (mmdebstrap's
// default), for the same reason.
//
// # How a tree is made
//
// mmdebstrap runs in --mode=unshare. As root, that mode unshares the mount,
// pid, uts and ipc namespaces (not the user namespace), so the /proc, /sys
// and /dev mounts it makes in the chroot live and die with the build: a
// killed build leaves no mount on the host. The whole run is also wrapped in
// "unshare --pid --fork --kill-child --mount", so that cancelling the context
// kills every process the build started (apt, dpkg, maintainer scripts), not
// just the first one. Services do not start: mmdebstrap installs a
// policy-rc.d that exits 101 for the duration of the install and removes it
// afterwards, and any daemon that ignores it dies with the pid namespace.
//
// A customize hook records dpkg-query's view of the installed packages in
// packages.tsv, removes /etc/hostname (the overlay sets it) and the SSH host
// keys openssh-server's postinst generated (every node built from one entry
// would share them: first boot must run ssh-keygen -A), and replaces the
// host's copied /etc/resolv.conf with a comment (the network configuration
// sets the nameservers; a symlink installed by a package is kept).
// mmdebstrap's own cleanup empties the apt lists and cache, writes an empty
// /etc/machine-id (systemd generates and commits an id on the first boot;
// note that an empty file is not "first boot" in systemd's sense, only a
// missing file or "uninitialized" is), and, with SOURCE_DATE_EPOCH set from
// Request.SourceDateEpoch, writes a tarball with sorted names and clamped
// mtimes, so the same request against the same mirror state gives the same
// bytes.
//
// Downloaded .deb files are kept in <Dir>/debs and hard-linked into the next
// build's apt cache, so a rebuild (another package set, a refresh) downloads
// only what changed. apt checks every cached file against the signed index
// before it uses it.
//
// When mmdebstrap is missing, debootstrap builds into a directory that is
// then packed with GNU tar. That path is less tested: it has no policy-rc.d
// of its own and relies on the pid namespace to stop stray daemons.
//
// # Measured (trixie, 2 CPUs, deb.debian.org, a shared and busy host)
//
// minbase + iputils-arping + libcap2-bin: 80 packages, 118 MB tarball,
// built in 16 s, extracted in 1-2 s, rebuilt bit-identical.
// The web-cluster set (linux-image-amd64 systemd-sysv udev initramfs-tools
// grub-xen-bin apache2 mariadb-server pound puppetserver glusterfs-server
// glusterfs-client pacemaker corosync crmsh rsync monit openssh-server dsh
// cockpit lvm2 vlan ifupdown iproute2 vsftpd nginx phpmyadmin): 586
// packages, 405 MB of .debs, 1414 MiB tarball, 2 min cold, 3.5-5 min
// rebuilt from cached .debs on a host with a load of 5 (maintainer scripts,
// not downloads, dominate); GNU tar extracts it in 4-19 s depending on the
// host's I/O load. Unlike the small set, two builds of it were not
// bit-identical: maintainer scripts write state at install time
// (/var/lib/mysql's data files, and the SSH host keys now removed).
//
// # Layout
//
//	<Dir>/<key>/rootfs.tar     the tree, pax format, numeric owners, xattrs
//	<Dir>/<key>/packages.tsv   name \t version \t arch, one installed package a line
//	<Dir>/<key>/meta.json      request, tool, size, sha256, creation time
//	<Dir>/<key>.lock           flock held while the key is built or pruned
//	<Dir>/tmp-<key16>-*        a build in progress (or a crashed one; Prune removes it)
//	<Dir>/debs/                downloaded packages shared by all builds
//
// An entry directory appears only by rename(2) of a complete temporary
// directory, so a reader sees a whole entry or none.
package rootfs
