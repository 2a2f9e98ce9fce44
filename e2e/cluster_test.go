package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/cluster"
	"github.com/applbuild/applbuild/internal/testenv"
	"github.com/applbuild/applbuild/personalities"
)

// Bounds of the cluster test's stages under software emulation on 2
// cores (three 1-vCPU guests). They are bounds, not delays: each stage
// ends as soon as its condition holds, and its time is logged.
const (
	formTimeout   = 60 * time.Minute
	rejoinTimeout = 30 * time.Minute
	// failoverTimeout: the 60 s is for the singletons a small
	// node runs; puppetserver's JVM alone takes minutes to start under
	// emulation, so the test measures each service and bounds them all.
	failoverTimeout = 15 * time.Minute
	// failoverGoal is what MariaDB's move must fit: its floating address
	// answering again from another node with the committed row.
	failoverGoal = 3 * time.Minute
)

// TestE2EClusterWebCluster: the three web-cluster nodes of a real build,
// booted together through `applbuild cluster`, form the cluster (every
// volume replicated, started and mounted, every service placed and
// answering, no failed unit); a file written on one node is read on the
// others; a row committed to MariaDB survives the death of the node that
// served it; the node comes back, rejoins, and gluster heals.
func TestE2EClusterWebCluster(t *testing.T) {
	testenv.Slow(t)
	testenv.Root(t)
	if os.Getenv("APPLBUILD_CLUSTER") != "1" {
		t.Skip("APPLBUILD_CLUSTER=1 (make cluster-test) boots the whole cluster")
	}
	testenv.Tools(t, "go", "mmdebstrap", "mke2fs", "debugfs", "qemu-system-x86_64", "qemu-img", "ssh", "ip", "rsync", "logger")
	// The site lets one DR host pull www: applbuild's own address on the
	// cluster's LAN, the machine drPull plays.
	b := buildPersonality(t, "web-cluster", "xen", "--set", drSiteModules(t))
	b.xenDir = b.dir
	out := filepath.Dir(filepath.Dir(b.xenDir))
	cli := clusterCLI(b, out)
	t.Cleanup(func() {
		if o, err := cli(context.Background(), "down", "web-cluster"); err != nil {
			t.Errorf("cluster down: %v\n%s", err, o)
		}
		if _, err := os.Stat(filepath.Join("/run/netns", "applbuild-web-cluster")); err == nil {
			t.Error("cluster down left the network namespace")
		}
	})

	// Formation, with n3 booted first and n1 two minutes later: the pool
	// and the volumes must form whatever the order.
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), formTimeout+5*time.Minute)
	o, err := cli(ctx, "up", "web-cluster", "--order", "n3,n2,n1", "--stagger", "1m", "--timeout", formTimeout.String())
	cancel()
	t.Logf("cluster up:\n%s", o)
	if err != nil {
		c, lerr := cluster.Load(out, "web-cluster")
		if lerr == nil {
			t.Logf("diagnosis:\n%s", diagnoseCluster(t.Context(), c))
		}
		t.Fatalf("cluster up: %v", err)
	}
	t.Logf("e2e: cluster formed (n3 first, n1 2m later): %s", time.Since(start).Round(time.Second))
	timing(t, "web-cluster", "cluster up until formed (n3 first, n1 2 min later)", time.Since(start))
	c, err := cluster.Load(out, "web-cluster")
	if err != nil {
		t.Fatal(err)
	}
	ssh := clusterSSH(t, c)

	// What is shared is shared: a page written on n1 is read on n2 and n3
	// and served by apache on all three.
	page := fmt.Sprintf("written on n1 at %d\n", time.Now().UnixNano())
	if _, err := ssh("n1", "printf %s '"+strings.TrimSpace(page)+"' > /var/www/html/e2e.txt && sync"); err != nil {
		t.Fatalf("write on n1: %v", err)
	}
	for _, n := range []string{"n2", "n3"} {
		if got, err := ssh(n, "cat /var/www/html/e2e.txt"); err != nil || got != strings.TrimSpace(page) {
			t.Errorf("%s reads %q, %v; want n1's %q", n, got, err, strings.TrimSpace(page))
		}
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: c.Dial}}
	urls := []string{}
	for _, pn := range b.plan.Nodes {
		urls = append(urls, "http://"+pn.Address+":8080")
	}
	// pound, on its floating address, serves the same pages.
	if ip := serviceIP(b, "pound"); ip != "" {
		urls = append(urls, "http://"+ip)
	}
	healthz, hasHealthz := imageFile(b, b.plan.Node("n1"), "/var/www/html/healthz")
	for _, u := range urls {
		if got, err := httpGet(t.Context(), hc, u+"/e2e.txt"); err != nil || strings.TrimSpace(got) != strings.TrimSpace(page) {
			t.Errorf("GET %s/e2e.txt = %q, %v; want n1's page", u, got, err)
		}
		if hasHealthz {
			if got, err := httpGet(t.Context(), hc, u+"/healthz"); err != nil || got != healthz {
				t.Errorf("GET %s/healthz = %q, %v; want %q", u, got, err, healthz)
			}
		}
	}

	// DR: a machine outside the cluster pulls www from the floating
	// rsyncd address with the wrapper the image ships, and gets n1's page.
	t.Run("dr pull", func(t *testing.T) { drPull(t, b, c, page) })

	// puppetserver serves TLS with the certificate the build made, under
	// the floating service's name, and made no key of its own.
	t.Run("puppet tls", func(t *testing.T) { puppetTLS(t, b, c, ssh) })

	// A committed row, through MariaDB's floating address.
	st := c.Status(t.Context())
	holder := first(st.Where("mysql"))
	if holder == "" {
		t.Fatalf("mysql runs nowhere:\n%s", st)
	}
	dbIP := serviceIP(b, "mysql")
	client := other(b, holder)
	sqlAs := fmt.Sprintf("mariadb -h %s -u e2e -pe2e-pass e2e", dbIP)
	if _, err := ssh(holder, `mariadb -e "CREATE DATABASE IF NOT EXISTS e2e; CREATE USER IF NOT EXISTS e2e@'%' IDENTIFIED BY 'e2e-pass'; GRANT ALL ON e2e.* TO e2e@'%'"`); err != nil {
		t.Fatalf("create the test user on %s: %v", holder, err)
	}
	row := fmt.Sprintf("row-%d", time.Now().UnixNano())
	if _, err := ssh(client, sqlAs+` -e "CREATE TABLE IF NOT EXISTS r (v VARCHAR(64)) ENGINE=InnoDB; INSERT INTO r VALUES ('`+row+`')"`); err != nil {
		t.Fatalf("commit a row through %s from %s: %v", dbIP, client, err)
	}

	// The node that serves MariaDB loses its power.
	held := heldBy(st, holder)
	t.Logf("e2e: %s holds %v; pulling its power", holder, held)
	killed := time.Now()
	if o, err := cli(t.Context(), "kill", "web-cluster", holder); err != nil {
		t.Fatalf("cluster kill: %v\n%s", err, o)
	}
	// Each held service's floating address is tried every second (the
	// holder is dead, so an answer comes from another node), and a
	// status then says where it runs: the time is the first answer.
	answered := map[string]time.Duration{}
	moved := map[string]time.Duration{}
	var lastStatus time.Time
	fctx, fcancel := context.WithTimeout(t.Context(), failoverTimeout)
	for len(moved) < len(held) && fctx.Err() == nil {
		for _, svc := range held {
			if _, ok := answered[svc]; ok {
				continue
			}
			sv := service(b, svc)
			dctx, dcancel := context.WithTimeout(fctx, 2*time.Second)
			conn, err := c.Dial(dctx, "tcp", net.JoinHostPort(sv.IP, strconv.Itoa(sv.Port)))
			dcancel()
			if err == nil {
				conn.Close()
				answered[svc] = time.Since(killed)
			}
		}
		if len(answered) > len(moved) && time.Since(lastStatus) > 5*time.Second {
			lastStatus = time.Now()
			st := c.Status(fctx)
			for svc, d := range answered {
				if _, ok := moved[svc]; ok {
					continue
				}
				if where := st.Where(svc); len(where) == 1 && where[0] != holder {
					moved[svc] = d
					t.Logf("e2e: failover of %s to %s: answering %s after the power cut", svc, where[0], d.Round(time.Second))
					timing(t, "web-cluster", "power cut → "+svc+" answering elsewhere", d)
				}
			}
		}
		select {
		case <-fctx.Done():
		case <-time.After(time.Second):
		}
	}
	fcancel()
	for _, svc := range held {
		if _, ok := moved[svc]; !ok {
			t.Errorf("%s did not move off %s within %s", svc, holder, failoverTimeout)
		}
	}
	if d, ok := moved["mysql"]; ok && d > failoverGoal {
		t.Errorf("MariaDB's failover took %s, more than %s", d.Round(time.Second), failoverGoal)
	}
	got, err := ssh(client, sqlAs+` -N -e "SELECT v FROM r WHERE v='`+row+`'"`)
	if err != nil || got != row {
		t.Errorf("after the failover the committed row reads %q, %v; want %q", got, err, row)
	}

	// It comes back, rejoins, and every volume heals.
	back := time.Now()
	if o, err := cli(t.Context(), "start", "web-cluster", holder); err != nil {
		t.Fatalf("cluster start: %v\n%s", err, o)
	}
	rctx, rcancel := context.WithTimeout(t.Context(), rejoinTimeout)
	_, err = c.Wait(rctx, func(d time.Duration, line string) {})
	rcancel()
	if err != nil {
		t.Fatalf("%s did not rejoin: %v\n%s", holder, err, diagnoseCluster(t.Context(), c))
	}
	t.Logf("e2e: %s rejoined (cluster formed again): %s", holder, time.Since(back).Round(time.Second))
	timing(t, "web-cluster", "node back → rejoined", time.Since(back))
	hctx, hcancel := context.WithTimeout(t.Context(), rejoinTimeout)
	defer hcancel()
	for {
		out, err := ssh(holder, `for v in $(gluster --mode=script volume list); do gluster --mode=script volume heal "$v" info | awk '/^Number of entries:/ {n += $4} END {print n + 0}'; done | awk '{s += $1} END {print s + 0}'`)
		if err == nil && out == "0" {
			t.Logf("e2e: gluster heal drained to 0 entries: %s after the restart", time.Since(back).Round(time.Second))
			timing(t, "web-cluster", "node back → gluster heal drained", time.Since(back))
			break
		}
		if hctx.Err() != nil {
			t.Fatalf("heal info still has %q entries (err %v)", out, err)
		}
		time.Sleep(10 * time.Second)
	}
	if got, err := ssh(holder, "cat /var/www/html/e2e.txt"); err != nil || got != strings.TrimSpace(page) {
		t.Errorf("the rejoined %s reads %q, %v", holder, got, err)
	}

	if os.Getenv("APPLBUILD_CLUSTER_ALL") != "1" {
		t.Log("APPLBUILD_CLUSTER_ALL=1 (make cluster-test-all) also runs the partition test")
		return
	}
	partitionTest(t, b, c, ssh, sqlAs)
}

