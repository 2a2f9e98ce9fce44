package overlays

import (
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// scmData is what the app-scm-* templates get.
type scmData struct {
	Product string
	SVNRoot string
	Repos   []string
	SVNPort int
	CVSRoot string
	CVSPort int
}

// appCVSPort is the pserver's IANA port.
const appCVSPort = 2401

// scm serves Subversion (svnserve, and Apache's dav_svn when apache2 runs)
// and CVS (a socket-activated pserver). The repositories themselves are
// made at first boot by 60-scm, not at build time: they hold the users'
// data and must be owned by accounts that exist only once sysusers ran.
func scm(in Input) ([]File, error) {
	s := in.Plan.SCM
	if s == nil {
		return nil, nil
	}
	d := scmData{
		Product: in.Plan.Branding.Product,
		SVNRoot: s.SVNRoot, Repos: s.Repos, SVNPort: appPort(in.Plan.ServiceByUnit("svnserve"), 3690),
		CVSRoot: s.CVSRoot, CVSPort: appCVSPort,
	}
	for _, dir := range []string{d.SVNRoot, d.CVSRoot} {
		if dir != "" && (!path.IsAbs(dir) || path.Clean(dir) != dir || strings.ContainsAny(dir, " \t\n'\"$`\\")) {
			return nil, fmt.Errorf("scm root %q: want a clean absolute path without spaces or quotes", dir)
		}
	}
	for _, r := range d.Repos {
		if r == "" || strings.ContainsAny(r, "/ \t\n'\"$`\\") || r == "." || r == ".." {
			return nil, fmt.Errorf("svn repository name %q: want a plain directory name", r)
		}
	}

	type gen struct {
		path string
		mode fs.FileMode
		tmpl string
	}
	gens := []gen{
		{"/usr/lib/sysusers.d/applbuild-scm.conf", 0o644, "app-scm-sysusers.conf.tmpl"},
		{"/usr/lib/applbuild/firstboot.d/60-scm", 0o755, "app-scm-firstboot.sh.tmpl"},
	}
	var links []File
	if d.SVNRoot != "" {
		gens = append(gens, gen{"/etc/systemd/system/svnserve.service", 0o644, "app-scm-svnserve.service.tmpl"})
		links = append(links, symlink("/etc/systemd/system/multi-user.target.wants/svnserve.service", "../svnserve.service"))
		if in.Plan.ServiceByUnit("apache2") != nil {
			gens = append(gens, gen{"/etc/apache2/conf-available/applbuild-svn.conf", 0o644, "app-scm-apache-svn.conf.tmpl"})
			// libapache2-mod-svn's postinst enables these too; writing them
			// makes the overlay not depend on which maintainer scripts ran.
			links = append(links,
				symlink("/etc/apache2/conf-enabled/applbuild-svn.conf", "../conf-available/applbuild-svn.conf"),
				symlink("/etc/apache2/mods-enabled/dav.load", "../mods-available/dav.load"),
				symlink("/etc/apache2/mods-enabled/dav_svn.load", "../mods-available/dav_svn.load"),
				symlink("/etc/apache2/mods-enabled/dav_svn.conf", "../mods-available/dav_svn.conf"),
				symlink("/etc/apache2/mods-enabled/authz_svn.load", "../mods-available/authz_svn.load"))
		}
	}
	if d.CVSRoot != "" {
		gens = append(gens,
			gen{"/etc/systemd/system/cvspserver.socket", 0o644, "app-scm-cvspserver.socket.tmpl"},
			gen{"/etc/systemd/system/cvspserver@.service", 0o644, "app-scm-cvspserver@.service.tmpl"})
		links = append(links, symlink("/etc/systemd/system/sockets.target.wants/cvspserver.socket", "../cvspserver.socket"))
	}
	var out []File
	for _, g := range gens {
		f, err := tmpl(g.path, g.mode, g.tmpl, d)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return append(out, links...), nil
}
