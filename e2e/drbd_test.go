package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/applbuild/applbuild/cluster"
	"github.com/applbuild/applbuild/internal/testenv"
)

// TestE2EClusterMySQLHA: mysql-ha's two nodes (MariaDB on DRBD, protocol
// C) booted together; a row committed through MariaDB's floating address
// survives the power cut of the node that served it (the other promotes
// its UpToDate copy and serves the row on the same address); the dead node
// comes back, rejoins, and DRBD is UpToDate on both sides again.
func TestE2EClusterMySQLHA(t *testing.T) {
	const name = "mysql-ha"
	b, c, cli, ssh := drbdPairUp(t, name)

	st := c.Status(t.Context())
	holder := first(st.Where("mysql"))
	if holder == "" {
		t.Fatalf("mysql runs nowhere:\n%s", st)
	}
	client := other(b, holder)
	if got, err := ssh(holder, "drbdadm dstate mysql"); err != nil || got != "UpToDate/UpToDate" {
		t.Errorf("DRBD on %s before the cut: %q, %v; want UpToDate/UpToDate", holder, got, err)
	}
	sqlAs := fmt.Sprintf("mariadb -h %s -u e2e -pe2e-pass e2e", serviceIP(b, "mysql"))
	if _, err := ssh(holder, `mariadb -e "CREATE DATABASE IF NOT EXISTS e2e; CREATE USER IF NOT EXISTS e2e@'%' IDENTIFIED BY 'e2e-pass'; GRANT ALL ON e2e.* TO e2e@'%'"`); err != nil {
		t.Fatalf("create the test user on %s: %v", holder, err)
	}
	row := fmt.Sprintf("row-%d", time.Now().UnixNano())
	if _, err := ssh(client, sqlAs+` -e "CREATE TABLE IF NOT EXISTS r (v VARCHAR(64)) ENGINE=InnoDB; INSERT INTO r VALUES ('`+row+`')"`); err != nil {
		t.Fatalf("commit a row from %s: %v", client, err)
	}

	killed := time.Now()
	if o, err := cli(t.Context(), "kill", name, holder); err != nil {
		t.Fatalf("cluster kill: %v\n%s", err, o)
	}
	waitServedBy(t, c, "mysql", client, "after the power cut")
	t.Logf("e2e: %s lost its power; MariaDB answered from %s %s later", holder, client, time.Since(killed).Round(time.Second))
	timing(t, name, "power cut → MariaDB answering from the peer", time.Since(killed))
	if got, err := ssh(client, sqlAs+` -N -e "SELECT v FROM r WHERE v='`+row+`'"`); err != nil || got != row {
		t.Errorf("after the failover the committed row reads %q, %v; want %q", got, err, row)
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
	for {
		got, err := ssh(holder, "drbdadm dstate mysql")
		if err == nil && got == "UpToDate/UpToDate" {
			break
		}
		if rctx.Err() != nil {
			t.Fatalf("DRBD on the rejoined %s: %q, %v; want UpToDate/UpToDate", holder, got, err)
		}
		time.Sleep(5 * time.Second)
	}
	t.Logf("e2e: %s rejoined and DRBD resynced (UpToDate on both): %s", holder, time.Since(back).Round(time.Second))
	timing(t, name, "node back → DRBD UpToDate on both", time.Since(back))

	drbdPartition(t, b, c, cli, ssh, name, client, drill{
		service: "mysql",
		prepare: func(primary string) {
			if _, err := ssh(primary, sqlAs+` -e "CREATE TABLE IF NOT EXISTS p (v VARCHAR(64) PRIMARY KEY) ENGINE=InnoDB"`); err != nil {
				t.Fatalf("create the partition table: %v", err)
			}
		},
		// The client returns once the row is committed (InnoDB flushes
		// its log at commit, DRBD protocol C has it on both disks).
		commit: func(item string) string {
			return fmt.Sprintf(`timeout 20 %s -e "INSERT INTO p VALUES ('%s')" 2>/dev/null`, sqlAs, item)
		},
		stored: func(node string) []string {
			rows, err := ssh(node, sqlAs+` -N -e "SELECT v FROM p"`)
			if err != nil {
				t.Fatalf("read the rows on %s: %v", node, err)
			}
			return strings.Fields(rows)
		},
	})
}

// drbdPairUp builds a DRBD pair's personality for Xen and brings it up
// with applbuild cluster (make cluster-test only), as TestE2EClusterMySQLHA
// and TestE2EClusterNFSHA start.
func drbdPairUp(t *testing.T, name string) (*built, *cluster.Cluster, func(context.Context, ...string) (string, error), func(node, cmd string) (string, error)) {
	t.Helper()
	testenv.Slow(t)
	testenv.Root(t)
	if os.Getenv("APPLBUILD_CLUSTER") != "1" {
		t.Skip("APPLBUILD_CLUSTER=1 (make cluster-test) boots the whole cluster")
	}
	testenv.Tools(t, "go", "mmdebstrap", "mke2fs", "debugfs", "qemu-system-x86_64", "qemu-img", "ssh", "ip", "corosync-qnetd")
	b := buildPersonality(t, name, "xen")
	c, cli := pairUp(t, b, name, poundFormTimeout)
	return b, c, cli, clusterSSH(t, c)
}

// drill is what the partition drill writes through a DRBD pair's service.
type drill struct {
	service string               // the singleton on DRBD
	prepare func(primary string) // before the writers start
	// commit is a shell command that stores item through the service's
	// floating address and exits 0 only once the item is durable.
	commit func(item string) string
	// stored lists the items node holds, read once the pair has formed again.
	stored func(node string) []string
}

// drillLog is where each writer logs, fsynced, every item acknowledged.
const drillLog = "/var/tmp/e2e-committed"

// drbdPartition pulls the cable of the DRBD pair's primary (not its
// power) while a writer on each node stores numbered items through the
// service's floating address and logs every one acknowledged. Cut off
// from its peer and from the quorum device, the primary must be reset by
// its own watchdog (diskless sbd) before it could acknowledge a write its
// peer lacks; the peer, quorate with the quorum device's vote, must fence
// it (stonith-watchdog-timeout), promote and serve. With the cable back
// the old primary rejoins as secondary with no split brain, and every
// acknowledged item of both writers is there.
func drbdPartition(t *testing.T, b *built, c *cluster.Cluster, cli func(context.Context, ...string) (string, error),
	ssh func(node, cmd string) (string, error), name, primary string, d drill) {
	peer := other(b, primary)
	d.prepare(primary)
	for _, n := range []string{primary, peer} {
		startWriter(t, ssh, n, d.commit, "0.5")
	}
	bootID := func(n string) string {
		id, _ := ssh(n, "cat /proc/sys/kernel/random/boot_id")
		return id
	}
	before := bootID(primary)
	logged := func(n string) []string {
		out, err := ssh(n, "cat "+drillLog+" 2>/dev/null || true")
		if err != nil {
			t.Errorf("read %s's log: %v", n, err)
		}
		return strings.Fields(out)
	}
	time.Sleep(15 * time.Second) // items from both writers before the cut
	atCut := len(logged(primary))

	if o, err := cli(t.Context(), "link", name, primary, "down"); err != nil {
		t.Fatalf("cluster link down: %v\n%s", err, o)
	}
	cut := time.Now()
	restored := false
	defer func() {
		if !restored {
			_, _ = cli(context.Background(), "link", name, primary, "up")
		}
	}()
	waitServedBy(t, c, d.service, peer, "with "+primary+"'s cable pulled")
	t.Logf("e2e: %s's cable pulled; %s answered from %s %s later", primary, d.service, peer, time.Since(cut).Round(time.Second))
	timing(t, name, "cable pulled → "+d.service+" answering from the peer", time.Since(cut))
	atMove := len(logged(peer))
	wctx, wcancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer wcancel()
	for len(logged(peer)) < atMove+5 {
		if wctx.Err() != nil {
			t.Fatalf("%s's writer stored nothing more on the new primary within 5 minutes", peer)
		}
		time.Sleep(5 * time.Second)
	}
	t.Logf("e2e: %s's writer stores again: %s after the cut", peer, time.Since(cut).Round(time.Second))
	timing(t, name, "cable pulled → the peer's writer storing again", time.Since(cut))

	if o, err := cli(t.Context(), "link", name, primary, "up"); err != nil {
		t.Fatalf("cluster link up: %v\n%s", err, o)
	}
	restored = true
	back := time.Now()
	rctx, rcancel := context.WithTimeout(t.Context(), poundRejoinTimeout)
	defer rcancel()
	if _, err := c.Wait(rctx, func(time.Duration, string) {}); err != nil {
		t.Fatalf("after the partition %s did not rejoin: %v\n%s", primary, err, diagnoseCluster(t.Context(), c))
	}
	t.Logf("e2e: cable back; the pair formed again, DRBD UpToDate on both: %s", time.Since(back).Round(time.Second))
	timing(t, name, "cable back → formed again", time.Since(back))
	if after := bootID(primary); after == before || after == "" {
		t.Errorf("%s was not reset while cut off (boot id %q before, %q after): its watchdog did not fence it", primary, before, after)
	} else {
		t.Logf("e2e: %s was reset by its watchdog while cut off", primary)
	}
	for _, n := range []string{primary, peer} {
		out, err := ssh(n, `journalctl -k --no-pager -o cat | grep -c "Split-Brain detected" || true`)
		if err != nil || out != "0" {
			t.Errorf("%s: DRBD split brain in the kernel log: %q, %v", n, out, err)
		}
	}

	for _, n := range []string{primary, peer} {
		_, _ = ssh(n, "systemctl stop e2e-writer")
	}
	have := map[string]bool{}
	for _, r := range d.stored(peer) {
		have[r] = true
	}
	for _, n := range []string{primary, peer} {
		l := logged(n)
		var lost []string
		for _, r := range l {
			if !have[r] {
				lost = append(lost, r)
			}
		}
		if len(lost) > 0 {
			t.Errorf("%s: %d of its %d acknowledged items are lost: %v", n, len(lost), len(l), lost)
		}
		if n == primary {
			t.Logf("e2e: %s (cut off) had %d items acknowledged, %d of them after the cut; all there", n, len(l), len(l)-atCut)
		} else {
			t.Logf("e2e: %s had %d items acknowledged; all there", n, len(l))
		}
		if len(l) == 0 {
			t.Errorf("%s's writer stored nothing: the drill proves nothing", n)
		}
	}
}

// waitServedBy waits (poundFailoverTimeout at most) until service runs on
// node alone and answers on its floating address; when it does not, the
// test fails with when (what happened) and the cluster's diagnosis.
func waitServedBy(t *testing.T, c *cluster.Cluster, service, node, when string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), poundFailoverTimeout)
	defer cancel()
	for {
		st := c.Status(ctx)
		if w := st.Where(service); len(w) == 1 && w[0] == node && endpointAnswers(st, service) {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("%s, %s did not move to %s within %s\n%s", when, service, node, poundFailoverTimeout, diagnoseCluster(t.Context(), c))
		}
		time.Sleep(3 * time.Second)
	}
}

// startWriter starts, as the unit e2e-writer on node, a loop that stores
// item node-1, node-2, … with commit, one every pause seconds, and appends
// each item commit acknowledged to drillLog, fsynced.
func startWriter(t *testing.T, ssh func(node, cmd string) (string, error), node string, commit func(item string) string, pause string) {
	t.Helper()
	writer := fmt.Sprintf(`i=0; while :; do i=$((i+1)); if %s; then echo "%s-$i" >>%s; sync %s; fi; sleep %s; done`,
		commit(node+"-$i"), node, drillLog, drillLog, pause)
	if _, err := ssh(node, "rm -f "+drillLog+"; systemd-run --unit e2e-writer --collect bash -c "+shQuote(writer)); err != nil {
		t.Fatalf("start the writer on %s: %v", node, err)
	}
}

// shQuote quotes s for a POSIX shell.
func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
