package e2e

import (
	"compress/gzip"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/builder/boot"
	"github.com/applbuild/applbuild/builder/disk"
	"github.com/applbuild/applbuild/internal/keys"
	"github.com/applbuild/applbuild/overlays"
	"github.com/applbuild/applbuild/rootfs"
)

// The dom0 a Xen build is proven on: Debian bookworm's Xen 4.17 with the
// generic kernel (the cloud kernel has no dom0 support), and the PVH
// boot loader (grub-xen-host) every applbuild cfg names.
var dom0Request = rootfs.Request{
	Suite:   "bookworm",
	Variant: "apt",
	Packages: []string{"xen-system-amd64", "linux-image-amd64", "grub-xen-host", "systemd-sysv", "udev",
		"iproute2", "openssh-server", "openssh-client", "kmod", "initramfs-tools", "procps"},
}

const (
	// dom0Memory is the dom0's share (dom0_mem); the guest's is what its
	// cfg says, on top.
	dom0Memory = 768 << 20
	// dom0Address is the dom0's own address on QEMU's user network, for
	// the test's ssh; the guests' LAN is the bridge's, inside the dom0.
	dom0Address = "10.0.2.15/24"
	// xenBootTimeout bounds one guest from xl create to multi-user: PVH
	// under a Xen under TCG was measured at ~290 s for a small guest on a
	// quiet machine (FACTS), pvgrub2 reading the kernel and initrd most.
	xenBootTimeout = 40 * time.Minute
)

// xenHost is a dom0's root image and its hypervisor, ready to boot.
type xenHost struct {
	image, hypervisor, uuid string
}

