package overlays

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/internal/run"
	"github.com/applbuild/applbuild/internal/testenv"
	"github.com/applbuild/applbuild/overlays/volfile"
)

func TestGlusterManagedFiles(t *testing.T) {
	pl := planFor(t, "web-cluster")
	files := renderNode(t, pl, "n1")
	hook := mustFile(t, files, glusterHook)
	if hook.Mode.Perm() != 0o755 {
		t.Errorf("hook mode %v", hook.Mode)
	}
	for _, p := range []string{"/etc/glusterfs/glusterfsd.vol", "/etc/systemd/system/glusterd.service", "/etc/systemd/system/" + glusterLegacyUnit} {
		if _, ok := files[p]; ok {
			t.Errorf("managed mode writes legacy file %s", p)
		}
	}
	s := string(hook.Data)
	for _, want := range []string{
		`'global|/data/global|/usr/global|n1 n2 n3'`,
		"replica 3",
		"auth.allow '" + pl.Gluster.Allow + "'",
		"set -euo pipefail",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("hook lacks %q", want)
		}
	}
	lintBash(t, "gluster-setup", hook.Data)
	if w := mustFile(t, files, "/etc/systemd/system/multi-user.target.wants/"+glusterSetupUnit); w.Link != "/etc/systemd/system/"+glusterSetupUnit {
		t.Errorf("setup unit not enabled: %+v", w)
	}
	t.Run("systemd-analyze verify", func(t *testing.T) {
		verifyQuiet(t, "--root="+sysVerifyRoot(t, files), "/etc/systemd/system/"+glusterSetupUnit)
	})
}

// lintBash runs bash -n and shellcheck on a script.
func lintBash(t *testing.T, name string, script []byte) {
	t.Helper()
	testenv.Tools(t, "bash", "shellcheck")
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, script, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := run.Run(ctx, "bash", "-n", p); err != nil {
		t.Errorf("bash -n: %v", err)
	}
	if out, err := run.Output(ctx, "shellcheck", "--shell=bash", "--severity=style", p); err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
}

// fakeGluster is a gluster CLI keeping its pool and volumes in $FAKE
// (peers/, vols/<name>/{created,started}); a peer probe succeeds only for
// the hosts listed in $FAKE_UP. Every call is logged to $FAKE/calls.
const fakeGluster = `#!/bin/bash
echo "gluster $*" >>"$FAKE/calls"
[ "$1" = --mode=script ] && shift
case "$1 $2" in
"pool list")
	printf 'UUID\tHostname\tState\n'
	for p in "$FAKE"/peers/*; do [ -e "$p" ] && printf 'x\t%s\tConnected\n' "${p##*/}"; done
	printf 'x\tlocalhost\tConnected\n' ;;
"peer probe")
	case " $FAKE_UP " in *" $3 "*) /bin/mkdir -p "$FAKE/peers" && touch "$FAKE/peers/$3" ;; *) echo "peer probe: failed: Probe returned with Transport endpoint is not connected" >&2; exit 1 ;; esac ;;
"volume info")
	[ -e "$FAKE/vols/$3/created" ] || { echo "Volume $3 does not exist" >&2; exit 1; }
	echo "Volume Name: $3"
	if [ -e "$FAKE/vols/$3/started" ]; then echo "Status: Started"; else echo "Status: Created"; fi ;;
"volume create") /bin/mkdir -p "$FAKE/vols/$3" && touch "$FAKE/vols/$3/created" ;;
"volume start") touch "$FAKE/vols/$3/started" ;;
"volume set") if [ "$3 $4 $5" = "all cluster.brick-multiplex on" ]; then echo on >"$FAKE/bmux"; fi ;;
"volume get") printf 'Option Value\ncluster.brick-multiplex %s\n' "$(cat "$FAKE/bmux" 2>/dev/null || echo disable)" ;;
*) echo "fake gluster: unexpected $*" >&2; exit 1 ;;
esac
`

