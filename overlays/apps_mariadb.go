package overlays

import "github.com/applbuild/applbuild/builder"

// mariadbData is what app-mariadb.cnf.tmpl gets.
type mariadbData struct {
	*builder.MariaDB
	Product string
	// ConfVolume and DataVolume name the GlusterFS volumes on /etc/mysql
	// and the datadir; DRBD names the DRBD resource on the datadir.
	ConfVolume, DataVolume, DRBD string
}

// mariadb writes the server settings the spec controls into a file that
// sorts after Debian's 50-server.cnf, so the package's own file stays
// untouched (no conffile prompt on upgrades) and ours wins.
func mariadb(in Input) ([]File, error) {
	m := in.Plan.MariaDB
	if m == nil {
		return nil, nil
	}
	d := mariadbData{
		MariaDB:    m,
		Product:    in.Plan.Branding.Product,
		ConfVolume: appVolumeAt(in.Plan, "/etc/mysql"),
		DataVolume: appVolumeAt(in.Plan, m.Datadir),
	}
	for _, r := range in.Plan.DRBD {
		if r.Mount == m.Datadir {
			d.DRBD = r.Name
		}
	}
	f, err := tmpl("/etc/mysql/mariadb.conf.d/60-applbuild.cnf", 0o644, "app-mariadb.cnf.tmpl", d)
	if err != nil {
		return nil, err
	}
	return []File{f}, nil
}