// puppetTLS: an HTTPS client that trusts only the CA in the image reaches
// puppetserver on its floating address by the service's name, and the
// node that runs it found its CA and its own certificate in place.
func puppetTLS(t *testing.T, b *built, c *cluster.Cluster, ssh func(node, cmd string) (string, error)) {
	sv := service(b, "puppet")
	if sv.IP == "" || sv.Host == "" {
		t.Fatal("the plan has no puppet service with a floating address and name")
	}
	caPEM, ok := imageFile(b, b.plan.Node("n1"), "/etc/puppet/puppetserver/ca/ca_crt.pem")
	if !ok {
		t.Fatal("the image has no puppet CA")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(caPEM)) {
		t.Fatal("the image's puppet CA does not parse")
	}
	// As an agent asks: by the service's name (TLS's SNI and HTTP's Host
	// alike; Jetty refuses a Host that differs from the SNI), which the
	// cluster's /etc/hosts gives as the floating address.
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		return c.Dial(ctx, network, net.JoinHostPort(sv.IP, "8140"))
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: dial, TLSClientConfig: &tls.Config{RootCAs: pool}}}
	url := "https://" + sv.Host + ":8140/status/v1/simple"
	if got, err := httpGet(t.Context(), hc, url); err != nil || got != "running" {
		t.Errorf("GET %s (at %s) = %q, %v; want running", url, sv.IP, got, err)
	}
	holder := first(c.Status(t.Context()).Where("puppet"))
	if holder == "" {
		t.Fatal("puppet runs nowhere")
	}
	log, err := ssh(holder, "cat /var/log/puppetserver/puppetserver.log")
	if err != nil {
		t.Fatalf("read puppetserver's log on %s: %v", holder, err)
	}
	for _, want := range []string{"CA already initialized for SSL", "Master already initialized for SSL"} {
		if !strings.Contains(log, want) {
			t.Errorf("%s: puppetserver's log lacks %q: it made its own", holder, want)
		}
	}
	// Pacemaker's start of puppetserver ended once the JVM ran, not when
	// it answered minutes later: a start in flight holds back every other
	// recovery in the cluster (docs/cluster.md). exec-time is in ms.
	ops, err := ssh(holder, `cibadmin -Q --xpath "//lrm_resource[@id='puppet']/lrm_rsc_op[@operation='start']" | grep -o 'exec-time="[0-9]*"'`)
	if err != nil || ops == "" {
		t.Fatalf("puppet's start in the CIB's status on %s: %q, %v", holder, ops, err)
	}
	for _, f := range strings.Fields(ops) {
		ms, _ := strconv.Atoi(strings.Trim(strings.TrimPrefix(f, "exec-time="), `"`))
		t.Logf("e2e: Pacemaker's start of puppet on %s took %d ms", holder, ms)
		if ms > 60000 {
			t.Errorf("Pacemaker's start of puppet took %d ms: it waits for the JVM's readiness", ms)
		}
	}
}

