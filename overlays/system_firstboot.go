package overlays

import (
	"fmt"
	"strings"

	"github.com/applbuild/applbuild/builder"
)

const (
	firstbootRunner = "/usr/lib/applbuild/firstboot"
	firstbootUnit   = "applbuild-firstboot.service"
)

// firstboot writes the runner every node starts once, the unit that starts
// it, the node's identity it hands to the hooks, and the spec's own hooks.
// The other generators put their hooks into firstbootDir themselves.
func firstboot(in Input) ([]File, error) {
	runner, err := tmpl(firstbootRunner, 0o755, "sys-firstboot.tmpl", nil)
	if err != nil {
		return nil, err
	}
	unit, err := tmpl("/etc/systemd/system/"+firstbootUnit, 0o644, "sys-firstboot.service.tmpl", nil)
	if err != nil {
		return nil, err
	}
	env, err := tmpl("/etc/applbuild/node.env", 0o644, "sys-node.env.tmpl", nodeEnv(in.Plan, in.Node))
	if err != nil {
		return nil, err
	}
	out := []File{runner, unit, env,
		wantedBy("multi-user.target", firstbootUnit)}
	for _, h := range in.Plan.Firstboot {
		if h.On == "" {
			h.On = "all"
		}
		f, err := tmpl(fmt.Sprintf("%s/90-%s", firstbootDir, h.Name), 0o755, "sys-hook.tmpl", h)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// nodeEnv is the node's identity as shell assignments, APPLBUILD_NODE,
// _INDEX, _NODES and _DOMAIN being the shared first-boot contract.
func nodeEnv(pl *builder.Plan, n *builder.Node) []string {
	vars := []struct{ k, v string }{
		{"APPLBUILD_NODE", n.Name},
		{"APPLBUILD_INDEX", fmt.Sprint(n.Index)},
		{"APPLBUILD_NODES", strings.Join(sysNodeNames(pl), " ")},
		{"APPLBUILD_DOMAIN", pl.Domain},
		{"APPLBUILD_FQDN", n.FQDN},
		{"APPLBUILD_ADDRESS", n.Address},
		{"APPLBUILD_CLUSTER", pl.Cluster},
		{"APPLBUILD_PERSONALITY", pl.Personality},
		{"APPLBUILD_ADMIN", pl.Admin.User},
	}
	out := make([]string, 0, len(vars))
	for _, v := range vars {
		out = append(out, v.k+"="+sysQuote(v.v))
	}
	return out
}
