package e2e

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
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
	"github.com/applbuild/applbuild/builder/boot"
	"github.com/applbuild/applbuild/builder/kernel"
	"github.com/applbuild/applbuild/builder/target/xen"
	"github.com/applbuild/applbuild/internal/keys"
	"github.com/applbuild/applbuild/internal/run"
	"github.com/applbuild/applbuild/internal/testenv"
	"github.com/applbuild/applbuild/overlays"
	"github.com/applbuild/applbuild/personalities"
	"github.com/applbuild/applbuild/rootfs"
)

// Bounds of each stage. The build's rootfs is minutes cold (mmdebstrap of
// ~515 packages), the boot is minutes under TCG on 2 cores.
const (
	buildTimeout = 25 * time.Minute
	bootTimeout  = 12 * time.Minute // to the login prompt, ssh and multi-user
	httpTimeout  = 6 * time.Minute  // Pacemaker starting the apache clone
	guestMemory  = 1 << 30
)

// built is one build of a personality for a target.
type built struct {
	bin    string // the applbuild binary
	secret string // the site secret file it builds with
	plan   *builder.Plan
	ring   *keys.Ring
	dir    string // OUT/<personality>/<target>
	xenDir string // OUT/web-cluster/xen, for the Xen tests
}

// TestE2EXenWebCluster builds web-cluster for Xen with the applbuild
// command, boots n1's disk set under QEMU and checks the running node,
// then checks the generated configs inside the built root filesystem with
// the programs the image ships.
func TestE2EXenWebCluster(t *testing.T) {
	oneGuest(t)
	testenv.Tools(t, "go", "mmdebstrap", "mke2fs", "debugfs", "tar",
		"qemu-system-x86_64", "qemu-img", "ssh", "chroot", "unshare", "ip")
	b := buildWebCluster(t)
	t.Run("kernel compression", func(t *testing.T) { kernelCompression(t, b, "n1") })
	t.Run("configs in the image", func(t *testing.T) { validateInImage(t, b, "n1") })
	// Booted after the configs are checked, so that a failed boot's
	// reason is the last thing this test says (CI shows the end).
	t.Run("boot n1", func(t *testing.T) { bootNode(t, b, "n1") })
	// Under a real Xen: APPLBUILD_XEN=all (make e2e-xen) boots every node,
	// APPLBUILD_XEN=n1 one. Not in make e2e: 18 minutes a node, which
	// CI's budget has not left beside the physical targets (docs/xen.md).
	for _, n := range b.plan.Nodes {
		t.Run(n.Name+" under Xen", func(t *testing.T) {
			if x := os.Getenv("APPLBUILD_XEN"); x != "all" && x != n.Name {
				t.Skip("APPLBUILD_XEN=all (make e2e-xen) or =" + n.Name + " boots it under a real Xen")
			}
			xenBoot(t, b, n.Name)
		})
	}
}

