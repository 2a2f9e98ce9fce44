package boot

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/applbuild/applbuild/builder/disk"
	"github.com/applbuild/applbuild/internal/testenv"
)

func TestCleanLine(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", "n1 login: ", "n1 login: "},
		{"status", "[\x1b[0;32m  OK  \x1b[0m] Reached target \x1b[0;1;39mmulti-user.target\x1b[0m - Multi-User System.",
			"[  OK  ] Reached target multi-user.target - Multi-User System."},
		{"carriage return overwrites", "[ ***  ] Job x running (1s / 2s)\r\x1b[K[  OK  ] Started ssh.service", "[  OK  ] Started ssh.service"},
		{"reverse index", "\x1bM[  OK  ] Started x.", "[  OK  ] Started x."},
		{"agetty reset", "\x1b[!p\x1b]104\x07\x1b[?7h", ""},
		{"trailing CR", "hello\r", "hello"},
		{"other controls", "a\x00b\x07c\td", "abc\td"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cleanLine(tt.in); got != tt.want {
				t.Errorf("cleanLine(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestSpinner(t *testing.T) {
	for s, want := range map[string]bool{
		"[   ***] (4 of 5) Job dbus.service/start running (1min 4s / 2min 32s)": true,
		"[*     ] Job networking.service/start running (1min 15s / 6min 1s)":    true,
		"[  *** ] A start job is running for /dev/vda (12s / 1min 30s)":         true,
		"[  OK  ] Started dbus.service - D-Bus System Message Bus.":             false,
		"[FAILED] Failed to start x.service.":                                   false,
	} {
		if got := isSpinner(s); got != want {
			t.Errorf("isSpinner(%q) = %v, want %v", s, got, want)
		}
	}
}

// multiUser is a status line systemd writes while it still owns the console.
var multiUser = regexp.MustCompile(`Reached target multi-user\.target`)

func TestPatterns(t *testing.T) {
	tests := []struct {
		re   *regexp.Regexp
		line string
		want bool
	}{
		{multiUser, "[  OK  ] Reached target multi-user.target - Multi-User System.", true},
		{multiUser, "[   30.1] systemd[1]: Reached target multi-user.target - Multi-User System.", true},
		{multiUser, "[  OK  ] Reached target network.target - Network.", false},
		{LoginPrompt, "n1 login: ", true},
		{LoginPrompt, "n1 login:", true},
		{LoginPrompt, "n1 login: [  225.160863] firstboot[1161]: applbuild-firstboot: 10-accounts: start", true},
		{LoginPrompt, "applbuild web-cluster: n1.example.org (ttyS0)", false},
	}
	for _, tt := range tests {
		if got := tt.re.MatchString(tt.line); got != tt.want {
			t.Errorf("%s matches %q = %v, want %v", tt.re, tt.line, got, tt.want)
		}
	}
}

// interfaces is what overlays writes for n1 (trimmed), plus variants.
const interfaces = `# generated
source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback

auto eth0
iface eth0 inet static
    address 192.168.224.161
    netmask 255.255.255.0
    gateway 192.168.224.1

auto eth0.10
iface eth0.10 inet static
    address 10.224.10.161
    netmask 255.255.255.0
    vlan-raw-device eth0
`

func TestParseInterfaces(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    staticLAN
		wantErr string
	}{
		{name: "overlay's file", in: interfaces, want: staticLAN{
			Interface: "eth0",
			Address:   netip.MustParsePrefix("192.168.224.161/24"),
			Gateway:   netip.MustParseAddr("192.168.224.1"),
		}},
		{name: "CIDR address, no gateway", in: "auto eth1\niface eth1 inet static\n  address 10.0.0.5/16\n", want: staticLAN{
			Interface: "eth1", Address: netip.MustParsePrefix("10.0.0.5/16"),
		}},
		{name: "VLAN first", in: "iface eth0.10 inet static\n address 10.1.1.1/24\niface eth0 inet static\n address 10.2.2.2\n netmask 255.255.255.128\n", want: staticLAN{
			Interface: "eth0", Address: netip.MustParsePrefix("10.2.2.2/25"),
		}},
		{name: "dhcp only", in: "auto eth0\niface eth0 inet dhcp\n", wantErr: errNoStatic.Error()},
		{name: "bad netmask", in: "iface eth0 inet static\n address 10.0.0.1\n netmask 255.0.255.0\n", wantErr: "not contiguous"},
		{name: "no address", in: "iface eth0 inet static\n netmask 255.255.255.0\n", wantErr: "no address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseInterfaces([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestMACFromXenConfig(t *testing.T) {
	cfg := "name = \"n1\"\nvif = ['mac=00:16:3E:5b:9b:ac, bridge=xenbr0']\n"
	if got := macFromXenConfig([]byte(cfg)); got != "00:16:3e:5b:9b:ac" {
		t.Errorf("got %q", got)
	}
	if got := macFromXenConfig([]byte("vif = ['bridge=xenbr0']")); got != "" {
		t.Errorf("got %q, want none", got)
	}
}

func TestKernelCommandLine(t *testing.T) {
	m := Machine{RootUUID: "08ce05fc-4676-83d0-a841-2c14994cbd8f"}
	if got, want := KernelCommandLine(m, []string{"quiet"}),
		"root=UUID=08ce05fc-4676-83d0-a841-2c14994cbd8f ro net.ifnames=0 console=ttyS0 systemd.show_status=1 panic=-1 quiet"; got != want {
		t.Errorf("without grub.cfg:\n got %s\nwant %s", got, want)
	}
	m.CmdLine = grubCmdLine([]byte("menuentry 'x' {\n\tlinux /vmlinuz root=UUID=abc ro console=hvc0 net.ifnames=0\n\tinitrd /initrd.img\n}\n"))
	if got, want := KernelCommandLine(m, nil), "root=UUID=abc ro net.ifnames=0 console=ttyS0 systemd.show_status=1 panic=-1"; got != want {
		t.Errorf("from grub.cfg:\n got %s\nwant %s", got, want)
	}
}

func TestParseForward(t *testing.T) {
	tests := []struct {
		in   string
		want Forward
		ok   bool
	}{
		{"18080:8080", Forward{18080, 8080}, true},
		{"8080", Forward{0, 8080}, true},
		{"0:22", Forward{0, 22}, true},
		{"x:80", Forward{}, false},
		{"80:0", Forward{}, false},
		{"70000:80", Forward{}, false},
	}
	for _, tt := range tests {
		got, err := ParseForward(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseForward(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestConsoleFollow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	var out bytes.Buffer
	c := newConsole(path, &out)
	go c.follow()
	defer c.close()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString("[    1.0] Linux version 6.12\r\n[ ***  ] Job a/start running (1s / 2s)\n")
	f.WriteString("[\x1b[0;32m  OK  \x1b[0m] Reached target \x1b[0;1;39mmulti-user.target\x1b[0m - Multi")
	time.Sleep(3 * pollEvery)
	if _, _, ok := c.find(multiUser, 0); ok {
		t.Fatal("matched a line that is not complete yet")
	}
	f.WriteString("-User System.\nn1 login: ")
	deadline := time.Now().Add(5 * time.Second)
	for {
		if l, next, ok := c.find(multiUser, 0); ok {
			if next != 2 || l.Text != "[  OK  ] Reached target multi-user.target - Multi-User System." {
				t.Fatalf("find = %q, next %d", l.Text, next)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no match; lines %q", c.tail(10))
		}
		time.Sleep(pollEvery)
	}
	// The prompt never gets its newline: once it has sat unchanged for
	// partialLineAfter it is a line, while QEMU still runs.
	for deadline := time.Now().Add(partialLineAfter + 3*time.Second); ; time.Sleep(pollEvery) {
		if _, _, ok := c.find(LoginPrompt, 0); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the prompt without a newline was not read; lines %q", c.tail(10))
		}
	}
	c.close()
	want := "[    1.0] Linux version 6.12\n[  OK  ] Reached target multi-user.target - Multi-User System.\nn1 login: \n"
	if out.String() != want {
		t.Errorf("console out:\n%q\nwant\n%q", out.String(), want)
	}
}

// TestImage makes a small root image the way the build does (mke2fs -d)
// and reads it back: symlinked kernel and initrd, node identity.
func TestImage(t *testing.T) {
	testenv.Tools(t, "mke2fs", "debugfs")
	ctx := context.Background()
	tree := t.TempDir()
	long := "boot/" + strings.Repeat("x", 70) // a slow symlink: target in a data block
	files := map[string]string{
		"boot/vmlinuz-6.12.0-amd64":    "KERNEL",
		"boot/initrd.img-6.12.0-amd64": "INITRD",
		long:                           "LONG",
		"etc/fstab":                    "UUID=x / ext4 defaults 0 1\n",
		"etc/hostname":                 "n1\n",
		"etc/network/interfaces":       interfaces,
		"boot/grub/grub.cfg":           "menuentry 'n1' {\n\tlinux /vmlinuz root=UUID=5f9ee2e2-4d1f-4b0e-9d86-0a1bd3bb1a22 ro console=hvc0 net.ifnames=0\n}\n",
		"root/.ssh/id_ed25519":         "KEY\n",
	}
	for p, s := range files {
		mustWrite(t, filepath.Join(tree, p), s)
	}
	for link, target := range map[string]string{
		"vmlinuz":         "boot/vmlinuz-6.12.0-amd64",
		"initrd.img":      "/boot/initrd.img-6.12.0-amd64",
		"etc/loop":        "/etc/loop",
		"etc/long":        "/" + long,
		"etc/dangling":    "/nowhere",
		"etc/via-dirlink": "../bootdir/vmlinuz-6.12.0-amd64",
		"bootdir":         "boot",
	} {
		if err := os.Symlink(target, filepath.Join(tree, link)); err != nil {
			t.Fatal(err)
		}
	}
	nodeDir := filepath.Join(t.TempDir(), "xen", "n1")
	const uuid = "5f9ee2e2-4d1f-4b0e-9d86-0a1bd3bb1a22"
	img := filepath.Join(nodeDir, "disk.img")
	if err := os.MkdirAll(nodeDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := disk.MakeExt4(ctx, disk.Ext4Options{Path: img, Size: 16 << 20, SourceDir: tree, UUID: uuid, Label: "root", Time: 1}); err != nil {
		t.Fatal(err)
	}
	if err := disk.MakeSwap(filepath.Join(nodeDir, "swap.img"), 1<<20, "0c0e8f39-7d0d-4bb5-a3a2-ec31e6d8e0b5", "swap"); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(nodeDir, "n1.cfg"), "vif = ['mac=00:16:3e:5b:9b:ac, bridge=xenbr0']\n")

	t.Run("read", func(t *testing.T) {
		tests := []struct {
			path, want, wantErr string
		}{
			{"/vmlinuz", "KERNEL", ""},
			{"/initrd.img", "INITRD", ""},
			{"/etc/long", "LONG", ""},
			{"/etc/via-dirlink", "KERNEL", ""},
			{"/bootdir/../etc/hostname", "n1\n", ""}, // cleaned lexically first, as the path is absolute
			{"/etc/loop", "", "too many levels"},
			{"/etc/dangling", "", os.ErrNotExist.Error()},
			{"/etc", "", "a directory"},
			{"/etc/hostname/x", "", "not a directory"},
		}
		for _, tt := range tests {
			got, err := readImageFile(ctx, img, tt.path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("%s: err = %v, want %q", tt.path, err, tt.wantErr)
				}
				continue
			}
			if err != nil || string(got) != tt.want {
				t.Errorf("%s = %q, %v; want %q", tt.path, got, err, tt.want)
			}
		}
	})

	t.Run("kernel", func(t *testing.T) {
		dir := t.TempDir()
		k, i, err := Kernel(ctx, img, dir)
		if err != nil {
			t.Fatal(err)
		}
		for p, want := range map[string]string{k: "KERNEL", i: "INITRD"} {
			if b, err := os.ReadFile(p); err != nil || string(b) != want {
				t.Errorf("%s = %q, %v; want %q", p, b, err, want)
			}
		}
	})

	t.Run("discover", func(t *testing.T) {
		for _, args := range [][2]string{{filepath.Dir(nodeDir), "n1"}, {nodeDir, ""}, {nodeDir, "n1"}} {
			m, err := Discover(ctx, args[0], args[1])
			if err != nil {
				t.Fatalf("Discover(%q, %q): %v", args[0], args[1], err)
			}
			want := Machine{
				Name:     "n1",
				Disks:    []string{img, filepath.Join(nodeDir, "swap.img")},
				RootUUID: uuid,
				CmdLine:  []string{"root=UUID=" + uuid, "ro", "console=hvc0", "net.ifnames=0"},
				MAC:      "00:16:3e:5b:9b:ac",
				Address:  netip.MustParsePrefix("192.168.224.161/24"),
				Gateway:  netip.MustParseAddr("192.168.224.1"),
				SSHKey:   []byte("KEY\n"),
			}
			if m.Name != want.Name || !slices.Equal(m.Disks, want.Disks) || m.RootUUID != want.RootUUID ||
				!slices.Equal(m.CmdLine, want.CmdLine) || m.MAC != want.MAC || m.Address != want.Address ||
				m.Gateway != want.Gateway || !bytes.Equal(m.SSHKey, want.SSHKey) {
				t.Errorf("Discover(%q, %q) =\n%+v\nwant\n%+v", args[0], args[1], m, want)
			}
		}
		if _, err := Discover(ctx, filepath.Dir(nodeDir), "n9"); err == nil || !strings.Contains(err.Error(), `no node "n9" (nodes: n1)`) {
			t.Errorf("unknown node: err = %v", err)
		}
	})
}

func TestStartRefusesBadMachines(t *testing.T) {
	ok := Machine{Name: "n1", Disks: []string{"disk.img"}, RootUUID: "u", Address: netip.MustParsePrefix("192.168.224.161/24")}
	tests := []struct {
		name string
		edit func(*Machine)
		want string
	}{
		{"no disks", func(m *Machine) { m.Disks = nil }, "no disks"},
		{"no root", func(m *Machine) { m.RootUUID = "" }, "root filesystem UUID"},
		{"no address", func(m *Machine) { m.Address = netip.Prefix{} }, "LAN address"},
		{"gateway outside", func(m *Machine) { m.Gateway = netip.MustParseAddr("10.0.0.1") }, "not another address"},
		{"gateway is the guest", func(m *Machine) { m.Gateway = m.Address.Addr() }, "not another address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := ok
			tt.edit(&m)
			v, err := Start(context.Background(), m, Options{})
			if err == nil {
				v.Stop()
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestBootErrorShowsTail(t *testing.T) {
	e := &BootError{Name: "n1", Wanted: "multi-user", Reason: "timed out", Tail: []string{"a", "b"}}
	want := "boot n1: timed out before multi-user; the console's last 2 lines:\n  | a\n  | b"
	if e.Error() != want {
		t.Errorf("got\n%s\nwant\n%s", e.Error(), want)
	}
	var be *BootError
	if !errors.As(error(e), &be) {
		t.Error("not a *BootError")
	}
}

func mustWrite(t *testing.T, path, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestXenArgs: the hypervisor is QEMU's kernel, the dom0's kernel and
// initrd its modules, commas in them doubled (QEMU splits modules on
// single commas), and the dom0's console Xen's.
func TestXenArgs(t *testing.T) {
	got := xenArgs(&Xen{Hypervisor: "/w/xen.elf", Args: []string{"console=com1", "dom0_mem=768M,max:768M"}},
		"/w/a,b/vmlinuz", "/w/a,b/initrd.img", "root=UUID=x ro console=ttyS0 panic=-1")
	want := []string{"-kernel", "/w/xen.elf", "-append", "console=com1 dom0_mem=768M,max:768M",
		"-initrd", "/w/a,,b/vmlinuz root=UUID=x ro console=hvc0 panic=-1,/w/a,,b/initrd.img"}
	if !slices.Equal(got, want) {
		t.Errorf("xenArgs:\n got %q\nwant %q", got, want)
	}
}
