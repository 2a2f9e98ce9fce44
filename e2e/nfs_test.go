package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestE2EClusterNFSHA: nfs-ha's two nodes (an NFS server on DRBD, protocol
// C) booted together. A client with a hard NFSv4.2 mount of the floating
// address writes a file a second and logs each one fsync acknowledged; the
// server's node loses its power, the other promotes, takes the address and
// serves after the NFSv4 grace period, the client's writes resume without
// an error, and every acknowledged file is on the new primary's disk. The
// dead node comes back and resyncs; then the partition drill.
//
// The client is the surviving node itself: applbuild's host has no NFS
// client, and a third guest would not fit beside two TCG guests on two
// cores.
func TestE2EClusterNFSHA(t *testing.T) {
	const name = "nfs-ha"
	b, c, cli, ssh := drbdPairUp(t, name)
	export := b.plan.NFS[0].Path
	const mnt = "/mnt/e2e"
	vip := serviceIP(b, "nfs")
	mount := func(n string) {
		if _, err := ssh(n, fmt.Sprintf("mkdir -p %s && (mountpoint -q %s || mount -t nfs4 -o hard,vers=4.2 %s:%s %s)", mnt, mnt, vip, export, mnt)); err != nil {
			t.Fatalf("mount the export on %s: %v", n, err)
		}
	}
	// commit writes item through the mount and returns once the server
	// has it on stable storage: fsync is an NFS COMMIT, the export is
	// sync, and DRBD protocol C has it on both disks.
	commit := func(item string) string {
		// Not in single quotes: item holds the writer's $i.
		return fmt.Sprintf(`{ echo %s >%s/e2e/%s && sync %s/e2e/%s; }`, item, mnt, item, mnt, item)
	}
	stored := func(node string) []string {
		out, err := ssh(node, "ls "+export+"/e2e")
		if err != nil {
			t.Fatalf("list the files on %s: %v", node, err)
		}
		return strings.Fields(out)
	}

	st := c.Status(t.Context())
	holder := first(st.Where("nfs"))
	if holder == "" {
		t.Fatalf("nfs runs nowhere:\n%s", st)
	}
	client := other(b, holder)
	// Root is squashed to nobody: a directory it may write in.
	if _, err := ssh(holder, "mkdir -p -m 1777 "+export+"/e2e"); err != nil {
		t.Fatalf("make the test directory on %s: %v", holder, err)
	}
	mount(client)
	startWriter(t, ssh, client, commit, "1")
	logged := func() []string {
		out, _ := ssh(client, "cat "+drillLog+" 2>/dev/null || true")
		return strings.Fields(out)
	}
	time.Sleep(15 * time.Second)
	if len(logged()) == 0 {
		t.Fatalf("the NFS writer on %s stored nothing before the power cut", client)
	}

	killed := time.Now()
	if o, err := cli(t.Context(), "kill", name, holder); err != nil {
		t.Fatalf("cluster kill: %v\n%s", err, o)
	}
	atKill := len(logged())
	waitServedBy(t, c, "nfs", client, "after the power cut")
	t.Logf("e2e: %s lost its power; the NFS server answered from %s %s later", holder, client, time.Since(killed).Round(time.Second))
	timing(t, name, "power cut → NFS answering from the peer", time.Since(killed))
	// NFSv4's grace period (90 s) holds new writes back after a restart.
	wctx, wcancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer wcancel()
	for len(logged()) < atKill+5 {
		if wctx.Err() != nil {
			t.Fatalf("the client's writes did not resume within 5 minutes of the failover\n%s", diagnoseCluster(t.Context(), c))
		}
		time.Sleep(5 * time.Second)
	}
	t.Logf("e2e: the client's writes resumed through the same mount %s after the power cut", time.Since(killed).Round(time.Second))
	timing(t, name, "power cut → the client's writes resume (NFSv4 grace)", time.Since(killed))
	_, _ = ssh(client, "systemctl stop e2e-writer")
	have := map[string]bool{}
	for _, f := range stored(client) {
		have[f] = true
	}
	l := logged()
	var lost []string
	for _, f := range l {
		if !have[f] {
			lost = append(lost, f)
		} else if got, err := ssh(client, "cat "+export+"/e2e/"+f); err != nil || got != f {
			lost = append(lost, f+" (reads "+got+")")
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d of %d acknowledged files are not on the new primary: %v", len(lost), len(l), lost)
	} else {
		t.Logf("e2e: %d files acknowledged, %d of them before the power cut; all on the new primary's disk", len(l), atKill)
	}

	back := time.Now()
	if o, err := cli(t.Context(), "start", name, holder); err != nil {
		t.Fatalf("cluster start: %v\n%s", err, o)
	}
	rctx, rcancel := context.WithTimeout(t.Context(), poundRejoinTimeout)
	defer rcancel()
	if _, err := c.Wait(rctx, func(time.Duration, string) {}); err != nil {
		t.Fatalf("%s did not rejoin: %v\n%s", holder, err, diagnoseCluster(t.Context(), c))
	}
	t.Logf("e2e: %s rejoined and DRBD resynced (UpToDate on both): %s", holder, time.Since(back).Round(time.Second))
	timing(t, name, "node back → DRBD UpToDate on both", time.Since(back))

	drbdPartition(t, b, c, cli, ssh, name, client, drill{
		service: "nfs",
		prepare: func(string) {
			for _, n := range []string{holder, client} {
				mount(n)
			}
		},
		commit: commit,
		stored: stored,
	})
}