// kernelCompression reads the kernel out of the node's built root image:
// trixie's stock kernel is zstd (FACTS), which pvgrub2 cannot load as PV,
// so the xl config the build wrote must boot it as PVH.
func kernelCompression(t *testing.T, b *built, node string) {
	dir := t.TempDir()
	kernelPath, _, err := boot.Kernel(t.Context(), filepath.Join(b.xenDir, node, "disk.img"), dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := kernel.DetectFile(kernelPath)
	if err != nil {
		t.Fatal(err)
	}
	if c != kernel.Zstd || c.PVGrubLoads() {
		t.Errorf("the image's kernel is %q (pvgrub2 loads it: %v), want trixie's zstd", c, c.PVGrubLoads())
	}
	cfg, err := os.ReadFile(filepath.Join(b.xenDir, node, node+".cfg"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg), `type = "pvh"`) {
		t.Errorf("a %s kernel needs PVH; %s.cfg:\n%s", c, node, cfg)
	}
	t.Logf("e2e: %s's kernel is %s; its xl config boots PVH", node, c)
}

// fatalBoot ends a test on a boot that did not get where it was waited
// for: the console's last lines first, then the reason on the last line,
// where a truncated CI log still shows it.
func fatalBoot(t *testing.T, err error) {
	t.Helper()
	var be *boot.BootError
	if errors.As(err, &be) {
		t.Logf("%s's console, last %d lines:\n  | %s", be.Name, len(be.Tail), strings.Join(be.Tail, "\n  | "))
		reason := *be
		reason.Tail = nil // BootError's own message, without the lines above
		t.Fatalf("%v (console above)", &reason)
	}
	t.Fatal(err)
}

func buildWebCluster(t *testing.T) *built {
	t.Helper()
	b := buildPersonality(t, "web-cluster", "xen")
	b.xenDir = b.dir
	return b
}

// buildPersonality builds one personality for one target with the real
// command, built from this tree, as a user runs it, with a fixed secret
// (so the keys in the image are known to the test). b.dir is
// OUT/<personality>/<target>.
func buildPersonality(t *testing.T, name, targetName string, extra ...string) *built {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), buildTimeout)
	defer cancel()
	work := t.TempDir()
	bin := filepath.Join(work, "applbuild")
	gobuild := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/applbuild")
	gobuild.Dir = ".."
	if out, err := gobuild.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	secret := bytes.Repeat([]byte("applbuild e2e secret "), 2)
	secretFile := filepath.Join(work, "secret")
	if err := os.WriteFile(secretFile, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	ring, err := keys.New(secret)
	if err != nil {
		t.Fatal(err)
	}
	b := &built{bin: bin, ring: ring, secret: secretFile}
	b.dir = b.build(t, name, targetName, filepath.Join(work, "out"), extra...)
	spec, err := personalities.Library{}.Load(name, personalities.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if b.plan, err = builder.New(spec); err != nil {
		t.Fatal(err)
	}
	return b
}

// build runs applbuild build into out and returns OUT/<name>/<target>.
func (b *built) build(t *testing.T, name, targetName, out string, extra ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), buildTimeout)
	defer cancel()
	cache := os.Getenv("APPLBUILD_CACHE_DIR")
	if cache == "" {
		cache = rootfs.DefaultDir()
	}
	start := time.Now()
	var log bytes.Buffer
	cmd := exec.CommandContext(ctx, b.bin, append([]string{"build", name, "--target", targetName,
		"--out", out, "--cache-dir", cache, "--secret", b.secret}, extra...)...)
	cmd.Stdout = &log
	cmd.Stderr = &log
	if err := cmd.Run(); err != nil {
		t.Fatalf("applbuild build: %v\n%s", err, lastLines(log.String(), 80))
	}
	t.Logf("e2e: build %s --target %s (cache %s): %s", name, targetName, cache, time.Since(start).Round(time.Second))
	for _, l := range strings.Split(log.String(), "\n") {
		if strings.HasPrefix(l, "stages:") {
			t.Logf("e2e: build %s", l)
		}
	}
	return filepath.Join(out, name, targetName)
}