// partitionTest cuts the link of the node that serves MariaDB (not its
// power) while a writer on it and one on a majority node commit rows
// through MariaDB's floating address: the cut-off node must refuse
// GlusterFS writes (client quorum) and give up its floating addresses
// (no quorum: Pacemaker stops its resources), the majority serve MariaDB
// and keep committing; once joined, no split-brain entry and no
// acknowledged row lost on either side.
func partitionTest(t *testing.T, b *built, c *cluster.Cluster, ssh func(node, cmd string) (string, error), sqlAs string) {
	minority := first(c.Status(t.Context()).Where("mysql"))
	if minority == "" {
		t.Fatal("mysql runs nowhere before the partition")
	}
	var majority []string
	for _, pn := range b.plan.Nodes {
		if pn.Name != minority {
			majority = append(majority, pn.Name)
		}
	}
	if _, err := ssh(minority, sqlAs+` -e "CREATE TABLE IF NOT EXISTS p (v VARCHAR(64)) ENGINE=InnoDB"`); err != nil {
		t.Fatalf("create the drill's table: %v", err)
	}
	commit := func(item string) string {
		return fmt.Sprintf(`timeout 20 %s -e "INSERT INTO p VALUES ('%s')" 2>/dev/null`, sqlAs, item)
	}
	writers := []string{minority, majority[0]}
	for _, n := range writers {
		startWriter(t, ssh, n, commit, "0.5")
	}
	logged := func(n string) []string {
		out, err := ssh(n, "cat "+drillLog+" 2>/dev/null || true")
		if err != nil {
			t.Errorf("read %s's log: %v", n, err)
		}
		return strings.Fields(out)
	}
	time.Sleep(15 * time.Second) // rows from both writers before the cut
	atCut := len(logged(minority))

	if err := c.Partition(t.Context(), minority, true); err != nil {
		t.Fatalf("partition: %v", err)
	}
	cut := time.Now()
	healed := false
	defer func() {
		if !healed {
			_ = c.Partition(context.Background(), minority, false)
		}
	}()
	// The majority serves MariaDB and commits again.
	deadline := time.Now().Add(failoverTimeout)
	for {
		st := c.Status(t.Context())
		if w := st.Where("mysql"); len(w) == 1 && w[0] != minority && endpointAnswers(st, "mysql") {
			t.Logf("e2e: %s cut off; MariaDB answering from %s %s later", minority, w[0], time.Since(cut).Round(time.Second))
			timing(t, "web-cluster", "link cut → mysql answering from the majority", time.Since(cut))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("MariaDB not served by the majority %s after the cut:\n%s", strings.Join(majority, " "), st)
		}
		time.Sleep(5 * time.Second)
	}
	atMove := len(logged(majority[0]))
	for len(logged(majority[0])) < atMove+5 {
		if time.Now().After(deadline) {
			t.Fatalf("%s's writer committed nothing more after the cut", majority[0])
		}
		time.Sleep(5 * time.Second)
	}
	t.Logf("e2e: %s's writer commits again: %s after the cut", majority[0], time.Since(cut).Round(time.Second))
	timing(t, "web-cluster", "link cut → the majority's writer committing again", time.Since(cut))
	// The minority's GlusterFS write must fail (client quorum: 1 of 3
	// bricks), the majority's succeed.
	if out, err := ssh(minority, "timeout 180 sh -c 'echo minority > /var/www/html/part-minor.txt && sync'"); err == nil {
		t.Errorf("%s, cut off, wrote to /var/www: %q", minority, out)
	}
	if _, err := ssh(majority[0], "echo majority > /var/www/html/part-major.txt && sync"); err != nil {
		t.Errorf("%s (majority) cannot write /var/www: %v", majority[0], err)
	}
	// The minority holds no floating address once it has noticed.
	var vips []string
	for _, s := range b.plan.Services {
		if s.IP != "" {
			vips = append(vips, s.IP)
		}
	}
	var held string
	for {
		out, err := ssh(minority, "ip -o -4 addr show")
		held = ""
		for _, ip := range vips {
			if err == nil && strings.Contains(out, " "+ip+"/") {
				held += " " + ip
			}
		}
		if err == nil && held == "" {
			t.Logf("e2e: partitioned %s holds no floating address: %s after the cut", minority, time.Since(cut).Round(time.Second))
			timing(t, "web-cluster", "link cut → the minority holding no floating address", time.Since(cut))
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("%s, cut off, still holds%s", minority, held)
			break
		}
		time.Sleep(10 * time.Second)
	}

	// Joined again: the cluster forms, nothing is in split brain, and
	// every row either writer had acknowledged is there.
	if err := c.Partition(t.Context(), minority, false); err != nil {
		t.Fatalf("heal the partition: %v", err)
	}
	healed = true
	joined := time.Now()
	rctx, rcancel := context.WithTimeout(t.Context(), rejoinTimeout)
	_, err := c.Wait(rctx, func(time.Duration, string) {})
	rcancel()
	if err != nil {
		t.Fatalf("after the partition: %v\n%s", err, diagnoseCluster(t.Context(), c))
	}
	t.Logf("e2e: cluster formed again after the partition: %s", time.Since(joined).Round(time.Second))
	timing(t, "web-cluster", "link back → formed again", time.Since(joined))
	for _, n := range writers {
		_, _ = ssh(n, "systemctl stop e2e-writer")
	}
	out, err := ssh(majority[0], `for v in $(gluster --mode=script volume list); do gluster --mode=script volume heal "$v" info split-brain | awk -v v="$v" '/^Number of entries in split-brain:/ && $NF != 0 {print v": "$NF}'; done`)
	if err != nil || out != "" {
		t.Errorf("split brain after the partition: %q, %v", out, err)
	}
	if got, err := ssh(minority, "cat /var/www/html/part-major.txt"); err != nil || got != "majority" {
		t.Errorf("%s reads the majority's file as %q, %v", minority, got, err)
	}
	if got, _ := ssh(majority[0], "cat /var/www/html/part-minor.txt 2>/dev/null || true"); got != "" {
		t.Errorf("the minority's refused write is there: %q", got)
	}
	rows, err := ssh(majority[1], sqlAs+` -N -e "SELECT v FROM p"`)
	if err != nil {
		t.Fatalf("read the rows: %v", err)
	}
	have := map[string]bool{}
	for _, r := range strings.Fields(rows) {
		have[r] = true
	}
	for _, n := range writers {
		l := logged(n)
		var lost []string
		for _, r := range l {
			if !have[r] {
				lost = append(lost, r)
			}
		}
		if len(lost) > 0 {
			t.Errorf("%s: %d of its %d acknowledged rows are lost: %v", n, len(lost), len(l), lost)
		}
		if len(l) == 0 {
			t.Errorf("%s's writer committed nothing: the drill proves nothing", n)
		}
		if n == minority {
			t.Logf("e2e: %s (cut off) had %d rows acknowledged, %d of them after the cut; all there", n, len(l), len(l)-atCut)
		} else {
			t.Logf("e2e: %s had %d rows acknowledged; all there", n, len(l))
		}
	}
}

