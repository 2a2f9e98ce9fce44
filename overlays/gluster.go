package overlays

// The GlusterFS generator: managed volumes (first boot creates them) or the
// seed's legacy hand-written volfiles.

import (
	"fmt"
	"slices"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/overlays/volfile"
	p "github.com/applbuild/applbuild/personalities"
)

const (
	// glusterHook is the volume setup. It is not a first-boot hook: it
	// waits for the peers, which may come hours later, so it runs in its
	// own unit (glusterSetupUnit), on every boot, and Pacemaker waits for
	// it.
	glusterHook       = "/usr/lib/applbuild/gluster-setup"
	glusterSetupUnit  = "applbuild-gluster.service"
	glusterLegacyUnit = "applbuild-glusterfsd.service"
	// glusterTimeout bounds each wait of one run: 0, no bound. Peers boot
	// in any order and as late as they like (under software emulation a
	// node takes 6-7 minutes to boot); a bound would only make the unit
	// fail and restart, and Pacemaker would then start on the image's
	// local directories.
	glusterTimeout = 0
	// glusterPingTimeout is network.ping-timeout, in seconds. It bounds
	// how long the clients of a volume hang when a brick's node dies,
	// and so every failover of a service on GlusterFS. Long enough that
	// a node busy under emulation is not dropped (its ping is answered by
	// glusterfsd's event thread), short enough for a one-minute failover.
	glusterPingTimeout = 15
)

func gluster(in Input) ([]File, error) {
	g := in.Plan.Gluster
	if g == nil || len(g.Volumes) == 0 {
		return nil, nil
	}
	for _, v := range g.Volumes {
		if g.Mode == p.GlusterManaged && len(v.Nodes)%g.Replica != 0 {
			return nil, fmt.Errorf("volume %s: %d bricks are not a multiple of replica %d", v.Name, len(v.Nodes), g.Replica)
		}
	}
	hook, err := tmpl(glusterHook, 0o755, "gluster-setup.sh.tmpl", glusterHookData{
		Plan: in.Plan, Mode: g.Mode, Managed: g.Mode == p.GlusterManaged,
		Replica: g.Replica, Allow: g.Allow, Volumes: g.Volumes, Timeout: glusterTimeout, PingTimeout: glusterPingTimeout,
	})
	if err != nil {
		return nil, err
	}
	unit, err := tmpl("/etc/systemd/system/"+glusterSetupUnit, 0o644, "gluster-setup.service.tmpl", g)
	if err != nil {
		return nil, err
	}
	files := []File{hook, unit, wantedBy("multi-user.target", glusterSetupUnit)}
	if g.Mode == p.GlusterLegacy {
		legacy, err := glusterLegacy(in)
		if err != nil {
			return nil, err
		}
		files = append(files, legacy...)
	}
	return files, nil
}

type glusterHookData struct {
	Plan        *builder.Plan
	Mode        string
	Managed     bool
	Replica     int
	Allow       string
	Volumes     []builder.Volume
	Timeout     int
	PingTimeout int
}

// glusterRows is the plan's volumes as the seed's volume table: bricks
// are the brick mounts themselves (the seed's "option directory
// /data/<v>"), replicas named by FQDN as the seed did (/etc/hosts has
// them). Only volumes node holds a brick of are served by it, but every
// volume gets a client volfile.
func glusterRows(pl *builder.Plan) []volfile.Row {
	var rows []volfile.Row
	for _, v := range pl.Gluster.Volumes {
		r := volfile.Row{Name: v.Name, Source: v.Brick, Allow: pl.Gluster.Allow, Mount: v.Mount}
		for _, n := range v.Nodes {
			host := n
			if nd := pl.Node(n); nd != nil {
				host = nd.FQDN
			}
			r.Hosts = append(r.Hosts, host)
		}
		rows = append(rows, r)
	}
	return rows
}

// glusterLegacy is the seed's way: glusterfsd serves the node's bricks
// from a hand-written volfile under its own unit, clients mount the
// per-volume client volfiles (fstab, by the fstab generator), and glusterd
// is masked so nothing else claims port 24007.
func glusterLegacy(in Input) ([]File, error) {
	rows := glusterRows(in.Plan)
	var served []volfile.Row
	var bricks []string
	for i, v := range in.Plan.Gluster.Volumes {
		if slices.Contains(v.Nodes, in.Node.Name) {
			served = append(served, rows[i])
			bricks = append(bricks, v.Brick)
		}
	}
	var files []File
	for _, r := range rows {
		files = append(files, File{Path: "/etc/glusterfs/" + volfile.ClientFile(r.Name), Mode: 0o644, Data: volfile.Client(r).Bytes()})
	}
	files = append(files, symlink("/etc/systemd/system/glusterd.service", "/dev/null"))
	if len(served) == 0 {
		return files, nil
	}
	unit, err := tmpl("/etc/systemd/system/"+glusterLegacyUnit, 0o644, "gluster-glusterfsd.service.tmpl", struct{ Bricks []string }{bricks})
	if err != nil {
		return nil, err
	}
	files = append(files,
		File{Path: "/etc/glusterfs/" + volfile.ServerFile, Mode: 0o644, Data: volfile.Server(served).Bytes()},
		unit,
		wantedBy("multi-user.target", glusterLegacyUnit),
	)
	return files, nil
}
