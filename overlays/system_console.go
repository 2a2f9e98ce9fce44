package overlays

import (
	"fmt"
	"slices"
	"strings"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/personalities"
)

// cockpitURL is where a browser finds Cockpit on node, or "".
func cockpitURL(pl *builder.Plan, n *builder.Node) string {
	if pl.Cockpit == nil {
		return ""
	}
	return fmt.Sprintf("https://%s:%d/", n.Address, pl.Cockpit.Port)
}

// branding writes what a user sees before and after logging in: the
// product, the node, its addresses, what runs where, and the console URL.
// The spec's branding.motd and branding.issue replace the generated text.
func branding(in Input) ([]File, error) {
	pl := in.Plan
	d := struct {
		tmplData
		Product, Cockpit          string
		Local, Clones, Singletons []string
		Dsh                       bool
	}{tmplData: data(in), Product: pl.Branding.Product, Cockpit: cockpitURL(pl, in.Node),
		Dsh: slices.Contains(pl.Packages, "dsh")}
	for _, sv := range pl.Services {
		switch sv.Kind {
		case personalities.KindLocal:
			d.Local = append(d.Local, sv.Name)
		case personalities.KindClone:
			name := sv.Name
			if sv.Port != 0 {
				name += fmt.Sprintf(":%d", sv.Port)
			}
			d.Clones = append(d.Clones, name)
		case personalities.KindSingleton:
			s := fmt.Sprintf("%-10s %s %s", sv.Name, sv.Host, sv.IP)
			if sv.Port != 0 {
				s += fmt.Sprintf(":%d", sv.Port)
			}
			d.Singletons = append(d.Singletons, s+" (Pacemaker moves it between nodes)")
		}
	}
	var out []File
	for _, t := range []struct{ path, name, override string }{
		{"/etc/motd", "sys-motd.tmpl", pl.Branding.Motd},
		{"/etc/issue", "sys-issue.tmpl", pl.Branding.Issue},
		{"/etc/issue.net", "sys-issue.net.tmpl", pl.Branding.Issue},
	} {
		if t.override != "" {
			out = append(out, text(t.path, 0o644, strings.TrimRight(t.override, "\n")+"\n"))
			continue
		}
		dd := d
		if t.path == "/etc/issue" {
			// agetty reads backslash escapes (\l, \4) in /etc/issue.
			dd.Product = strings.ReplaceAll(d.Product, `\`, `\\`)
		}
		f, err := tmpl(t.path, 0o644, t.name, dd)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// cockpit names the console after the product, lets browsers in through
// any of the cluster's names and addresses, and moves it off 9090 when the
// spec asks.
func cockpit(in Input) ([]File, error) {
	pl := in.Plan
	if pl.Cockpit == nil {
		return nil, nil
	}
	port := pl.Cockpit.Port
	var origins []string
	for _, n := range pl.Nodes {
		hosts := []string{n.FQDN, n.Name, n.Address}
		for _, v := range n.VLANs {
			hosts = append(hosts, v.Address)
		}
		for _, h := range hosts {
			origins = append(origins, fmt.Sprintf("https://%s:%d", h, port))
		}
	}
	d := struct {
		tmplData
		Origins []string
	}{data(in), origins}
	conf, err := tmpl("/etc/cockpit/cockpit.conf", 0o644, "sys-cockpit.conf.tmpl", d)
	if err != nil {
		return nil, err
	}
	out := []File{conf}
	if port != 9090 {
		f, err := tmpl("/etc/systemd/system/cockpit.socket.d/listen.conf", 0o644, "sys-cockpit.socket.tmpl", pl.Cockpit)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// monitBrick is a brick filesystem monit watches for space.
type monitBrick struct{ LV, Mount string }

// monit watches the node's local services and its filesystems.
func monit(in Input) ([]File, error) {
	pl := in.Plan
	if pl.Monit == nil {
		return nil, nil
	}
	d := struct {
		Monit    *builder.Monit
		Services []builder.Service
		Bricks   []monitBrick
	}{Monit: pl.Monit, Services: sysLocalServices(pl)}
	if vg := in.Node.VG; vg != nil {
		for _, lv := range vg.LVs {
			if lv.Purpose == builder.LVBrick && lv.Mount != "" {
				d.Bricks = append(d.Bricks, monitBrick{LV: lv.Name, Mount: lv.Mount})
			}
		}
	}
	f, err := tmpl("/etc/monit/conf.d/applbuild", 0o644, "sys-monit.tmpl", d)
	if err != nil {
		return nil, err
	}
	return []File{f}, nil
}