// fakeMount mounts nothing: it records mounts in $FAKE/mounted (stat -f
// of anything answers). A bind
// mount of / shows $FAKE_ROOT (the image's files); unmounting a seeding
// mount moves what was copied into it to $FAKE/seeded/<n>.
const fakeMount = `#!/bin/bash
echo "${0##*/} $*" >>"$FAKE/calls"
target=${!#}
case "${0##*/}" in
mount)
	[ "$1" = --bind ] && cp -a "$FAKE_ROOT/." "$target/"
	echo "$target" >>"$FAKE/mounted" ;;
umount)
	grep -vxF "$target" "$FAKE/mounted" >"$FAKE/mounted.new" || true
	mv "$FAKE/mounted.new" "$FAKE/mounted"
	if [ -n "$(ls -A "$target" 2>/dev/null)" ]; then
		n=$(ls "$FAKE/seeded" 2>/dev/null | wc -l)
		/bin/mkdir -p "$FAKE/seeded/$n" && cp -a "$target/." "$FAKE/seeded/$n/" && rm -rf "${target:?}"/* "${target:?}"/.[!.]*
	fi ;;
mountpoint) grep -qxF "$2" "$FAKE/mounted" ;;
mkdir | stat) ;;
systemd-escape) echo "${!#}.mount" ;;
systemctl) [ "$1" = start ] && /bin/mkdir -p "${2%.mount}" && echo "${2%.mount}" >>"$FAKE/mounted" ;;
esac
`

// runHook runs the rendered gluster-setup of node with fake gluster, mount,
// umount, mountpoint and mkdir first on PATH.
func runHook(t *testing.T, pl *builder.Plan, node string, up []string, timeout int, unmounted ...string) (calls []string, stderr string, err error) {
	t.Helper()
	return runHookWith(t, pl, node, up, timeout, nil, unmounted...)
}

// runHookWith is runHook with setup run on the fake's state directory
// first (to make volumes another node created, say).
func runHookWith(t *testing.T, pl *builder.Plan, node string, up []string, timeout int, setup func(state string), unmounted ...string) (calls []string, stderr string, err error) {
	t.Helper()
	testenv.Tools(t, "bash")
	hook := mustFile(t, renderNode(t, pl, node), glusterHook)
	dir := t.TempDir()
	bin, state, root, tmp := filepath.Join(dir, "bin"), filepath.Join(dir, "state"), filepath.Join(dir, "root"), filepath.Join(dir, "tmp")
	// The client mount points, under a scratch root: the seeding writes
	// through them.
	client := filepath.Join(dir, "client")
	for _, d := range []string{bin, state, tmp, client, filepath.Join(root, "etc/apache2")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(root, "etc/apache2/apache2.conf"), []byte("ServerRoot /etc/apache2\n"), 0o644)
	os.WriteFile(filepath.Join(bin, "gluster"), []byte(fakeGluster), 0o755)
	for _, name := range []string{"mount", "umount", "mountpoint", "mkdir", "stat", "systemd-escape", "systemctl"} {
		os.WriteFile(filepath.Join(bin, name), []byte(fakeMount), 0o755)
	}
	// The brick filesystems are mounted, as the image's fstab does.
	var mounted []string
	for _, v := range pl.Gluster.Volumes {
		if !slices.Contains(unmounted, v.Brick) {
			mounted = append(mounted, v.Brick)
		}
	}
	os.WriteFile(filepath.Join(state, "mounted"), []byte(strings.Join(mounted, "\n")+"\n"), 0o644)
	if setup != nil {
		setup(state)
	}
	hookPath := filepath.Join(dir, "gluster-setup")
	os.WriteFile(hookPath, hook.Data, 0o755)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", hookPath)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	cmd.Env = append(os.Environ(),
		"PATH="+bin+":"+os.Getenv("PATH"),
		"FAKE="+state, "FAKE_ROOT="+root, "FAKE_UP="+strings.Join(up, " "),
		"APPLBUILD_NODE="+node, "APPLBUILD_INDEX=1", "APPLBUILD_NODES=n1 n2 n3", "APPLBUILD_DOMAIN="+pl.Domain,
		fmt.Sprintf("APPLBUILD_GLUSTER_TIMEOUT=%d", timeout), "APPLBUILD_GLUSTER_INTERVAL=0.1",
		"APPLBUILD_GLUSTER_TMP="+tmp, "APPLBUILD_GLUSTER_DONE="+filepath.Join(state, "done"),
		"APPLBUILD_GLUSTER_CLIENT_ROOT="+client,
		"APPLBUILD_STATUS="+filepath.Join(state, "status"),
	)
	err = cmd.Run()
	// The status file follows the hook's own stderr (hookStatus reads it).
	if st, rerr := os.ReadFile(filepath.Join(state, "status")); rerr == nil {
		errb.WriteString(statusMark)
		errb.Write(st)
	}
	b, _ := os.ReadFile(filepath.Join(state, "calls"))
	calls = strings.Split(strings.TrimSpace(string(b)), "\n")
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("hook left temp dirs: %v", left)
	}
	if b, _ := os.ReadFile(filepath.Join(state, "mounted")); strings.Contains(string(b), tmp) {
		t.Errorf("hook left temporary mounts:\n%s", b)
	}
	if err == nil && node == "n1" {
		for _, f := range []string{"etc/apache2/apache2.conf", "etc/apache2/.applbuild-seeded", "usr/global/.applbuild-seeded"} {
			if _, serr := os.Stat(filepath.Join(client, f)); serr != nil {
				t.Errorf("the volumes were not seeded through their mounts with the image's files: %v", serr)
			}
		}
		if _, serr := os.Stat(filepath.Join(client, "etc/apache2/.applbuild-seeding")); serr == nil {
			t.Error("the seeding marker was left in /etc/apache2")
		}
	}
	return calls, errb.String(), err
}