// drSiteModules is the --set that lets applbuild's own address on the
// cluster's LAN (cluster.Cluster.HostAddr: the plan's gateway) pull the
// www module, besides the personality's own dr.example.org.
func drSiteModules(t *testing.T) string {
	t.Helper()
	spec, err := personalities.Library{}.Load("web-cluster", personalities.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pl, err := builder.New(spec)
	if err != nil {
		t.Fatal(err)
	}
	if pl.Rsync == nil || len(pl.Rsync.Modules) != 1 || pl.Rsync.Modules[0].Name != "www" || pl.Network.Gateway == "" {
		t.Fatalf("web-cluster's rsync modules or gateway changed: %+v, %q", pl.Rsync, pl.Network.Gateway)
	}
	m := pl.Rsync.Modules[0]
	return fmt.Sprintf("rsync.modules=[{name: www, path: %s, comment: %q, hosts_allow: [%s, %s], dest: %s}]",
		m.Path, m.Comment, strings.Join(m.HostsAllow, ", "), pl.Network.Gateway, m.Dest)
}

// drPull runs the DR wrapper the image ships (applbuild-dr-pull) on a
// machine outside the cluster: applbuild's own address on the cluster's
// LAN, inside its namespace. Pulled from the floating rsyncd address, www
// must arrive with the page written on n1; pointed at an address where no
// rsyncd listens (a node's own: rsyncd binds the floating one), the pull
// must fail loudly: a non-zero exit after its retries, the FAILED line,
// and the module failed in its status file.
func drPull(t *testing.T, b *built, c *cluster.Cluster, page string) {
	const wrapperPath = "/usr/share/applbuild/dr-client/applbuild-dr-pull"
	script, ok := imageFile(b, b.plan.Node("n1"), wrapperPath)
	if !ok {
		t.Fatalf("the image has no %s", wrapperPath)
	}
	dir := t.TempDir()
	wrapper := filepath.Join(dir, "applbuild-dr-pull")
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	vip := serviceIP(b, "rsyncd")
	pull := func(name, host string, tries int) (string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "ip", "netns", "exec", c.NetNS, wrapper)
		cmd.Env = append(os.Environ(), "APPLBUILD_DR_HOST="+host, fmt.Sprintf("APPLBUILD_DR_TRIES=%d", tries),
			"APPLBUILD_DR_DELAY=2", "APPLBUILD_DR_STATE="+filepath.Join(dir, name, "state"),
			"APPLBUILD_DR_PREFIX="+filepath.Join(dir, name, "root"))
		o, err := cmd.CombinedOutput()
		return string(o), err
	}

	start := time.Now()
	o, err := pull("ok", vip, 3)
	if err != nil {
		t.Fatalf("applbuild-dr-pull from %s: %v\n%s", vip, err, o)
	}
	got, err := os.ReadFile(filepath.Join(dir, "ok", "root", "var/www/html/e2e.txt"))
	if err != nil || strings.TrimSpace(string(got)) != strings.TrimSpace(page) {
		t.Errorf("the DR copy of /var/www/html/e2e.txt = %q, %v; want n1's page", got, err)
	}
	st, _ := os.ReadFile(filepath.Join(dir, "ok", "state", "status"))
	if !strings.HasPrefix(string(st), "www ok last_success=") {
		t.Errorf("status after the pull: %q", st)
	}
	t.Logf("e2e: DR pull of www from the floating rsyncd address %s: %s (%s)", vip, time.Since(start).Round(time.Second), strings.TrimSpace(o))
	timing(t, "web-cluster", "DR pull of www from the floating rsyncd address", time.Since(start))

	wrong := b.plan.Nodes[0].Address
	o, err = pull("fail", wrong, 2)
	if err == nil {
		t.Errorf("applbuild-dr-pull from %s, where no rsyncd listens, succeeded:\n%s", wrong, o)
	}
	if !strings.Contains(o, "www: attempt 1/2 failed") || !strings.Contains(o, "www: FAILED after 2 attempt(s)") {
		t.Errorf("applbuild-dr-pull from %s does not say it retried and failed:\n%s", wrong, o)
	}
	st, _ = os.ReadFile(filepath.Join(dir, "fail", "state", "status"))
	if !strings.HasPrefix(string(st), "www failed(rsync-exit-") || !strings.Contains(string(st), "last_success=never") {
		t.Errorf("status after the failed pull: %q", st)
	}
	t.Logf("e2e: DR pull from %s (no rsyncd): %v, %s", wrong, err, strings.TrimSpace(string(st)))
}