// bootNode boots a node's disk set alone and checks it from outside.
func bootNode(t *testing.T, b *built, name string) {
	ctx := t.Context()
	n := b.plan.Node(name)
	m, err := boot.Discover(ctx, b.xenDir, name)
	if err != nil {
		t.Fatal(err)
	}
	// What the images say must be what the plan says.
	rootDisk, swapDisk := diskOf(n, builder.RoleRoot), diskOf(n, builder.RoleSwap)
	if m.RootUUID != rootDisk.UUID {
		t.Errorf("disk.img's UUID is %s, the plan's %s", m.RootUUID, rootDisk.UUID)
	}
	if m.MAC != n.MAC {
		t.Errorf("%s.cfg's MAC is %q, the plan's %s", name, m.MAC, n.MAC)
	}
	if want := fmt.Sprintf("%s/%d", n.Address, b.plan.Network.Prefix); m.Address.String() != want {
		t.Errorf("the image's LAN address is %s, the plan's %s", m.Address, want)
	}
	if m.Gateway.String() != b.plan.Network.Gateway {
		t.Errorf("the image's gateway is %s, the plan's %s", m.Gateway, b.plan.Network.Gateway)
	}
	// Root's key as the key ring derives it: the image must accept it.
	m.SSHKey = overlays.ClusterKeys(b.plan, b.ring).SSH("cluster-root", "root@"+b.plan.Cluster).Private

	consoleLog := filepath.Join(t.TempDir(), "console.log")
	cf, err := os.Create(consoleLog)
	if err != nil {
		t.Fatal(err)
	}
	defer cf.Close()
	vm, err := boot.Start(ctx, m, boot.Options{
		Memory:   guestMemory,
		Forwards: []boot.Forward{{Guest: 8080}},
		Console:  cf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := vm.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	t.Logf("e2e: booting %s: %s", name, boot.KernelCommandLine(m, nil))

	wctx, cancel := context.WithTimeout(ctx, bootTimeout)
	defer cancel()
	_, took, err := vm.WaitConsole(wctx, boot.LoginPrompt)
	if err != nil {
		fatalBoot(t, err)
	}
	t.Logf("e2e: boot to the login prompt: %s", took.Round(time.Second))
	if took, err = vm.WaitSSH(wctx); err != nil {
		fatalBoot(t, err)
	}
	t.Logf("e2e: boot to root's ssh login: %s", took.Round(time.Second))
	// A node of a cluster alone waits for its peers: its gluster setup
	// says so, and Pacemaker (ordered after it) has not started anything
	// on the image's local copies of the shared directories. What a
	// formed cluster serves is TestE2EClusterWebCluster's.
	if took, err = vm.WaitActive(wctx, "glusterd.service"); err != nil {
		t.Fatalf("%v\n%s", err, diagnose(ctx, vm))
	}
	t.Logf("e2e: boot to glusterd active: %s", took.Round(time.Second))
	// The setup gets to its wait for the first peer soon after.
	const waiting = "gluster=waiting for glusterd on n2 (gluster peer probe n2)"
	var status string
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Second) {
		out, err := vm.SSH(wctx, "grep ^gluster= /var/lib/applbuild/status || true")
		if status = strings.TrimSpace(string(out)); err == nil && status == waiting {
			break
		}
	}
	if status != waiting {
		t.Errorf("gluster setup of a lone node: status %q, want %q\n%s", status, waiting, diagnose(ctx, vm))
	}

	checks := []struct {
		name, cmd string
		check     func(out string) error
	}{
		{"gluster setup waits for the peers", "systemctl is-active applbuild-gluster.service || true", equals("activating")},
		{"no service on local copies", "systemctl is-active pacemaker.service apache2.service mariadb.service || true", equals("inactive\ninactive\ninactive")},
		{"no failed unit", "systemctl --failed --no-legend --plain", equals("")},
		{"hostname", "hostname", equals(name)},
		{"swap by the plan's UUID", "for d in $(swapon --show=NAME --noheadings); do blkid -s UUID -o value $d; done", equals(swapDisk.UUID)},
		{"every LV active", "lvs --noheadings -o lv_name,lv_active " + n.VG.Name, lvsActive(n)},
		{"every brick mounted", "findmnt -rn -o TARGET | grep ^/data/ || true", bricksMounted(n)},
		{"LAN and VLAN addresses", "ip -br addr", addresses(b.plan, n)},
	}
	for _, c := range checks {
		out, err := vm.SSH(ctx, c.cmd)
		if err != nil {
			t.Errorf("%s: %s: %v", c.name, c.cmd, err)
			continue
		}
		if err := c.check(strings.TrimSpace(string(out))); err != nil {
			t.Errorf("%s: %s: %v\n%s", c.name, c.cmd, err, out)
		}
	}
	if t.Failed() {
		t.Logf("console of %s (last 80 lines):\n%s", name, strings.Join(vm.Tail(80), "\n"))
	}
}

// diagnose gathers what explains a node that is not serving: the cluster's
// view and the journal of the units involved.
func diagnose(ctx context.Context, vm *boot.VM) string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out, err := vm.SSH(ctx, strings.Join([]string{
		"systemctl list-jobs --no-pager",
		"crm_mon -1 -r -f -A 2>&1",
		"systemctl status --no-pager --lines=0 corosync pacemaker apache2 2>&1",
		"journalctl -b --no-pager -o short-monotonic -u corosync -u pacemaker -u apache2 -u applbuild-firstboot 2>&1 | tail -n 120",
	}, "; echo; "))
	if err != nil {
		return fmt.Sprintf("(diagnosis over ssh failed: %v)\nconsole:\n%s", err, strings.Join(vm.Tail(boot.TailLines), "\n"))
	}
	return "the guest's own view:\n" + string(out)
}