const statusMark = "\n--- status file ---\n"

// hookStatus is the gluster= line of the status file the run left.
func hookStatus(t *testing.T, stderr string) string {
	t.Helper()
	_, st, ok := strings.Cut(stderr, statusMark)
	if !ok {
		t.Fatalf("the hook wrote no status file:\n%s", stderr)
	}
	for _, l := range strings.Split(st, "\n") {
		if v, ok := strings.CutPrefix(l, "gluster="); ok {
			return v
		}
	}
	t.Fatalf("no gluster= line in the status file:\n%s", st)
	return ""
}

// matchCalls asserts that the patterns match calls in this order (other
// calls may come between).
func matchCalls(t *testing.T, calls []string, patterns ...string) {
	t.Helper()
	i := 0
	for _, p := range patterns {
		re := regexp.MustCompile("^" + p + "$")
		for i < len(calls) && !re.MatchString(calls[i]) {
			i++
		}
		if i == len(calls) {
			t.Fatalf("no call matching %q in order; calls:\n%s", p, strings.Join(calls, "\n"))
		}
		i++
	}
}

func TestGlusterHookSequence(t *testing.T) {
	pl := planFor(t, "web-cluster")
	calls, stderr, err := runHook(t, pl, "n1", []string{"n2", "n3"}, 10)
	if err != nil {
		t.Fatalf("hook on n1: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "all 10 volumes mounted") {
		t.Errorf("no final line:\n%s", stderr)
	}
	matchCalls(t, calls,
		`mountpoint -q /data/global`, `mkdir -p /data/global/brick`,
		`mountpoint -q /data/phpmyadmin`, `mkdir -p /data/phpmyadmin/brick`,
		`gluster --mode=script pool list`,
		`gluster --mode=script peer probe n2`, `gluster --mode=script peer probe n3`,
		`gluster --mode=script volume get all cluster.brick-multiplex`,
		`gluster --mode=script volume set all cluster.brick-multiplex on`,
		`gluster --mode=script volume info global`,
		`gluster --mode=script volume create global replica 3 n1:/data/global/brick n2:/data/global/brick n3:/data/global/brick`,
		`gluster --mode=script volume set global auth.allow `+regexp.QuoteMeta(pl.Gluster.Allow)+
			` cluster.quorum-type auto cluster.server-quorum-type server network.ping-timeout 15`,
		`gluster --mode=script volume start global`,
		// Each volume mounted where the fstab says and seeded through
		// that mount before the next is made.
		`systemctl start .*/client/usr/global.mount`,
		`mount --bind / .*/applbuild-gluster-root\..*`,
		`gluster --mode=script volume create apache2 replica 3 .*`,
		`systemctl start .*/client/etc/apache2.mount`, `mount --bind / .*`,
		`gluster --mode=script volume create phpmyadmin replica 3 .*`,
		`systemctl start .*/client/etc/phpmyadmin.mount`,
	)
	for _, c := range calls {
		if strings.HasPrefix(c, "mount -t glusterfs") {
			t.Errorf("a second FUSE mount, besides the fstab's: %s", c)
		}
	}
	if !strings.Contains(stderr, "seeded volume apache2 with the image's /etc/apache2") {
		t.Errorf("no seeding log line:\n%s", stderr)
	}
	if st := hookStatus(t, stderr); st != "done: 10 volumes mounted" {
		t.Errorf("status after a complete run: %q", st)
	}

	// A second node waits for the volumes, probes the first back, mounts.
	calls, stderr, err = runHook(t, pl, "n2", nil, 1)
	if err == nil || !strings.Contains(stderr, "timed out after 1s waiting for volume global to be started") {
		t.Errorf("n2 without n1's volumes: err %v\n%s", err, stderr)
	}
	for _, c := range calls {
		if strings.Contains(c, "volume create") || strings.Contains(c, "peer probe") {
			t.Errorf("n2 must not create or probe before the volumes exist: %s", c)
		}
	}
}

// TestGlusterHookWaitsForSeeding: a node that is not the first of a
// volume mounts it once it is started, then waits until the first node
// has marked it seeded: an empty volume that is merely started is not
// ready (services started on it found no /etc/apache2/apache2.conf).
func TestGlusterHookWaitsForSeeding(t *testing.T) {
	pl := planFor(t, "web-cluster")
	started := func(state string) {
		for _, v := range pl.Gluster.Volumes {
			d := filepath.Join(state, "vols", v.Name)
			os.MkdirAll(d, 0o755)
			os.WriteFile(filepath.Join(d, "created"), nil, 0o644)
			os.WriteFile(filepath.Join(d, "started"), nil, 0o644)
		}
	}
	calls, stderr, err := runHookWith(t, pl, "n2", nil, 1, started)
	if err == nil || !strings.Contains(stderr, "timed out after 1s waiting for volume global to be seeded by n1") {
		t.Errorf("n2 on started but unseeded volumes: err %v\n%s", err, stderr)
	}
	matchCalls(t, calls, `systemctl start .*/client/usr/global.mount`)
	if st := hookStatus(t, stderr); !strings.Contains(st, "seeded by n1") {
		t.Errorf("status: %q", st)
	}
}

// TestGlusterHookLoneNode: n1 booting alone gives up after the timeout with
// a clear reason and a non-zero exit, so its unit runs it again.
func TestGlusterHookLoneNode(t *testing.T) {
	pl := planFor(t, "web-cluster")
	start := time.Now()
	calls, stderr, err := runHook(t, pl, "n1", nil, 2)
	if err == nil {
		t.Fatalf("hook succeeded alone:\n%s", stderr)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("timeout 2s took %v", d)
	}
	for _, want := range []string{
		"gluster-setup: waiting for glusterd on n2 (gluster peer probe n2) (at most 2s)",
		"gluster-setup: FAILED: timed out after 2s waiting for glusterd on n2",
		"this runs again shortly",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	for _, c := range calls {
		if strings.HasPrefix(c, "mount ") || strings.Contains(c, "volume create") {
			t.Errorf("lone node went on to %q", c)
		}
	}
	if st := hookStatus(t, stderr); st != "failed: timed out after 2s waiting for glusterd on n2 (gluster peer probe n2)" {
		t.Errorf("status of the failed run: %q", st)
	}
}

func TestGlusterHookRefusesRootBrick(t *testing.T) {
	pl := planFor(t, "web-cluster")
	calls, stderr, err := runHook(t, pl, "n1", []string{"n2", "n3"}, 2, "/data/www")
	if err == nil || !strings.Contains(stderr, "brick filesystem /data/www of volume www is not mounted") {
		t.Errorf("err %v\n%s", err, stderr)
	}
	for _, c := range calls {
		if strings.HasPrefix(c, "gluster") || c == "mkdir -p /data/www/brick" {
			t.Errorf("went on after a missing brick filesystem: %s", c)
		}
	}
}

func legacyPlan(t *testing.T, set ...string) *builder.Plan {
	return planFor(t, "web-cluster", append([]string{"gluster.mode=legacy"}, set...)...)
}

func TestGlusterLegacyFiles(t *testing.T) {
	pl := legacyPlan(t)
	files := renderNode(t, pl, "n2")
	server := mustFile(t, files, "/etc/glusterfs/glusterfsd.vol")
	g, err := volfile.Parse(bytes.NewReader(server.Data), "glusterfsd.vol")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(g.Top().Subvolumes), len(pl.Gluster.Volumes); got != want {
		t.Errorf("server exports %d bricks, want %d", got, want)
	}
	if d, _ := g.Volume("www_posix").Option("directory"); d != "/data/www" {
		t.Errorf("legacy brick is %q, want the brick mount /data/www", d)
	}
	client := mustFile(t, files, "/etc/glusterfs/glusterfs_apache2.vol")
	cg, err := volfile.Parse(bytes.NewReader(client.Data), "c.vol")
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := cg.Volume("remote3").Option("remote-host"); h != pl.Node("n3").FQDN {
		t.Errorf("remote3 is %q", h)
	}
	if v, ok := cg.Volume("writebehind").Option("cache-size"); !ok || v != "1MB" {
		t.Errorf("write-behind cache-size %q", v)
	}
	if f := mustFile(t, files, "/etc/systemd/system/glusterd.service"); !f.IsLink() || f.Link != "/dev/null" {
		t.Errorf("glusterd not masked: %+v", f)
	}
	if f := mustFile(t, files, "/etc/systemd/system/multi-user.target.wants/"+glusterLegacyUnit); !f.IsLink() {
		t.Errorf("unit not enabled")
	}
	lintBash(t, "gluster-setup", mustFile(t, files, glusterHook).Data)

	// The rows come back from the volfiles the node got.
	clients := map[string]*volfile.Graph{}
	for _, v := range pl.Gluster.Volumes {
		f := mustFile(t, files, "/etc/glusterfs/"+volfile.ClientFile(v.Name))
		c, err := volfile.Parse(bytes.NewReader(f.Data), v.Name)
		if err != nil {
			t.Fatal(err)
		}
		clients[v.Name] = c
	}
	rows, err := volfile.Rows(g, clients)
	if err != nil {
		t.Fatal(err)
	}
	if string(volfile.FormatTable(rows)) != string(volfile.FormatTable(glusterRows(pl))) {
		t.Errorf("rows from the volfiles differ:\n%s", volfile.FormatTable(rows))
	}

	t.Run("systemd-analyze verify", func(t *testing.T) {
		// without --root: ExecStart is the host's own glusterfsd
		verifyQuiet(t, filepath.Join(writeNodeTree(t, files), "etc/systemd/system", glusterLegacyUnit))
	})
}

// loopbackPort is a TCP port free on the three loopback addresses.
func loopbackPort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		ok := true
		for _, a := range []string{"127.0.0.2", "127.0.0.3"} {
			l2, err := net.Listen("tcp", fmt.Sprintf("%s:%d", a, port))
			if err != nil {
				ok = false
				break
			}
			l2.Close()
		}
		if ok {
			return port
		}
	}
	t.Fatal("no free port on 127.0.0.1-3")
	return 0
}

