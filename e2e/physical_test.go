package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/builder/boot"
	"github.com/applbuild/applbuild/builder/compress"
	"github.com/applbuild/applbuild/builder/target"
	"github.com/applbuild/applbuild/builder/target/raw"
	"github.com/applbuild/applbuild/builder/target/usb"
	"github.com/applbuild/applbuild/internal/run"
	"github.com/applbuild/applbuild/internal/testenv"
	"github.com/applbuild/applbuild/overlays"
)

// TestE2EPhysicalSCM builds scm for the raw target, checks the disk with
// the programs that read its parts (sgdisk, fsck.vfat, e2fsck), rebuilds it
// bit for bit, and boots it through its own boot loaders as a physical
// machine would: SeaBIOS, and OVMF with Secure Boot enforced and
// Microsoft's keys enrolled (Debian's signed shim, GRUB and kernel).
func TestE2EPhysicalSCM(t *testing.T) {
	oneGuest(t)
	testenv.Tools(t, "go", "mmdebstrap", "mke2fs", "debugfs", "e2fsck", "sgdisk", "fsck.vfat", "mkfs.vfat", "mcopy",
		"qemu-system-x86_64", "qemu-img", "ssh")
	formats := "--format=qcow2,vmdk,vdi"
	b := buildPersonality(t, "scm", raw.Name, formats)
	n := &b.plan.Nodes[0]
	img := filepath.Join(b.dir, n.Name, raw.ImageFile(n))
	t.Run("disk checks", func(t *testing.T) { checkRawDisk(t, b, n, img, target.Formats) })
	t.Run("rebuild identical", func(t *testing.T) {
		again := b.build(t, "scm", raw.Name, filepath.Join(t.TempDir(), "out"), formats)
		if a, z := manifestFiles(t, b.dir), manifestFiles(t, again); a != z {
			t.Errorf("a rebuild differs:\n%s\n%s", a, z)
		}
	})
	for _, fw := range []string{boot.FirmwareBIOS, boot.FirmwareSecure} {
		t.Run("boot "+fw, func(t *testing.T) { bootRaw(t, b, img, fw) })
	}
	t.Run("secure boot refuses a tampered loader", func(t *testing.T) { tamperedLoader(t, b, n, img) })
}

// secureBootRefused is OVMF's line for a loader whose signature does
// not verify against the enrolled keys.
var secureBootRefused = regexp.MustCompile(`BdsDxe: failed to load Boot\S+ .*: Access Denied`)

