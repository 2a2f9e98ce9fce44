package overlays

import (
	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/rootfs"
)

// NFSInitScript is the SysV script nfs-kernel-server still ships. The
// image must not have it: ocf:heartbeat:nfsserver prefers any executable
// init script to systemd, and down that path it starts rpc.statd by hand,
// so the rpc-statd.service that nfs-server.service wants fails ("Statd
// service already running!"), and it runs the script, which skips rpc.nfsd
// when rpcbind has not answered yet and exits 0: the agent then fails
// with "Failed to start NFS server: /proc/fs/nfsd/threads". Without the
// script it starts rpcbind, rpc-statd, nfs-mountd, nfs-idmapd and
// nfs-server through systemd, and waits for each.
const NFSInitScript = "/etc/init.d/nfs-kernel-server"

// nfsDpkgExclude tells dpkg not to install it: before the package is
// unpacked (the build) and at every upgrade on the node after.
const nfsDpkgExclude = "/etc/dpkg/dpkg.cfg.d/applbuild-nfs"

// RootfsFiles is the configuration a plan needs in the rootfs before its
// packages are installed (rootfs.Request.Files).
func RootfsFiles(pl *builder.Plan) []rootfs.File {
	var out []rootfs.File
	for _, sv := range pl.Services {
		if isNFSServer(sv) {
			out = append(out, rootfs.File{Path: nfsDpkgExclude, Content: "# applbuild: ocf:heartbeat:nfsserver runs the NFS server through systemd\n" +
				"# only when no init script is there to prefer (see docs/cluster.md).\n" +
				"path-exclude=" + NFSInitScript + "\n"})
			break
		}
	}
	return out
}