// TestGlusterLegacyReal serves the legacy volfiles of three nodes with
// real glusterfsd processes on 127.0.0.1/.2/.3, mounts the generated client
// volfile with the real FUSE client and checks the file lands in every
// brick; a client from outside the allow pattern is refused.
func TestGlusterLegacyReal(t *testing.T) {
	testenv.Tools(t, "glusterfsd", "glusterfs")
	testenv.Root(t)
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Fatalf("needs /dev/fuse: %v", err)
	}
	pl := legacyPlan(t, "gluster.allow=127.0.0.*")
	addr := map[string]string{}
	for i, n := range pl.Nodes {
		addr[n.FQDN] = fmt.Sprintf("127.0.0.%d", i+1)
	}
	port := loopbackPort(t)
	dir := t.TempDir()
	const vol = "www"

	// One glusterfsd per node, its brick in the temp dir, bound to its own
	// loopback address: the node's own server volfile, moved only in where
	// it listens and where its bricks are.
	bricks := map[string]string{}
	for _, n := range pl.Nodes {
		files := renderNode(t, pl, n.Name)
		g, err := volfile.Parse(bytes.NewReader(mustFile(t, files, "/etc/glusterfs/glusterfsd.vol").Data), n.Name)
		if err != nil {
			t.Fatal(err)
		}
		for i := range g.Volumes {
			v := &g.Volumes[i]
			if v.Type == "storage/posix" {
				d, _ := v.Option("directory")
				d = filepath.Join(dir, n.Name, d)
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
				v.Set("directory", d)
				if v.Name == vol+"_posix" {
					bricks[n.Name] = d
				}
			}
		}
		srv := g.Top()
		srv.Set("transport.socket.bind-address", addr[n.FQDN])
		srv.Set("transport.socket.listen-port", fmt.Sprint(port))
		startGlusterfsd(t, filepath.Join(dir, n.Name), g.Bytes())
	}

	clientVol := func(allowFrom string) string {
		files := renderNode(t, pl, "n1")
		g, err := volfile.Parse(bytes.NewReader(mustFile(t, files, "/etc/glusterfs/"+volfile.ClientFile(vol)).Data), "client")
		if err != nil {
			t.Fatal(err)
		}
		for i := range g.Volumes {
			v := &g.Volumes[i]
			if v.Type == "protocol/client" {
				h, _ := v.Option("remote-host")
				v.Set("remote-host", addr[h])
				v.Set("remote-port", fmt.Sprint(port))
				if allowFrom != "" {
					v.Set("transport.socket.source-addr", allowFrom)
				}
			}
		}
		p := filepath.Join(dir, "client-"+allowFrom+".vol")
		os.WriteFile(p, g.Bytes(), 0o644)
		return p
	}

	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	glusterMount(t, clientVol(""), mnt, filepath.Join(dir, "client.log"))
	want := []byte("written through the seed's client volfile\n")
	if err := os.WriteFile(filepath.Join(mnt, "index.html"), want, 0o644); err != nil {
		t.Fatalf("write through the mount: %v\n%s", err, tailFile(filepath.Join(dir, "client.log")))
	}
	for _, n := range pl.Nodes {
		b, err := os.ReadFile(filepath.Join(bricks[n.Name], "index.html"))
		if err != nil || !bytes.Equal(b, want) {
			t.Errorf("brick of %s: %q, %v", n.Name, b, err)
		}
	}
}

