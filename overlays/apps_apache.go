package overlays

import "github.com/applbuild/applbuild/builder"

// apacheData is what the app-apache-* templates get.
type apacheData struct {
	Port    int
	Product string
	// WWWVolume and ConfVolume name the GlusterFS volumes mounted on
	// /var/www and /etc/apache2, "" when the directory is local.
	WWWVolume  string
	ConfVolume string
}

// HealthPath is the URL path Pacemaker monitors and the e2e test GET: a
// static file, so a health check needs no mod_status and exposes nothing.
const HealthPath = "/healthz"

// apache configures Debian's apache2 for a node that runs it: the port
// (web-cluster: 8080, as pound holds :80 on its floating IP), the default
// site and a page plus a health file in /var/www/html.
//
// Every file is the same on every node: in web-cluster /etc/apache2 and
// /var/www are GlusterFS volumes seeded from the first node's image, so
// nothing here may name a node, and every path under /etc/apache2 stays
// relative to it (modules and sites are enabled by relative symlinks).
// Debian's postinst already enables every module the default site needs
// (alias, dir, mime, authz_core, ...), so nothing is enabled here; scm
// enables its dav_svn modules itself.
func apache(in Input) ([]File, error) {
	sv := in.Plan.ServiceByUnit("apache2")
	if sv == nil {
		return nil, nil
	}
	d := apacheData{
		Port:       appPort(sv, 80),
		Product:    in.Plan.Branding.Product,
		WWWVolume:  appVolumeAt(in.Plan, "/var/www"),
		ConfVolume: appVolumeAt(in.Plan, "/etc/apache2"),
	}
	var out []File
	for _, f := range []struct{ path, tmpl string }{
		{"/etc/apache2/ports.conf", "app-apache-ports.conf.tmpl"},
		{"/etc/apache2/sites-available/000-default.conf", "app-apache-000-default.conf.tmpl"},
		{"/var/www/html/index.html", "app-apache-index.html.tmpl"},
	} {
		file, err := tmpl(f.path, 0o644, f.tmpl, d)
		if err != nil {
			return nil, err
		}
		out = append(out, file)
	}
	// Debian enables the default site already; the link is written anyway
	// so that a seeded /etc/apache2 volume serves it whatever state the
	// image's package scripts left.
	out = append(out,
		symlink("/etc/apache2/sites-enabled/000-default.conf", "../sites-available/000-default.conf"),
		text("/var/www/html"+HealthPath, 0o644, "ok\n"))
	return out, nil
}

// appVolumeAt names the GlusterFS volume mounted on dir, or "".
func appVolumeAt(pl *builder.Plan, dir string) string {
	if pl.Gluster == nil {
		return ""
	}
	for _, v := range pl.Gluster.Volumes {
		if v.Mount == dir {
			return v.Name
		}
	}
	return ""
}