// buildXenHost makes the dom0: its root from the rootfs cache (one
// bootstrap, then cached like an appliance's), with a bridge named as the
// cfgs name it carrying the plan's gateway address, so the guest's own
// network works unchanged; root's ssh key; and xenconsoled keeping each
// guest's console in /var/log/xen/console.
func buildXenHost(t *testing.T, pl *builder.Plan, key keys.SSHKey, bridge string) xenHost {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), buildTimeout)
	defer cancel()
	work := t.TempDir()
	dir := os.Getenv("APPLBUILD_CACHE_DIR")
	if dir == "" {
		dir = rootfs.DefaultDir()
	}
	start := time.Now()
	e, err := (&rootfs.Cache{Dir: dir}).Get(ctx, dom0Request, nil)
	if err != nil {
		t.Fatalf("dom0 rootfs: %v", err)
	}
	root := filepath.Join(work, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(ctx, "tar", "--numeric-owner", "--same-owner", "--same-permissions",
		"-C", root, "-xf", e.Tarball).CombinedOutput(); err != nil {
		t.Fatalf("dom0 rootfs: tar: %v\n%s", err, out)
	}
	h := xenHost{image: filepath.Join(work, "dom0.img"), hypervisor: filepath.Join(work, "xen.elf"),
		uuid: disk.UUIDFromSeed(pl.Seed, "e2e dom0 root")}

	gw := netip.PrefixFrom(netip.MustParseAddr(pl.Network.Gateway), pl.Network.Prefix)
	files := map[string]string{
		"etc/fstab":                           "UUID=" + h.uuid + " / ext4 errors=remount-ro 0 1\n",
		"etc/hostname":                        "dom0\n",
		"etc/systemd/network/10-eth0.network": "[Match]\nName=eth0\n[Network]\nAddress=" + dom0Address + "\n",
		"etc/systemd/network/20-" + bridge + ".netdev":  "[NetDev]\nName=" + bridge + "\nKind=bridge\n",
		"etc/systemd/network/20-" + bridge + ".network": "[Match]\nName=" + bridge + "\n[Network]\nAddress=" + gw.String() + "\nConfigureWithoutCarrier=yes\n",
		// What the dom0's network is, on its console: the test reaches
		// it only over that network.
		"etc/systemd/system/e2e-network.service": "[Unit]\nAfter=network-online.target ssh.service xen.service\nWants=network-online.target\n" +
			"[Service]\nType=oneshot\nExecStart=/bin/sh -c 'sleep 5; ip -br link; ip -br addr; ip route; networkctl --no-pager'\nStandardOutput=tty\nTTYPath=/dev/hvc0\n" +
			"[Install]\nWantedBy=multi-user.target\n",
		"root/.ssh/authorized_keys": key.Public + "\n",
		"root/.ssh/id_ed25519":      string(key.Private),
	}
	for name, content := range files {
		p := filepath.Join(root, name)
		// systemd-networkd reads its files as its own user; root's ssh
		// directory is root's alone.
		mode := os.FileMode(0o644)
		if strings.HasPrefix(name, "root/") {
			mode = 0o600
		}
		if err := os.MkdirAll(filepath.Dir(p), mode|0o111); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"etc/systemd/system/multi-user.target.wants/systemd-networkd.service": "/lib/systemd/system/systemd-networkd.service",
		"etc/systemd/system/sockets.target.wants/systemd-networkd.socket":     "/lib/systemd/system/systemd-networkd.socket",
		"etc/systemd/system/multi-user.target.wants/e2e-network.service":      "/etc/systemd/system/e2e-network.service",
	} {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(link)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	// Every guest's console in a file the test reads over ssh.
	f, err := os.OpenFile(filepath.Join(root, "etc/default/xen"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("dom0: %v (is xen-utils-common installed?)", err)
	}
	if _, err := f.WriteString("\n# applbuild e2e: keep each guest's console\nXENCONSOLED_ARGS=\"--log=guest --log-dir=/var/log/xen/console\"\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.MkdirAll(filepath.Join(root, "var/log/xen/console"), 0o750); err != nil { // xenconsoled makes no directory
		t.Fatal(err)
	}
	// The rootfs cache removes ssh host keys (every node makes its own).
	if out, err := exec.CommandContext(ctx, "ssh-keygen", "-A", "-f", root).CombinedOutput(); err != nil {
		t.Fatalf("dom0 host keys: %v\n%s", err, out)
	}

	// QEMU's multiboot loader needs the hypervisor as an ELF.
	xens, _ := filepath.Glob(filepath.Join(root, "boot", "xen-*.gz"))
	if len(xens) != 1 {
		t.Fatalf("dom0: want one /boot/xen-*.gz, found %q", xens)
	}
	if err := gunzip(xens[0], h.hypervisor); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(ctx, "mke2fs", "-q", "-F", "-t", "ext4", "-U", h.uuid, "-L", "dom0",
		"-d", root, h.image, "3G").CombinedOutput(); err != nil {
		t.Fatalf("dom0 image: mke2fs: %v\n%s", err, out)
	}
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	t.Logf("e2e: dom0 (%s, Xen %s) ready: %s", dom0Request.Suite, strings.TrimSuffix(filepath.Base(xens[0]), ".gz"), time.Since(start).Round(time.Second))
	return h
}

func gunzip(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	zr, err := gzip.NewReader(in)
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, zr); err != nil {
		out.Close()
		return fmt.Errorf("%s: %w", src, err)
	}
	return out.Close()
}

var (
	cfgTarget = regexp.MustCompile(`target=([^,' ]+)`)
	cfgMemory = regexp.MustCompile(`(?m)^memory = ([0-9]+)$`)
	cfgBridge = regexp.MustCompile(`bridge=([A-Za-z0-9_.-]+)`)
)

// remapCfg is the node's own cfg with each disk's target moved to the
// device the dom0 sees it as (the dom0's vdb, vdc, ... in the cfg's
// order), nothing else changed. It returns the images in that order.
func remapCfg(cfg string) (string, []string) {
	var images []string
	out := cfgTarget.ReplaceAllStringFunc(cfg, func(m string) string {
		images = append(images, strings.TrimPrefix(m, "target="))
		return fmt.Sprintf("target=/dev/vd%c", 'b'+len(images)-1)
	})
	return out, images
}

// xenBoot starts a dom0 under QEMU with the node's disks, creates the
// node from its own cfg with xl, and waits for it to reach multi-user
// with no failed unit, at the memory its cfg gives.
func xenBoot(t *testing.T, b *built, name string) {
	ctx := t.Context()
	n := b.plan.Node(name)
	raw, err := os.ReadFile(filepath.Join(b.xenDir, name, name+".cfg"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, images := remapCfg(string(raw))
	mm := cfgMemory.FindStringSubmatch(cfg)
	br := cfgBridge.FindStringSubmatch(cfg)
	if mm == nil || br == nil || len(images) == 0 {
		t.Fatalf("%s.cfg: no memory, bridge or disk:\n%s", name, raw)
	}
	var guestMiB int64
	fmt.Sscan(mm[1], &guestMiB)
	key := overlays.ClusterKeys(b.plan, b.ring).SSH("cluster-root", "root@"+b.plan.Cluster)
	h := buildXenHost(t, b.plan, key, br[1])

	consoleLog := filepath.Join(t.TempDir(), "xen-console.log")
	cf, err := os.Create(consoleLog)
	if err != nil {
		t.Fatal(err)
	}
	defer cf.Close()
	m := boot.Machine{Name: "dom0", Disks: append([]string{h.image}, images...), RootUUID: h.uuid,
		Address: netip.MustParsePrefix(dom0Address), SSHKey: key.Private}
	mem := int64(dom0Memory) + guestMiB<<20 + 256<<20 // Xen's own, and the guest's page tables
	vm, err := boot.Start(ctx, m, boot.Options{
		Memory: mem, CPUs: 2,
		CPU:     "qemu64,+svm", // FACTS: -cpu max crashes the dom0
		Console: cf,
		Xen: &boot.Xen{Hypervisor: h.hypervisor, Args: []string{
			"console=com1", "com1=115200,8n1", "loglvl=all", "guest_loglvl=all", "noreboot",
			fmt.Sprintf("dom0_mem=%dM,max:%dM", dom0Memory>>20, dom0Memory>>20)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("console of the Xen host (last 60 lines):\n%s", strings.Join(vm.Tail(60), "\n"))
		}
		if err := vm.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	wctx, cancel := context.WithTimeout(ctx, xenBootTimeout)
	defer cancel()
	took, err := vm.WaitSSH(wctx)
	if err != nil {
		fatalBoot(t, err)
	}
	info, err := vm.SSH(wctx, "xl info | grep -E '^(xen_version|total_memory|free_memory|virt_caps)'")
	if err != nil {
		t.Fatalf("the dom0 is up but Xen is not: %v\n%s", err, info)
	}
	t.Logf("e2e: dom0 up under Xen in %s:\n%s", took.Round(time.Second), strings.TrimSpace(string(info)))

	// The node's cfg, remapped, and xl create as the cfg's comment says.
	cmd := fmt.Sprintf("echo %s | base64 -d > /root/%s.cfg && xl create /root/%s.cfg",
		base64.StdEncoding.EncodeToString([]byte(cfg)), name, name)
	if out, err := vm.SSH(wctx, cmd); err != nil {
		t.Fatalf("xl create: %v\n%s", err, out)
	}
	created := time.Now()
	guest := func(ctx context.Context, c string) (string, error) {
		out, err := vm.SSH(ctx, "ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "+
			"-o LogLevel=ERROR -o ConnectTimeout=20 root@"+n.Address+" -- "+shellQuote(c))
		return strings.TrimSpace(string(out)), err
	}
	guestConsole := func() string {
		out, _ := vm.SSH(ctx, "tail -n 60 /var/log/xen/console/guest-"+name+".log 2>&1; xl list")
		return string(out)
	}
	milestones := []struct {
		what string
		cmd  string
		done func(string) bool
	}{
		{"the login prompt", "", nil},
		{"root's ssh login", "true", func(string) bool { return true }},
		// A node of a cluster alone waits for its peers (its gluster
		// setup, and Pacemaker after it), as under QEMU (bootNode): then
		// every other job is done, and multi-user waits only for those.
		{"multi-user (but what waits for the peers)", "systemctl is-active multi-user.target || { systemctl list-jobs --no-legend --plain; grep ^gluster= /var/lib/applbuild/status; }",
			func(s string) bool {
				if s == "active" {
					return true
				}
				waiting := false
				for _, l := range strings.Split(s, "\n") {
					f := strings.Fields(l)
					switch {
					case len(f) == 0 || f[0] == "activating" || f[0] == "inactive":
					case strings.HasPrefix(l, "gluster=waiting for glusterd on "):
						waiting = true
					case len(f) >= 2 && (strings.HasSuffix(f[1], ".target") || peerWaiters[f[1]]):
					default:
						return false
					}
				}
				return waiting
			}},
	}
	for _, ms := range milestones {
		for {
			if wctx.Err() != nil {
				t.Fatalf("%s did not reach %s within %s of xl create\n%s", name, ms.what, xenBootTimeout, guestConsole())
			}
			if ms.done == nil {
				out, _ := vm.SSH(wctx, "grep -c 'login:' /var/log/xen/console/guest-"+name+".log || true")
				if strings.TrimSpace(string(out)) != "0" && strings.TrimSpace(string(out)) != "" {
					break
				}
			} else if out, err := guest(wctx, ms.cmd); err == nil && ms.done(out) {
				break
			}
			time.Sleep(10 * time.Second)
		}
		t.Logf("e2e: %s under Xen: %s to %s", name, time.Since(created).Round(time.Second), ms.what)
	}
	checks := []struct{ what, cmd, want string }{
		{"no failed unit", "systemctl --failed --no-legend --plain", ""},
		{"hostname", "hostname", name},
		{"memory the cfg gives", "awk '/^MemTotal/ {print ($2 > " + fmt.Sprint(guestMiB*1024*9/10) + ") ? \"ok\" : $2}' /proc/meminfo", "ok"},
		{"root on Xen's disk", "findmnt -n -o SOURCE /", "/dev/xvda2"},
	}
	for _, c := range checks {
		out, err := guest(ctx, c.cmd)
		if err != nil || out != c.want {
			t.Errorf("%s: %s: %q, want %q (%v)", c.what, c.cmd, out, c.want, err)
		}
	}
	if t.Failed() {
		t.Logf("console of %s under Xen:\n%s", name, guestConsole())
	}
}

// peerWaiters are the units a lone node's boot leaves waiting for its
// peers: the gluster setup, and Pacemaker ordered after it.
var peerWaiters = map[string]bool{"applbuild-gluster.service": true, "pacemaker.service": true}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