// TestGlusterLegacyRefused: the servers only allow 127.0.0.*, so the seed's
// 192.168.224.* pattern refuses a loopback client, and the mount command
// still exits 0: only the mount table tells.
func TestGlusterLegacyRefused(t *testing.T) {
	testenv.Tools(t, "glusterfsd", "glusterfs")
	testenv.Root(t)
	pl := legacyPlan(t, "gluster.allow=192.168.224.*")
	port := loopbackPort(t)
	dir := t.TempDir()
	files := renderNode(t, pl, "n1")
	g, err := volfile.Parse(bytes.NewReader(mustFile(t, files, "/etc/glusterfs/glusterfsd.vol").Data), "srv")
	if err != nil {
		t.Fatal(err)
	}
	for i := range g.Volumes {
		if v := &g.Volumes[i]; v.Type == "storage/posix" {
			d, _ := v.Option("directory")
			d = filepath.Join(dir, "n1", d)
			os.MkdirAll(d, 0o755)
			v.Set("directory", d)
		}
	}
	g.Top().Set("transport.socket.bind-address", "127.0.0.1")
	g.Top().Set("transport.socket.listen-port", fmt.Sprint(port))
	startGlusterfsd(t, filepath.Join(dir, "n1"), g.Bytes())

	c, err := volfile.Parse(bytes.NewReader(mustFile(t, files, "/etc/glusterfs/glusterfs_www.vol").Data), "c")
	if err != nil {
		t.Fatal(err)
	}
	// Only n1 serves: keep one client.
	c.Volumes = []volfile.Volume{c.Volumes[0], c.Volumes[3], c.Volumes[4]}
	c.Volumes[0].Set("remote-host", "127.0.0.1")
	c.Volumes[0].Set("remote-port", fmt.Sprint(port))
	c.Volumes[1].Subvolumes = []string{c.Volumes[0].Name}
	cv := filepath.Join(dir, "client.vol")
	os.WriteFile(cv, c.Bytes(), 0o644)
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	out, err := exec.Command("glusterfs", "--volfile="+cv, "--log-file="+filepath.Join(dir, "client.log"), mnt).CombinedOutput()
	t.Cleanup(func() { fuseUnmount(mnt) })
	if err != nil {
		t.Logf("mount exited %v (%s)", err, out)
	}
	// Give the client time to connect and be refused.
	time.Sleep(2 * time.Second)
	mounted := fuseMounted(mnt)
	if mounted {
		if err := os.WriteFile(filepath.Join(mnt, "x"), []byte("x"), 0o644); err == nil {
			t.Errorf("a 127.0.0.1 client wrote through a server allowing only 192.168.224.*")
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "n1", "data", "www", "x")); err == nil {
		t.Errorf("refused client reached the brick")
	}
	log := tailFile(filepath.Join(dir, "client.log"))
	if !strings.Contains(log, "AUTH_FAILED") && !strings.Contains(log, "Authentication failed") {
		t.Errorf("client log does not say it was refused (mounted=%v):\n%s", mounted, log)
	}
	t.Logf("refused: mounted=%v, mount exit %v", mounted, err)
}

