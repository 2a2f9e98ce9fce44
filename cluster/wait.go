package cluster

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	p "github.com/applbuild/applbuild/personalities"
)

// Problems lists what keeps the cluster from being formed, per the plan:
// every node up, every volume Replicate over its nodes, Started and
// mounted wherever the fstab says, every node online in Pacemaker, every
// clone on every node and every singleton on exactly one, each floating
// address answering, and no failed unit anywhere. Empty means formed.
func (c *Cluster) Problems(st *Status) []string {
	var out []string
	up := map[string]NodeStatus{}
	for _, n := range st.Nodes {
		up[n.Name] = n
		if !n.SSH {
			out = append(out, fmt.Sprintf("%s: not up (no ssh login)", n.Name))
			continue
		}
		for _, f := range n.Failed {
			out = append(out, fmt.Sprintf("%s: unit %s failed: %s", n.Name, f.Unit, f.Line))
		}
	}
	if !st.Reported {
		// No node answered within the report's time (a loaded or booting
		// cluster): what the pool and Pacemaker hold is unknown, which is
		// not the same as empty.
		if c.Plan.HA || (c.Plan.Gluster != nil && c.Plan.Gluster.Mode == "managed") {
			out = append(out, "no node answered the cluster report (gluster pool, CIB) in time")
		}
	}
	if g := c.Plan.Gluster; st.Reported && g != nil && g.Mode == "managed" {
		if want := len(c.Plan.Nodes) - 1; st.Peers < want {
			out = append(out, fmt.Sprintf("gluster: %d of %d peers connected", st.Peers, want))
		}
		for _, v := range g.Volumes {
			i := slices.IndexFunc(st.Volumes, func(x Volume) bool { return x.Name == v.Name })
			switch {
			case i < 0:
				out = append(out, fmt.Sprintf("gluster: volume %s not created", v.Name))
			case st.Volumes[i].Status != "Started":
				out = append(out, fmt.Sprintf("gluster: volume %s is %s", v.Name, st.Volumes[i].Status))
			case len(v.Nodes) > 1 && (st.Volumes[i].Type != "Replicate" || st.Volumes[i].Bricks != len(v.Nodes)):
				out = append(out, fmt.Sprintf("gluster: volume %s is %s with %d bricks, want Replicate with %d",
					v.Name, st.Volumes[i].Type, st.Volumes[i].Bricks, len(v.Nodes)))
			}
		}
	}
	for _, pn := range c.Plan.Nodes {
		ns, ok := up[pn.Name]
		if !ok || !ns.SSH {
			continue
		}
		for _, m := range pn.Mounts {
			if m.Type == "glusterfs" && !slices.Contains(ns.Mounts, m.Target) {
				out = append(out, fmt.Sprintf("%s: %s not mounted", pn.Name, m.Target))
			}
		}
	}
	// DRBD: every resource connected with both disks UpToDate. Until the
	// first sync has finished the peer's copy is Inconsistent, and a
	// failover then has nothing to promote: not formed.
	for _, r := range c.Plan.DRBD {
		for _, peer := range r.Peers {
			ns, ok := up[peer.Node]
			if !ok || !ns.SSH {
				continue
			}
			i := slices.IndexFunc(ns.DRBD, func(d DRBDState) bool { return d.Resource == r.Name })
			switch {
			case i < 0:
				out = append(out, fmt.Sprintf("%s: drbd %s is not up", peer.Node, r.Name))
			case ns.DRBD[i].Connection != "Connected" || ns.DRBD[i].Disk != "UpToDate/UpToDate":
				out = append(out, fmt.Sprintf("%s: drbd %s is %s, %s; want Connected, UpToDate/UpToDate",
					peer.Node, r.Name, ns.DRBD[i].Connection, ns.DRBD[i].Disk))
			}
		}
	}
	// Fencing: sbd runs (it resets a node that loses quorum) and the
	// quorum device's vote counts on every node; without either a
	// partition is not guarded, so the cluster is not formed.
	if c.Plan.Fencing != nil {
		for _, pn := range c.Plan.Nodes {
			ns, ok := up[pn.Name]
			if !ok || !ns.SSH {
				continue
			}
			if ns.SBD != "active" {
				out = append(out, fmt.Sprintf("%s: sbd is %q, want active", pn.Name, ns.SBD))
			}
			if !strings.HasPrefix(ns.QDevice, "A,V") {
				out = append(out, fmt.Sprintf("%s: quorum device %s not voting (corosync-quorumtool flags %q, want A,V,…)",
					pn.Name, c.Plan.Fencing.QDevice, ns.QDevice))
			}
		}
	}
	if c.Plan.HA && st.Reported {
		for _, pn := range c.Plan.Nodes {
			if !slices.Contains(st.Online, pn.Name) {
				out = append(out, fmt.Sprintf("pacemaker: %s not online", pn.Name))
			}
		}
		for _, s := range c.Plan.Services {
			want := 0
			switch s.Kind {
			case p.KindClone:
				want = len(c.Plan.Nodes)
			case p.KindSingleton:
				want = 1
			default:
				continue
			}
			i := slices.IndexFunc(st.Resources, func(r Resource) bool { return r.ID == s.Name })
			switch {
			case i < 0:
				out = append(out, fmt.Sprintf("pacemaker: %s not known to the cluster", s.Name))
			case st.Resources[i].Failed:
				out = append(out, fmt.Sprintf("pacemaker: %s failed on %s", s.Name, strings.Join(st.Resources[i].Nodes, " ")))
			case len(st.Resources[i].Nodes) != want:
				out = append(out, fmt.Sprintf("pacemaker: %s runs on %d nodes (%s), want %d",
					s.Name, len(st.Resources[i].Nodes), strings.Join(st.Resources[i].Nodes, " "), want))
			}
		}
	}
	for _, e := range st.Endpoints {
		if !e.Answers {
			out = append(out, fmt.Sprintf("%s: nothing answers on %s", e.Service, e.Addr))
		}
	}
	return out
}

