package overlays

import (
	"strings"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/personalities"
)

// Generators of the node's own system, one file each:
//
//	system_network.go    network (hostname, hosts, interfaces, modules, resolv.conf) and fstab
//	system_ssh.go        ssh and access (host keys, root key, access.conf, PAM) and dsh
//	system_accounts.go   the admin account (sysusers, keys, sudo, first-boot hook)
//	system_console.go    branding, cockpit, monit
//	system_firstboot.go  the first-boot runner, its unit and the spec's hooks
//
// Helpers here carry a sys prefix: the package is shared by several
// generator files written side by side.

// sysSubnets is every network a cluster peer can come from: the LAN and
// each VLAN, in plan order. Root's ssh access is limited to these.
func sysSubnets(pl *builder.Plan) []string {
	out := []string{pl.Network.Subnet}
	for _, v := range pl.Network.VLANs {
		out = append(out, v.Subnet)
	}
	return out
}

// sysLocalServices are the services systemd runs on every node; the
// others (clone, singleton) belong to Pacemaker.
func sysLocalServices(pl *builder.Plan) []builder.Service {
	var out []builder.Service
	for _, sv := range pl.Services {
		if sv.Kind == personalities.KindLocal {
			out = append(out, sv)
		}
	}
	return out
}

// sysSingletons are the floating services, each with its own IP and name.
func sysSingletons(pl *builder.Plan) []builder.Service {
	var out []builder.Service
	for _, sv := range pl.Services {
		if sv.Kind == personalities.KindSingleton && sv.IP != "" {
			out = append(out, sv)
		}
	}
	return out
}

// sysQuote quotes s for a POSIX shell (and for systemd's EnvironmentFile,
// which accepts the same single quotes).
func sysQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:@,+=") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// sysNodeNames is the cluster's node names in order.
func sysNodeNames(pl *builder.Plan) []string {
	out := make([]string, 0, len(pl.Nodes))
	for _, n := range pl.Nodes {
		out = append(out, n.Name)
	}
	return out
}

// sysColumns aligns rows of fields into columns separated by two spaces
// (the last column is not padded), for files people read: hosts, fstab.
func sysColumns(rows [][]string) string {
	var width []int
	for _, r := range rows {
		for i, f := range r {
			if i >= len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], len(f))
		}
	}
	var b strings.Builder
	for _, r := range rows {
		for i, f := range r {
			b.WriteString(f)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", width[i]-len(f)+2))
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}
