package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/applbuild/applbuild/internal/testenv"
)

// TestE2EClusterMySQLHA: mysql-ha's two nodes (MariaDB on DRBD, protocol
// C) booted together; a row committed through MariaDB's floating address
// survives the power cut of the node that served it (the other promotes
// its UpToDate copy and serves the row on the same address); the dead node
// comes back, rejoins, and DRBD is UpToDate on both sides again.
func TestE2EClusterMySQLHA(t *testing.T) {
	testenv.Slow(t)
	testenv.Root(t)
	if os.Getenv("APPLBUILD_CLUSTER") != "1" {
		t.Skip("APPLBUILD_CLUSTER=1 (make cluster-test) boots the whole cluster")
	}
	testenv.Tools(t, "go", "mmdebstrap", "mke2fs", "debugfs", "qemu-system-x86_64", "qemu-img", "ssh", "ip")
	const name = "mysql-ha"
	b := buildPersonality(t, name, "xen")
	c, cli := pairUp(t, b, name, poundFormTimeout)
	ssh := clusterSSH(t, c)

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
	fctx, fcancel := context.WithTimeout(t.Context(), poundFailoverTimeout)
	defer fcancel()
	for {
		st := c.Status(fctx)
		if w := st.Where("mysql"); len(w) == 1 && w[0] == client && endpointAnswers(st, "mysql") {
			break
		}
		if fctx.Err() != nil {
			t.Fatalf("MariaDB did not move to %s within %s\n%s", client, poundFailoverTimeout, diagnoseCluster(t.Context(), c))
		}
		time.Sleep(3 * time.Second)
	}
	t.Logf("e2e: %s lost its power; MariaDB answered from %s %s later", holder, client, time.Since(killed).Round(time.Second))
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
}