// Where maps each service to the nodes it runs on.
func (st *Status) Where(service string) []string {
	var where []string
	found := false
	for _, r := range st.Resources {
		if r.ID != service {
			continue
		}
		// A promotable clone runs where it is promoted.
		if r.Role == "Promoted" {
			return r.Nodes
		}
		if !found {
			where, found = r.Nodes, true
		}
	}
	return where
}

// Wait polls the cluster until it is formed, reporting each change of
// what it still waits for. On timeout (ctx) the error names what is
// missing, with each failed unit's first error line.
func (c *Cluster) Wait(ctx context.Context, report func(elapsed time.Duration, line string)) (*Status, error) {
	start := time.Now()
	seen := map[string]bool{}
	var last []string
	var st *Status
	for {
		st = c.Status(ctx)
		probs := c.Problems(st)
		if ctx.Err() != nil {
			break
		}
		for _, line := range milestones(c, st) {
			if !seen[line] {
				seen[line] = true
				report(time.Since(start), line)
			}
		}
		if len(probs) == 0 {
			return st, nil
		}
		last = probs
		if waitsOnlyForAnswers(c, st) {
			// Only a service that is still starting is missing (under
			// software emulation puppetserver takes minutes). Each full
			// status logs in to every node, which costs the starting
			// service's node CPU; until its address answers, or for at
			// most two minutes, try the addresses alone. The verdict is
			// always a full status.
			rep := func(line string) {
				if !seen[line] {
					seen[line] = true
					report(time.Since(start), line)
				}
			}
			var missing []string
			for _, e := range st.Endpoints {
				if !e.Answers {
					missing = append(missing, e.Service)
				}
			}
			rep(fmt.Sprintf("waiting for %s to answer; meanwhile only the floating addresses are tried (a full status every 2 min)",
				strings.Join(missing, ", ")))
			c.awaitAnswers(ctx, 2*time.Minute, rep)
		} else {
			sleep(ctx, 10*time.Second)
		}
		if ctx.Err() != nil {
			break
		}
	}
	return st, fmt.Errorf("cluster %s not formed after %s (%v):\n  %s", c.Personality,
		time.Since(start).Round(time.Second), context.Cause(ctx), strings.Join(last, "\n  "))
}

// waitsOnlyForAnswers: st would be formed if every floating address
// answered.
func waitsOnlyForAnswers(c *Cluster, st *Status) bool {
	if len(st.Endpoints) == 0 {
		return false
	}
	cp := *st
	cp.Endpoints = slices.Clone(st.Endpoints)
	for i := range cp.Endpoints {
		cp.Endpoints[i].Answers = true
	}
	return len(c.Problems(&cp)) == 0
}

// awaitAnswers tries the floating addresses every 10 s until all answer
// or max has passed, reporting each address that comes to answer.
func (c *Cluster) awaitAnswers(ctx context.Context, max time.Duration, report func(string)) {
	deadline := time.Now().Add(max)
	for time.Now().Before(deadline) {
		if !sleep(ctx, 10*time.Second) {
			return
		}
		eps := c.endpoints()
		all := true
		for _, e := range eps {
			if e.Answers {
				report(fmt.Sprintf("%s answers on %s", e.Service, e.Addr))
			} else {
				all = false
			}
		}
		if all {
			return
		}
	}
}

// sleep waits d or until ctx is done; false when ctx is.
func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// milestones are the progress lines a status gives: one per node up,
// per peer count, per volumes started, per service placed.
func milestones(c *Cluster, st *Status) []string {
	var out []string
	for _, n := range st.Nodes {
		if n.SSH {
			out = append(out, fmt.Sprintf("%s is up", n.Name))
			if len(n.Mounts) > 0 {
				out = append(out, fmt.Sprintf("%s: %d gluster volumes mounted", n.Name, len(n.Mounts)))
			}
			if n.SBD == "active" && strings.HasPrefix(n.QDevice, "A,V") {
				out = append(out, fmt.Sprintf("%s: fencing armed (sbd, quorum device voting)", n.Name))
			}
		}
	}
	if st.Peers > 0 {
		out = append(out, fmt.Sprintf("gluster: %d peers connected", st.Peers))
	}
	started := 0
	for _, v := range st.Volumes {
		if v.Status == "Started" {
			started++
		}
	}
	if started > 0 {
		out = append(out, fmt.Sprintf("gluster: %d volumes started", started))
	}
	if len(st.Online) > 0 {
		out = append(out, fmt.Sprintf("pacemaker: %s online", strings.Join(st.Online, " ")))
	}
	for _, r := range st.Resources {
		if len(r.Nodes) > 0 && !r.Failed {
			out = append(out, fmt.Sprintf("%s runs on %s", r.ID, strings.Join(r.Nodes, " ")))
		}
	}
	for _, e := range st.Endpoints {
		if e.Answers {
			out = append(out, fmt.Sprintf("%s answers on %s", e.Service, e.Addr))
		}
	}
	return out
}
