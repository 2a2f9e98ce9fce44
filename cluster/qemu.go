package cluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/applbuild/applbuild/builder/boot"
	"github.com/applbuild/applbuild/internal/run"
)

// A node runs as a daemonized QEMU inside the cluster's namespace, so it
// outlives the applbuild command that started it: `cluster up` returns
// with the cluster running, `kill`, `start` and `down` act on it later
// through its pid file. Its disks are qcow2 overlays in its state
// directory: the built images are only read, and `down` forgets all.

// nodeFiles are the paths of one node's run in its state directory.
type nodeFiles struct{ dir string }

func (f nodeFiles) pid() string     { return filepath.Join(f.dir, "qemu.pid") }
func (f nodeFiles) console() string { return filepath.Join(f.dir, "console.log") }
func (f nodeFiles) key() string     { return filepath.Join(f.dir, "id_ed25519") }
func (f nodeFiles) kernel() string  { return filepath.Join(f.dir, "vmlinuz") }
func (f nodeFiles) initrd() string  { return filepath.Join(f.dir, "initrd.img") }
func (f nodeFiles) overlay(i int) string {
	return filepath.Join(f.dir, fmt.Sprintf("disk%d.qcow2", i))
}

// prepareNode makes the node's state directory: its overlays, kernel and
// initrd (read out of the root image), and root's key for ssh.
func prepareNode(ctx context.Context, n *Node) error {
	f := nodeFiles{n.Dir}
	if err := os.MkdirAll(n.Dir, 0o700); err != nil {
		return err
	}
	if n.Firmware == "" {
		// A Xen disk set: QEMU starts the kernel as pvgrub2 would.
		if _, _, err := boot.Kernel(ctx, n.Disks[0], n.Dir); err != nil {
			return fmt.Errorf("%s: %w", n.Name, err)
		}
	} else if _, _, err := boot.FirmwareArgs(n.Machine, n.Dir); err != nil {
		// A raw or usb disk boots through its firmware and boot loader.
		return err
	}
	for i, d := range n.Disks {
		abs, err := filepath.Abs(d)
		if err != nil {
			return err
		}
		if err := run.Run(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-b", abs, "-F", "raw", f.overlay(i)); err != nil {
			return fmt.Errorf("%s: overlay for %s: %w", n.Name, d, err)
		}
	}
	if len(n.SSHKey) == 0 {
		return fmt.Errorf("%s: the image carries no root key (/root/.ssh/id_ed25519)", n.Name)
	}
	return os.WriteFile(f.key(), n.SSHKey, 0o600)
}

// accel is KVM where the machine can run it, QEMU's emulator otherwise.
// A /dev/kvm that opens is not enough: measured here, a machine whose CPU
// has no virtualisation extensions (no vmx or svm in /proc/cpuinfo) still
// has one, and QEMU then starts a guest that never runs an instruction.
func accel() (string, string) {
	if kvmUsable() {
		return "kvm", "host"
	}
	return "tcg", boot.DefaultCPU
}

func kvmUsable() bool {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	info, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return false
	}
	return hasVirtFlag(info)
}

// hasVirtFlag reports whether a /proc/cpuinfo lists vmx (Intel VT-x) or
// svm (AMD-V) among its flags.
func hasVirtFlag(cpuinfo []byte) bool {
	for _, line := range strings.Split(string(cpuinfo), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(k) != "flags" {
			continue
		}
		for _, f := range strings.Fields(v) {
			if f == "vmx" || f == "svm" {
				return true
			}
		}
	}
	return false
}

// qemuArgs is the node's QEMU command line.
func qemuArgs(n *Node) ([]string, error) {
	f := nodeFiles{n.Dir}
	acc, cpu := accel()
	machine, bootArgs, err := boot.FirmwareArgs(n.Machine, n.Dir)
	if err != nil {
		return nil, err
	}
	if n.Firmware == "" {
		bootArgs = []string{"-kernel", f.kernel(), "-initrd", f.initrd(), "-append", boot.KernelCommandLine(n.Machine, nil)}
	}
	args := []string{
		"-name", "applbuild-" + n.Name,
		"-machine", machine, "-accel", acc, "-cpu", cpu,
		"-m", strconv.FormatInt(n.Memory>>20, 10) + "M", "-smp", strconv.Itoa(n.CPUs),
		"-nodefaults", "-display", "none", "-no-user-config",
		"-daemonize", "-pidfile", f.pid(),
		"-chardev", "file,id=s0,append=on,path=" + f.console(), "-serial", "chardev:s0",
		"-netdev", "tap,id=n0,ifname=" + n.Tap + ",script=no,downscript=no",
		"-device", "virtio-net-pci,netdev=n0,mac=" + n.MAC,
		"-device", "virtio-rng-pci",
		// A watchdog, as a Xen domU has xen_wdt: what a hung node's
		// self-fencing (SBD) needs. It resets the guest, like a reboot.
		"-device", "i6300esb", "-action", "watchdog=reset",
	}
	args = append(args, bootArgs...)
	for i := range n.Disks {
		args = append(args, "-drive", fmt.Sprintf("file=%s,format=qcow2,if=virtio,cache=unsafe,discard=unmap", f.overlay(i)))
	}
	return args, nil
}

// startNode boots the node (its overlays keep their state: a node that
// was killed comes back with what it had written).
func startNode(ctx context.Context, ns string, n *Node) error {
	if pid := nodePID(n); pid > 0 {
		return fmt.Errorf("%s is running already (pid %d)", n.Name, pid)
	}
	qemu, err := run.Look("qemu-system-x86_64")
	if err != nil {
		return err
	}
	os.Remove(nodeFiles{n.Dir}.pid())
	args, err := qemuArgs(n)
	if err != nil {
		return err
	}
	argv := append([]string{"ip", "netns", "exec", ns, qemu}, args...)
	if err := run.Run(ctx, argv...); err != nil {
		return fmt.Errorf("start %s: %w", n.Name, err)
	}
	if nodePID(n) <= 0 {
		return fmt.Errorf("start %s: QEMU left no process (see %s)", n.Name, nodeFiles{n.Dir}.console())
	}
	return nil
}

// nodePID is the pid of the node's running QEMU, or 0 (see pidFromFile:
// QEMU's command line names the node's pid file).
func nodePID(n *Node) int {
	pf := nodeFiles{n.Dir}.pid()
	return pidFromFile(pf, pf)
}

// killNode pulls the node's power: SIGKILL, no shutdown. It waits until
// the process is gone.
func killNode(n *Node) error {
	if nodePID(n) == 0 {
		return nil
	}
	if err := killAndWait(n.Name, func() int { return nodePID(n) }); err != nil {
		return err
	}
	return os.Remove(nodeFiles{n.Dir}.pid())
}

// pidFromFile is the pid written in pidFile, or 0. It is believed only if
// that process's command line contains mark: a stale file after a host
// reboot must not make applbuild kill a stranger that got the same pid.
func pidFromFile(pidFile, mark string) int {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cmdline, []byte(mark)) {
		return 0
	}
	return pid
}

// killAndWait sends SIGKILL to the process pid() names, if any, and
// waits (10 s at most) until pid() says it is gone.
func killAndWait(what string, pid func() int) error {
	p := pid()
	if p == 0 {
		return nil
	}
	if err := syscall.Kill(p, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
		return fmt.Errorf("kill %s (pid %d): %w", what, p, err)
	}
	for i := 0; i < 100 && pid() != 0; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	if pid() != 0 {
		return fmt.Errorf("%s (pid %d) does not die", what, p)
	}
	return nil
}