// httpGet is the body of a 200 answer to GET url through client.
func httpGet(ctx context.Context, client *http.Client, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), nil
}

// imageFile is the overlay's content of path for node n, if it makes one.
func imageFile(b *built, n *builder.Node, path string) (string, bool) {
	files, err := overlays.Render(b.plan, n, b.ring)
	if err != nil {
		return "", false
	}
	for _, f := range files {
		if f.Path == path && !f.IsDir() && !f.IsLink() {
			return string(f.Data), true
		}
	}
	return "", false
}

func diskOf(n *builder.Node, role string) builder.Disk {
	for _, d := range n.Disks {
		if d.Role == role {
			return d
		}
	}
	return builder.Disk{}
}

func equals(want string) func(string) error {
	return func(got string) error {
		if got != want {
			return fmt.Errorf("got %q, want %q", got, want)
		}
		return nil
	}
}

func lvsActive(n *builder.Node) func(string) error {
	return func(out string) error {
		state := map[string]string{}
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) == 2 {
				state[f[0]] = f[1]
			}
		}
		var bad []string
		for _, lv := range n.VG.LVs {
			if state[lv.Name] != "active" {
				bad = append(bad, fmt.Sprintf("%s (%q)", lv.Name, state[lv.Name]))
			}
		}
		if len(bad) > 0 {
			return fmt.Errorf("not active: %s", strings.Join(bad, ", "))
		}
		return nil
	}
}