// clusterCLI runs `applbuild cluster ARGS --out out` with the build's
// binary, as a user would, and returns what it printed.
func clusterCLI(b *built, out string) func(ctx context.Context, args ...string) (string, error) {
	return func(ctx context.Context, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, b.bin, append([]string{"cluster"}, append(args, "--out", out)...)...)
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		err := cmd.Run()
		return buf.String(), err
	}
}

// clusterSSH runs a command on a node as root, bounded, its output trimmed.
func clusterSSH(t *testing.T, c *cluster.Cluster) func(node, cmd string) (string, error) {
	return func(node, cmd string) (string, error) {
		n, err := c.Node(node)
		if err != nil {
			return "", err
		}
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
		defer cancel()
		b, err := c.SSH(ctx, n, cmd)
		return strings.TrimSpace(string(b)), err
	}
}

// pairUp brings up the built personality with `cluster up ARGS` (taken
// down again when the test ends, leaving no namespace), bounded by
// timeout, and returns it; a cluster that does not form fails the test
// with its diagnosis.
func pairUp(t *testing.T, b *built, name string, timeout time.Duration, args ...string) (*cluster.Cluster, func(ctx context.Context, args ...string) (string, error)) {
	out := filepath.Dir(filepath.Dir(b.dir))
	cli := clusterCLI(b, out)
	t.Cleanup(func() {
		if o, err := cli(context.Background(), "down", name); err != nil {
			t.Errorf("cluster down: %v\n%s", err, o)
		}
		if _, err := os.Stat(filepath.Join("/run/netns", "applbuild-"+name)); err == nil {
			t.Error("cluster down left the network namespace")
		}
	})
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), timeout+5*time.Minute)
	o, err := cli(ctx, append(append([]string{"up", name}, args...), "--timeout", timeout.String())...)
	cancel()
	c, lerr := cluster.Load(out, name)
	if err != nil {
		if lerr == nil {
			t.Logf("diagnosis:\n%s", diagnoseCluster(t.Context(), c))
		}
		t.Fatalf("cluster up: %v\n%s", err, o)
	}
	if lerr != nil {
		t.Fatal(lerr)
	}
	t.Logf("e2e: %s formed: %s", strings.Join(append([]string{name}, args...), " "), time.Since(start).Round(time.Second))
	timing(t, name, "cluster up until formed", time.Since(start))
	return c, cli
}

