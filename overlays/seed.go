package overlays

import (
	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/rootfs"
)

// NFSInitScript is the SysV script nfs-kernel-server still ships. It must
// not be executable in the image: ocf:heartbeat:nfsserver prefers any
// executable init script to systemd, and down that path it starts
// rpc.statd by hand, so the rpc-statd.service that nfs-server.service
// wants fails ("Statd service already running!"), and it runs the script,
// which skips rpc.nfsd when rpcbind has not answered yet and exits 0.
// With the script not executable it starts rpcbind, rpc-statd,
// nfs-mountd, nfs-idmapd and nfs-server through systemd and waits for
// each. The script stays (the package's postinst reads it).
const NFSInitScript = "/etc/init.d/nfs-kernel-server"

// nfsStatOverride makes it 0644 through dpkg's own override database,
// seeded before the package is unpacked: dpkg applies it at the build and
// at every upgrade after. The owner is numeric: the first dpkg run of the
// bootstrap has no /etc/passwd yet.
const nfsStatOverride = "#0 #0 0644 " + NFSInitScript + "\n"

// RootfsFiles is the configuration a plan needs in the rootfs before its
// packages are installed (rootfs.Request.Files).
func RootfsFiles(pl *builder.Plan) []rootfs.File {
	var out []rootfs.File
	for _, sv := range pl.Services {
		if isNFSServer(sv) {
			out = append(out, rootfs.File{Path: rootfs.StatOverrideFile, Content: nfsStatOverride})
			break
		}
	}
	return out
}