func bricksMounted(n *builder.Node) func(string) error {
	return func(out string) error {
		got := strings.Fields(out)
		var missing []string
		for _, lv := range n.VG.LVs {
			if lv.Mount != "" && !slices.Contains(got, lv.Mount) {
				missing = append(missing, lv.Mount)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("not mounted: %s", strings.Join(missing, " "))
		}
		return nil
	}
}

// addresses checks `ip -br addr`: the LAN address on the NIC and each
// VLAN's address on its interface (shown as eth0.10@eth0).
func addresses(pl *builder.Plan, n *builder.Node) func(string) error {
	return func(out string) error {
		have := map[string][]string{}
		for _, l := range strings.Split(out, "\n") {
			f := strings.Fields(l)
			if len(f) < 3 {
				continue
			}
			ifname, _, _ := strings.Cut(f[0], "@")
			have[ifname] = f[2:]
		}
		want := map[string]string{pl.Network.Interface: fmt.Sprintf("%s/%d", n.Address, pl.Network.Prefix)}
		for _, v := range n.VLANs {
			want[v.Interface] = fmt.Sprintf("%s/%d", v.Address, v.Prefix)
		}
		var bad []string
		for ifname, addr := range want {
			if !slices.Contains(have[ifname], addr) {
				bad = append(bad, fmt.Sprintf("%s has no %s", ifname, addr))
			}
		}
		slices.Sort(bad)
		if len(bad) > 0 {
			return fmt.Errorf("%s", strings.Join(bad, "; "))
		}
		return nil
	}
}

// validateInImage copies the built root filesystem out of disk.img and runs
// each config's own program on it, as trixie ships it: what the host has
// (bookworm) is older and would pass or fail for other reasons.
func validateInImage(t *testing.T, b *built, name string) {
	ctx := t.Context()
	n := b.plan.Node(name)
	root := filepath.Join(t.TempDir(), "root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	img := filepath.Join(b.xenDir, name, "disk.img")
	if _, err := run.Output(ctx, "debugfs", "-R", "rdump / "+root, img); err != nil {
		t.Fatal(err)
	}
	t.Logf("e2e: root filesystem of %s copied out of disk.img: %s", name, time.Since(start).Round(time.Second))
	// debugfs leaves device nodes out; the programs redirect to these.
	for _, d := range []struct {
		name         string
		major, minor uint32
	}{{"null", 1, 3}, {"zero", 1, 5}, {"random", 1, 8}, {"urandom", 1, 9}} {
		p := filepath.Join(root, "dev", d.name)
		os.Remove(p)
		if out, err := exec.Command("mknod", "-m", "0666", p, "c", strconv.Itoa(int(d.major)), strconv.Itoa(int(d.minor))).CombinedOutput(); err != nil {
			t.Fatalf("mknod %s: %v %s", p, err, out)
		}
	}
	files, err := overlays.Render(b.plan, n, b.ring)
	if err != nil {
		t.Fatal(err)
	}
	has := map[string]bool{}
	for _, f := range files {
		has[f.Path] = true
	}

	// A well-formed CIB first: crm_verify exits 0 on malformed XML.
	if has["/var/lib/pacemaker/cib/cib.xml"] {
		x, err := os.ReadFile(filepath.Join(root, "var/lib/pacemaker/cib/cib.xml"))
		if err != nil {
			t.Fatal(err)
		}
		d := xml.NewDecoder(bytes.NewReader(x))
		for {
			if _, err := d.Token(); err != nil {
				if err != io.EOF {
					t.Errorf("cib.xml is not well-formed XML: %v", err)
				}
				break
			}
		}
	}

	units := generatedUnits(files)
	tests := []struct {
		name  string
		needs string // a generated file the check is about
		cmd   string
		netns bool // needs the node's addresses (corosync binds them)
	}{
		{"crm_verify", "/var/lib/pacemaker/cib/cib.xml", "crm_verify --verbose --xml-file /var/lib/pacemaker/cib/cib.xml", false},
		{"apache2ctl", "/etc/apache2/ports.conf", "APACHE_CONFDIR=/etc/apache2 apache2ctl -t", false},
		{"pound", "/etc/pound/pound.cfg", "pound -c -f /etc/pound/pound.cfg", false},
		{"monit", "/etc/monit/conf.d/applbuild", "monit -t", false},
		{"sshd", "/etc/ssh/sshd_config.d/50-applbuild.conf", "mkdir -p /run/sshd && sshd -t", false},
		{"corosync", "/etc/corosync/corosync.conf", "corosync -t", true},
		{"mariadbd", "/etc/mysql/mariadb.conf.d/60-applbuild.cnf", "mariadbd --user=mysql --help --verbose >/dev/null", false},
		{"visudo", "/etc/sudoers.d/applbuild", "visudo -c -f /etc/sudoers.d/applbuild", false},
		{"systemd-analyze verify", "", "systemd-analyze verify --man=no " + strings.Join(units, " "), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.needs != "" && !has[tt.needs] {
				t.Skipf("the overlay makes no %s", tt.needs)
			}
			if tt.needs == "" && len(units) == 0 {
				t.Skip("the overlay makes no systemd units")
			}
			var ns string
			if tt.netns {
				ns = nodeNetns(t, n, b.plan.Network.Prefix)
			}
			start := time.Now()
			stdout, stderr, err := inRoot(ctx, root, ns, tt.cmd)
			t.Logf("%s (%s): %s", tt.cmd, time.Since(start).Round(time.Millisecond), lastLines(strings.TrimSpace(stdout+"\n"+stderr), 5))
			if err != nil {
				t.Errorf("%s in the image: %v\nstdout:\n%s\nstderr:\n%s", tt.cmd, err, stdout, stderr)
				return
			}
			// systemd-analyze verify exits 0 on unknown keys: anything it
			// says is a finding.
			if tt.name == "systemd-analyze verify" && strings.TrimSpace(stderr) != "" {
				t.Errorf("%s in the image:\n%s", tt.cmd, stderr)
			}
		})
	}
	// The xen target's initrd: its drivers, and not MODULES=most's.
	t.Run("initrd", func(t *testing.T) {
		if _, err := os.Stat(filepath.Join(root, xen.InitramfsConf)); err != nil {
			t.Skipf("no %s: not a xen build", xen.InitramfsConf)
		}
		fi, err := os.Stat(filepath.Join(root, "initrd.img"))
		if err != nil {
			t.Fatal(err)
		}
		stdout, stderr, err := inRoot(ctx, root, "", "lsinitramfs /initrd.img")
		if err != nil {
			t.Fatalf("lsinitramfs: %v\n%s", err, stderr)
		}
		var mods []string
		for _, l := range strings.Split(stdout, "\n") {
			if strings.Contains(l, ".ko") {
				mods = append(mods, filepath.Base(l))
			}
		}
		for _, want := range []string{"xen-blkfront.ko", "virtio_blk.ko", "ext4.ko"} {
			if !slices.ContainsFunc(mods, func(m string) bool { return strings.HasPrefix(m, want) }) {
				t.Errorf("the initrd has no %s: %s", want, strings.Join(mods, " "))
			}
		}
		for _, most := range []string{"ahci.ko", "nvme.ko", "usb-storage.ko"} {
			if slices.ContainsFunc(mods, func(m string) bool { return strings.HasPrefix(m, most) }) {
				t.Errorf("the initrd has %s: made with MODULES=most, not the xen target's list", most)
			}
		}
		t.Logf("e2e: %s's initrd: %.1f MiB, %d modules", name, float64(fi.Size())/(1<<20), len(mods))
	})
}

// generatedUnits names the units the overlay writes or changes with a
// drop-in, for systemd-analyze verify.
func generatedUnits(files []overlays.File) []string {
	var units []string
	for _, f := range files {
		dir, base := filepath.Split(f.Path)
		if !strings.HasPrefix(dir, "/etc/systemd/system/") && !strings.HasPrefix(dir, "/usr/lib/systemd/system/") {
			continue
		}
		var u string
		switch {
		case f.IsDir() || f.IsLink():
			continue
		case strings.HasSuffix(dir, ".d/") && strings.HasSuffix(base, ".conf"):
			u = filepath.Base(strings.TrimSuffix(dir, ".d/"))
		case strings.Contains(base, ".") && !strings.HasSuffix(base, ".conf"):
			u = base
		default:
			continue
		}
		if !slices.Contains(units, u) {
			units = append(units, u)
		}
	}
	slices.Sort(units)
	return units
}

// inRoot runs cmd with /bin/sh in a chroot of root, in new mount and pid
// namespaces with a private /proc (gone with the namespaces), optionally
// in the network namespace ns.
func inRoot(ctx context.Context, root, ns, cmd string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	args := []string{"unshare", "--mount", "--pid", "--fork", "--mount-proc=" + filepath.Join(root, "proc"),
		"chroot", root, "/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "HOME=/root",
		"/bin/sh", "-c", cmd}
	if ns != "" {
		args = append([]string{"ip", "netns", "exec", ns}, args...)
	}
	c := exec.CommandContext(ctx, args[0], args[1:]...)
	var o, e bytes.Buffer
	c.Stdout, c.Stderr = &o, &e
	err = c.Run()
	return o.String(), e.String(), err
}

// nodeNetns makes a network namespace that owns the node's LAN and VLAN
// addresses (corosync -t binds its ring addresses),
// removed when the test ends.
func nodeNetns(t *testing.T, n *builder.Node, prefix int) string {
	t.Helper()
	ns := fmt.Sprintf("applbuild-e2e-%d", os.Getpid())
	if _, err := run.Output(t.Context(), "ip", "netns", "add", ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := run.Output(context.Background(), "ip", "netns", "del", ns); err != nil {
			t.Errorf("remove netns %s: %v", ns, err)
		}
	})
	cmds := [][]string{
		{"ip", "-n", ns, "link", "set", "lo", "up"},
		// veth rather than dummy: the host kernel may lack the dummy module.
		{"ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0-peer"},
		{"ip", "-n", ns, "link", "set", "eth0", "up"},
		{"ip", "-n", ns, "link", "set", "eth0-peer", "up"},
		{"ip", "-n", ns, "addr", "add", fmt.Sprintf("%s/%d", n.Address, prefix), "dev", "eth0"},
	}
	for _, v := range n.VLANs {
		cmds = append(cmds, []string{"ip", "-n", ns, "addr", "add", fmt.Sprintf("%s/%d", v.Address, v.Prefix), "dev", "eth0"})
	}
	for _, c := range cmds {
		if _, err := run.Output(t.Context(), c...); err != nil {
			t.Fatal(err)
		}
	}
	return ns
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}
