package overlays

import (
	"github.com/applbuild/applbuild/builder"
)

// Generators of the application services: apache2 (apps_apache.go),
// MariaDB (apps_mariadb.go), pound (apps_pound.go) and the scm
// personality's Subversion and CVS (apps_scm.go).

// appPort is the service's port, or def when the spec left it out.
func appPort(sv *builder.Service, def int) int {
	if sv == nil || sv.Port == 0 {
		return def
	}
	return sv.Port
}