// service is the plan's service called name (the zero Service if none).
func service(b *built, name string) builder.Service {
	for _, s := range b.plan.Services {
		if s.Name == name {
			return s
		}
	}
	return builder.Service{}
}

func serviceIP(b *built, name string) string { return service(b, name).IP }

func first(l []string) string {
	if len(l) == 0 {
		return ""
	}
	return l[0]
}

// other is a node that is not n.
func other(b *built, n string) string {
	for _, pn := range b.plan.Nodes {
		if pn.Name != n {
			return pn.Name
		}
	}
	return ""
}

// heldBy lists the singleton services that run on node.
func heldBy(st *cluster.Status, node string) []string {
	var out []string
	for _, e := range st.Endpoints {
		if slices.Contains(st.Where(e.Service), node) {
			out = append(out, e.Service)
		}
	}
	return out
}

func endpointAnswers(st *cluster.Status, svc string) bool {
	for _, e := range st.Endpoints {
		if e.Service == svc {
			return e.Answers
		}
	}
	return false
}

// diagnoseCluster is what explains a cluster that did not form: its
// status, and on every node the cluster's view and the setup's journal.
func diagnoseCluster(ctx context.Context, c *cluster.Cluster) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var b strings.Builder
	b.WriteString(c.Status(ctx).String())
	for _, n := range c.Nodes {
		out, err := c.SSH(ctx, n, strings.Join([]string{
			"systemctl list-jobs --no-pager | head -n 20",
			"crm_mon -1 -r -f 2>&1 | tail -n 40",
			"journalctl -b --no-pager -o short-monotonic -u applbuild-gluster -u pacemaker -u corosync 2>&1 | tail -n 60",
		}, "; echo; "))
		fmt.Fprintf(&b, "\n=== %s (%v)\n%s", n.Name, err, out)
	}
	return b.String()
}