// tamperedLoader: the same disk with one byte of the ESP's shim changed
// (its Authenticode hash no longer matches its signature) must not boot
// under Secure Boot: OVMF refuses it, and no kernel starts.
func tamperedLoader(t *testing.T, b *built, n *builder.Node, img string) {
	ctx := t.Context()
	var esp target.Partition
	for _, pt := range raw.Layout(b.plan, n).Images[0].Table.Partitions {
		if pt.Piece == raw.PieceESP {
			esp = pt
		}
	}
	if esp.Size == 0 {
		t.Fatal("no ESP in the layout")
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "tampered.img")
	if out, err := run.Output(ctx, "cp", "--sparse=always", img, bad); err != nil {
		t.Fatalf("copy: %v\n%s", err, out)
	}
	fat := fmt.Sprintf("%s@@%d", bad, esp.Start)
	shim := filepath.Join(dir, "BOOTX64.EFI")
	if out, err := run.Output(ctx, "mcopy", "-n", "-i", fat, "::/EFI/BOOT/BOOTX64.EFI", shim); err != nil {
		t.Fatalf("mcopy out: %v\n%s", err, out)
	}
	data, err := os.ReadFile(shim)
	if err != nil {
		t.Fatal(err)
	}
	// The middle of the file: code, far from the signature at its end.
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(shim, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := run.Output(ctx, "mcopy", "-o", "-i", fat, shim, "::/EFI/BOOT/BOOTX64.EFI"); err != nil {
		t.Fatalf("mcopy in: %v\n%s", err, out)
	}
	m, err := boot.Discover(ctx, bad, "")
	if err != nil {
		t.Fatal(err)
	}
	m.Firmware = boot.FirmwareSecure
	vm, err := boot.Start(ctx, m, boot.Options{Memory: guestMemory})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Stop()
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	line, took, err := vm.WaitConsole(wctx, secureBootRefused)
	if err != nil {
		t.Fatalf("no refusal of the tampered loader: %v\nconsole:\n%s", err, strings.Join(vm.Tail(40), "\n"))
	}
	t.Logf("e2e: Secure Boot refused the tampered shim after %s: %s", took.Round(time.Second), strings.TrimSpace(line))
	for _, l := range vm.Tail(400) {
		if strings.Contains(l, "Linux version") || strings.Contains(l, "EFI stub") || boot.LoginPrompt.MatchString(l) {
			t.Errorf("a kernel started from the tampered disk: %s", l)
		}
	}
}

// checkRawDisk: a clean GPT with the layout's partitions, a clean FAT ESP
// holding the removable-media boot path, a clean root ext4.
func checkRawDisk(t *testing.T, b *built, n *builder.Node, img string, formats []string) {
	ctx := t.Context()
	l := raw.Layout(b.plan, n)
	if out, err := run.Output(ctx, "sgdisk", "-v", img); err != nil || !strings.Contains(string(out), "No problems found") {
		t.Errorf("sgdisk -v: %v\n%s", err, out)
	}
	for _, pt := range l.Images[0].Table.Partitions {
		switch pt.Piece {
		case raw.PieceESP:
			esp := filepath.Join(t.TempDir(), "esp.img")
			if err := copyRange(img, esp, pt.Start, pt.Size); err != nil {
				t.Fatal(err)
			}
			if out, err := run.Output(ctx, "fsck.vfat", "-n", esp); err != nil {
				t.Errorf("fsck.vfat -n: %v\n%s", err, out)
			}
			out, err := run.Output(ctx, "mdir", "-b", "-i", esp, "::/EFI/BOOT")
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"BOOTX64.EFI", "grubx64.efi", "mmx64.efi", "grub.cfg"} {
				if !strings.Contains(strings.ToUpper(string(out)), strings.ToUpper("::/EFI/BOOT/"+f)) {
					t.Errorf("the ESP has no /EFI/BOOT/%s:\n%s", f, out)
				}
			}
		case "root":
			if out, err := run.Output(ctx, "e2fsck", "-fn", fmt.Sprintf("%s?offset=%d", img, pt.Start)); err != nil {
				t.Errorf("e2fsck -fn of the root partition: %v\n%s", err, out)
			}
		}
	}
	for _, f := range formats {
		conv := strings.TrimSuffix(img, ".img") + "." + f
		if out, err := run.Output(ctx, "qemu-img", "check", conv); err != nil {
			t.Errorf("qemu-img check %s: %v\n%s", filepath.Base(conv), err, out)
		}
		// The converted disk holds the raw disk's bytes.
		if out, err := run.Output(ctx, "qemu-img", "compare", "-f", "raw", "-F", f, img, conv); err != nil {
			t.Errorf("qemu-img compare %s: %v\n%s", filepath.Base(conv), err, out)
		}
	}
	checked := "sgdisk -v, fsck.vfat -n, e2fsck -fn"
	if len(formats) > 0 {
		checked += fmt.Sprintf(", qemu-img check and compare (%s)", strings.Join(formats, ", "))
	}
	t.Logf("e2e: %s: %s are clean", filepath.Base(img), checked)
}

func copyRange(src, dst string, off, size int64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	buf := make([]byte, size)
	if _, err := in.ReadAt(buf, off); err != nil {
		return err
	}
	return os.WriteFile(dst, buf, 0o600)
}