func startGlusterfsd(t *testing.T, dir string, vol []byte) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "glusterfsd.vol")
	os.WriteFile(p, vol, 0o644)
	log := filepath.Join(dir, "glusterfsd.log")
	cmd := exec.Command("glusterfsd", "--no-daemon", "--volfile="+p, "--log-file="+log, "--pid-file="+filepath.Join(dir, "pid"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	// Ready when it listens.
	g, _ := volfile.Parse(bytes.NewReader(vol), p)
	host, _ := g.Top().Option("transport.socket.bind-address")
	port, _ := g.Top().Option("transport.socket.listen-port")
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(host, port), time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case err := <-done:
			t.Fatalf("glusterfsd exited: %v\n%s", err, tailFile(log))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("glusterfsd not listening on %s:%s: %v\n%s", host, port, err, tailFile(log))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// glusterMount mounts a client volfile and waits until the mount answers.
// The mount command exits 0 even when refused (FACTS): /proc/mounts and a
// stat tell.
func glusterMount(t *testing.T, vol, mnt, log string) {
	t.Helper()
	out, err := exec.Command("glusterfs", "--volfile="+vol, "--log-file="+log, mnt).CombinedOutput()
	t.Cleanup(func() { fuseUnmount(mnt) })
	if err != nil {
		t.Fatalf("glusterfs: %v\n%s", err, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var st syscall.Statfs_t
		if fuseMounted(mnt) && syscall.Statfs(mnt, &st) == nil {
			if _, err := os.ReadDir(mnt); err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not mounted:\n%s", mnt, tailFile(log))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func fuseMounted(mnt string) bool {
	b, _ := os.ReadFile("/proc/mounts")
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 2 && f[1] == mnt && strings.HasPrefix(f[2], "fuse.glusterfs") {
			return true
		}
	}
	return false
}

func fuseUnmount(mnt string) {
	for range 50 {
		if !fuseMounted(mnt) {
			return
		}
		if err := syscall.Unmount(mnt, 0); err != nil {
			_ = syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tailFile(p string) string {
	b, _ := os.ReadFile(p)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
