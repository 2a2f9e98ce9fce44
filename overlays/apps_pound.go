package overlays

import (
	"fmt"
	"net"
	"strconv"
)

// poundBackend is one Backend section.
type poundBackend struct {
	Address string
	Port    int
}

// poundData is what app-pound.cfg.tmpl gets.
type poundData struct {
	Product  string
	Listen   string
	Port     int
	Backends []poundBackend
	Volume   string // GlusterFS volume on /etc/pound, or ""
}

// PoundConfig is where the pound config lives: in /etc/pound, as in the
// seed, because web-cluster shares that directory as a GlusterFS volume.
// Debian's pound 4 reads /etc/pound.cfg (compiled in, and the unit's
// ConditionPathExists), so that path is a relative symlink into it, which
// keeps pound.service, `pound -c` and poundctl working unchanged.
const PoundConfig = "/etc/pound/pound.cfg"

// pound writes a pound 4 config: one HTTP listener on the floating address
// and one service over every backend.
//
// Pound 4 has no active health check (2.x's HAport is gone): a backend that
// refuses a connection is marked dead and retried every Alive seconds,
// which is what the global Alive below tunes.
func pound(in Input) ([]File, error) {
	po := in.Plan.Pound
	if po == nil {
		return nil, nil
	}
	d := poundData{Product: in.Plan.Branding.Product, Listen: po.Listen, Port: po.Port, Volume: appVolumeAt(in.Plan, "/etc/pound")}
	if net.ParseIP(po.Listen) == nil {
		return nil, fmt.Errorf("pound listen address %q is not an IP address", po.Listen)
	}
	for _, b := range po.Backends {
		host, port, err := net.SplitHostPort(b)
		if err != nil {
			return nil, fmt.Errorf("pound backend %q: %w", b, err)
		}
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("pound backend %q: bad port %q", b, port)
		}
		d.Backends = append(d.Backends, poundBackend{Address: host, Port: n})
	}
	if len(d.Backends) == 0 {
		return nil, fmt.Errorf("pound has no backends")
	}
	f, err := tmpl(PoundConfig, 0o644, "app-pound.cfg.tmpl", d)
	if err != nil {
		return nil, err
	}
	return []File{f, symlink("/etc/pound.cfg", "pound/pound.cfg")}, nil
}