// manifestFiles is the manifest's path, size and sha256 of every file.
func manifestFiles(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Files []struct {
			Path   string `json:"path"`
			Size   int64  `json:"size"`
			SHA256 string `json:"sha256"`
		} `json:"files"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range m.Files {
		out = append(out, fmt.Sprintf("%s %d %s", f.Path, f.Size, f.SHA256))
	}
	return strings.Join(out, "\n")
}

// bootRaw boots the disk under fw and checks the running machine: the
// firmware it booted by, the root on its partition, multi-user with no
// failed unit, svnserve answering over the network.
func bootRaw(t *testing.T, b *built, img, fw string) {
	ctx := t.Context()
	n := &b.plan.Nodes[0]
	m, err := boot.Discover(ctx, img, "")
	if err != nil {
		t.Fatal(err)
	}
	if m.Firmware == "" || m.RootUUID != diskOf(n, "root").UUID {
		t.Fatalf("Discover(%s): firmware %q, root %s; want a partitioned disk with root %s", img, m.Firmware, m.RootUUID, diskOf(n, "root").UUID)
	}
	m.Firmware = fw
	m.SSHKey = overlays.ClusterKeys(b.plan, b.ring).SSH("cluster-root", "root@"+b.plan.Cluster).Private
	cf, err := os.Create(filepath.Join(t.TempDir(), "console.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer cf.Close()
	vm, err := boot.Start(ctx, m, boot.Options{Memory: guestMemory, Forwards: []boot.Forward{{Guest: 3690}}, Console: cf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := vm.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	wctx, cancel := context.WithTimeout(ctx, bootTimeout)
	defer cancel()
	if _, took, err := vm.WaitConsole(wctx, boot.LoginPrompt); err != nil {
		fatalBoot(t, err)
	} else {
		t.Logf("e2e: %s boot to the login prompt: %s", fw, took.Round(time.Second))
	}
	if _, err := vm.WaitSSH(wctx); err != nil {
		fatalBoot(t, err)
	}
	sbState := "test ! -d /sys/firmware/efi && echo bios"
	if fw != boot.FirmwareBIOS {
		// The last byte of the SecureBoot variable: 1 when enforced.
		sbState = "od -An -tu1 /sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c | awk '{print \"secureboot=\" $NF}'"
	}
	wantSB := map[string]string{boot.FirmwareBIOS: "bios", boot.FirmwareUEFI: "secureboot=0", boot.FirmwareSecure: "secureboot=1"}[fw]
	checks := []struct{ name, cmd, want string }{
		{"firmware", sbState, wantSB},
		{"multi-user", "systemctl is-system-running --wait", "running"},
		{"no failed unit", "systemctl --failed --no-legend --plain", ""},
		{"root on its partition", "findmnt -no SOURCE,OPTIONS / | cut -d, -f1", "/dev/vda4 rw"},
	}
	for _, c := range checks {
		out, err := vm.SSH(wctx, c.cmd)
		if got := strings.TrimSpace(string(out)); err != nil || got != c.want {
			t.Errorf("%s: %s = %q, %v; want %q", c.name, c.cmd, got, err, c.want)
		}
	}
	// svnserve's greeting, from outside the machine.
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", vm.HostPort(3690)), 30*time.Second)
	if err != nil {
		t.Fatalf("svnserve: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	greet := make([]byte, 64)
	k, _ := conn.Read(greet)
	if !strings.HasPrefix(string(greet[:k]), "( success ( ") {
		t.Errorf("svnserve greets with %q", greet[:k])
	}
	if t.Failed() {
		t.Logf("console (last 60 lines):\n%s", strings.Join(vm.Tail(60), "\n"))
	}
}

// TestE2EPhysicalUSB builds scm for the usb target and proves the stick's
// outputs: xz, bmap (the real bmaptool copies the .xz into the image's
// bytes), SHA256SUMS, a clean GPT and squashfs; then boots it and cuts
// its power (bootStick).
func TestE2EPhysicalUSB(t *testing.T) {
	oneGuest(t)
	testenv.Tools(t, "go", "mmdebstrap", "mke2fs", "debugfs", "mksquashfs", "unsquashfs", "bmaptool", "xz", "sha256sum",
		"sgdisk", "mkfs.vfat", "mcopy", "qemu-system-x86_64", "qemu-img", "ssh")
	b := buildPersonality(t, "scm", usb.Name)
	m, size := checkStick(t, b, &b.plan.Nodes[0])
	t.Run("boot and power cut", func(t *testing.T) { bootStick(t, b, m, size) })
}

// checkStick checks node n's stick outputs: a clean GPT, SHA256SUMS,
// bmaptool's copy of the .xz equal to the image, a zstd squashfs as
// unsquashfs reads it. It returns the stick as boot discovers it, and the
// image's size.
func checkStick(t *testing.T, b *built, n *builder.Node) (boot.Machine, int64) {
	ctx := t.Context()
	dir := filepath.Join(b.dir, n.Name)
	img := filepath.Join(dir, n.Name+".img")
	if out, err := run.Output(ctx, "sgdisk", "-v", img); err != nil || !strings.Contains(string(out), "No problems found") {
		t.Errorf("sgdisk -v: %v\n%s", err, out)
	}
	sums := &run.Cmd{Args: []string{"sha256sum", "-c", "SHA256SUMS"}, Dir: dir}
	if out, err := sums.Output(ctx); err != nil {
		t.Errorf("sha256sum -c: %v\n%s", err, out)
	}
	copied := filepath.Join(t.TempDir(), "stick.img")
	if out, err := run.Output(ctx, "bmaptool", "copy", "--bmap", img+".bmap", img+".xz", copied); err != nil {
		t.Fatalf("bmaptool copy: %v\n%s", err, out)
	}
	if out, err := run.Output(ctx, "cmp", img, copied); err != nil {
		t.Errorf("bmaptool's copy of the .xz is not the image: %v\n%s", err, out)
	}
	os.Remove(copied)
	fi, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	// The squashfs, out of the live partition, as unsquashfs reads it.
	m, err := boot.Discover(ctx, img, "")
	if err != nil {
		t.Fatal(err)
	}
	sq := filepath.Join(t.TempDir(), "filesystem.squashfs")
	if out, err := run.Output(ctx, "debugfs", "-R", "dump /live/filesystem.squashfs "+sq, m.RootImage()); err != nil {
		t.Fatalf("debugfs dump: %v\n%s", err, out)
	}
	if out, err := run.Output(ctx, "unsquashfs", "-s", sq); err != nil || !strings.Contains(string(out), "zstd") {
		t.Errorf("unsquashfs -s: %v\n%s", err, out)
	}
	t.Logf("e2e: %s: %s, sgdisk -v, sha256sum -c, bmaptool copy = the image, unsquashfs -s: clean", filepath.Base(img), compress.HumanSize(fi.Size()))

	return m, fi.Size()
}

// bootStick boots the stick image under OVMF from a stick twice its size
// and cuts its power.
func bootStick(t *testing.T, b *built, m boot.Machine, imageSize int64) {
	ctx := t.Context()
	fi := struct{ size int64 }{imageSize}
	m.Firmware = boot.FirmwareUEFI
	m.SSHKey = overlays.ClusterKeys(b.plan, b.ring).SSH("cluster-root", "root@"+b.plan.Cluster).Private
	cf, err := os.Create(filepath.Join(t.TempDir(), "console.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer cf.Close()
	vm, err := boot.Start(ctx, m, boot.Options{Memory: guestMemory, Console: cf, DiskSize: 2 * fi.size, Reboot: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := vm.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	wctx, cancel := context.WithTimeout(ctx, 2*bootTimeout)
	defer cancel()
	if _, took, err := vm.WaitConsole(wctx, boot.LoginPrompt); err != nil {
		fatalBoot(t, err)
	} else {
		t.Logf("e2e: usb boot to the login prompt: %s", took.Round(time.Second))
	}
	if _, err := vm.WaitSSH(wctx); err != nil {
		fatalBoot(t, err)
	}
	sh := func(cmd string) string {
		out, err := vm.SSH(wctx, cmd)
		if err != nil {
			t.Errorf("%s: %v\n%s", cmd, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	checks := []struct{ name, cmd, want string }{
		{"multi-user", "systemctl is-system-running --wait", "running"},
		{"no failed unit", "systemctl --failed --no-legend --plain", ""},
		{"root is the overlay", "findmnt -no FSTYPE /", "overlay"},
		{"the squashfs is read-only", "findmnt -no FSTYPE,OPTIONS /run/live/rootfs/filesystem.squashfs | cut -d, -f1", "squashfs ro"},
		{"the live partition is read-only", "findmnt -no OPTIONS /run/live/medium | cut -d, -f1", "ro"},
		{"no swap", "swapon --show --noheadings", ""},
		{"journal in memory", "test -d /var/log/journal/$(cat /etc/machine-id) && echo persistent || echo volatile", "volatile"},
	}
	for _, c := range checks {
		if got := sh(c.cmd); got != c.want {
			t.Errorf("%s: %s = %q, want %q", c.name, c.cmd, got, c.want)
		}
	}
	// The data partition reaches the stick's end (1 MiB for the backup
	// GPT), and its filesystem fills it.
	grown := sh("dev=$(readlink -f /dev/disk/by-label/persistence); d=/dev/$(lsblk -no PKNAME $dev); " +
		"echo $(( $(blockdev --getsize64 $d) - $(cat /sys/class/block/${dev##*/}/start)*512 - $(blockdev --getsize64 $dev) )) $(blockdev --getsize64 $dev) $(df -B1 --output=size $dev | tail -1)")
	var gap, part, fsSize int64
	if _, err := fmt.Sscan(grown, &gap, &part, &fsSize); err != nil || gap > 2<<20 || part < fi.size || fsSize < part*9/10 {
		t.Errorf("data partition after the first boot on a %d-byte stick: gap to the end, size, fs size = %q", 2*fi.size, grown)
	} else {
		t.Logf("e2e: the data partition grew to %s (ext4 %s) on a stick twice the image", compress.HumanSize(part), compress.HumanSize(fsSize))
	}

	// A power cut: a file written and synced, then a reset with no
	// shutdown, no unmount, no sync.
	token := fmt.Sprintf("written before the power cut %d", time.Now().UnixNano())
	sh("printf '%s' '" + token + "' > /root/powercut.txt && sync")
	cut := time.Now()
	vm.SSH(wctx, "echo 1 > /proc/sys/kernel/sysrq; echo b > /proc/sysrq-trigger") // never answers
	if _, took, err := vm.WaitConsoleAfter(wctx, boot.LoginPrompt, cut); err != nil {
		fatalBoot(t, err)
	} else {
		t.Logf("e2e: back to the login prompt %s after the power cut", took.Round(time.Second))
	}
	if _, err := vm.WaitSSH(wctx); err != nil {
		fatalBoot(t, err)
	}
	if got := sh("cat /root/powercut.txt"); got != token {
		t.Errorf("after the power cut /root/powercut.txt = %q, want %q", got, token)
	}
	if got := sh("systemctl is-system-running --wait"); got != "running" {
		t.Errorf("after the power cut: %s", got)
	}
	if t.Failed() {
		t.Logf("console (last 80 lines):\n%s", strings.Join(vm.Tail(80), "\n"))
	}
}
