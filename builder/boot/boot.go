// Package boot test-drives one node's disk set under QEMU: the kernel and
// initramfs come out of the root image itself (read with debugfs, nothing
// mounted), every image is attached through a throw-away qcow2 overlay so
// the build output is never written, and the guest sits on QEMU's user
// network, numbered like the plan's LAN, with its ssh and service ports
// forwarded to the host's loopback.
//
// The guest is isolated (restrict=on): it reaches nothing but the
// forwarded ports, so a lone node looking for its peers sends no packet
// beyond QEMU.
package boot

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"io"

	"github.com/applbuild/applbuild/internal/run"
)

// Machine is what booting one node needs.
type Machine struct {
	Name     string   // for messages: the node's name
	Disks    []string // image files, root first; attached as virtio disks in order
	RootUUID string   // the root filesystem's UUID, for root=UUID=
	// CmdLine is the kernel command line the node boots with under its
	// hypervisor (from the image's grub.cfg), if known: the test drive
	// uses it, with the console moved to the serial port.
	CmdLine []string
	// MAC is the NIC's address ("" lets QEMU pick one): the plan's, so
	// the guest sees the NIC it will have under Xen.
	MAC string
	// Address is the guest's static LAN address with its subnet's length;
	// QEMU's user network is numbered to match, so the guest's own
	// /etc/network/interfaces works unchanged.
	Address netip.Prefix
	// Gateway becomes QEMU's own address on that network, so the guest's
	// default route points at something that answers. Optional.
	Gateway netip.Addr
	// SSHKey is a private key root accepts (the cluster's root key).
	SSHKey []byte
	// Firmware is how the machine boots: "" starts the kernel read out
	// of the root filesystem directly (a Xen disk set has no boot loader
	// of its own); FirmwareBIOS, FirmwareUEFI and FirmwareSecure boot the
	// first disk through its own boot loader under SeaBIOS, OVMF, or OVMF
	// with Secure Boot enforced and Microsoft's keys enrolled.
	Firmware string
	// root is how debugfs reaches the root filesystem: the root image,
	// or a disk image with ?offset= of its root partition.
	root string
}

// Firmwares.
const (
	FirmwareBIOS   = "bios"
	FirmwareUEFI   = "uefi"
	FirmwareSecure = "uefi-secure"
)

// Firmwares lists the values of Machine.Firmware a disk can boot with.
var Firmwares = []string{FirmwareBIOS, FirmwareUEFI, FirmwareSecure}

// OVMF files (Debian's ovmf): the 4 MiB builds, plain and with Secure
// Boot, and the variable stores (Microsoft's keys enrolled in ms.fd).
const (
	ovmfCode       = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	ovmfSecureCode = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"
	ovmfVars       = "/usr/share/OVMF/OVMF_VARS_4M.fd"
	ovmfMSVars     = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"
)

// FirmwareArgs are QEMU's machine type and arguments for m's firmware
// (none for a direct kernel boot). The firmware's variable store is a
// copy in dir, made once: a machine started again from the same dir
// keeps what its boot loader wrote there, as a real one keeps its NVRAM.
func FirmwareArgs(m Machine, dir string) (machine string, args []string, err error) {
	machine = "q35"
	switch m.Firmware {
	case "", FirmwareBIOS:
		return machine, nil, nil // SeaBIOS, QEMU's default
	case FirmwareUEFI, FirmwareSecure:
	default:
		return "", nil, fmt.Errorf("boot %s: firmware %q: want %s", m.Name, m.Firmware, strings.Join(Firmwares, ", "))
	}
	code, vars := ovmfCode, ovmfVars
	if m.Firmware == FirmwareSecure {
		code, vars = ovmfSecureCode, ovmfMSVars
		// The Secure Boot build keeps its variables in SMM: without it
		// the guest could rewrite the key database.
		machine += ",smm=on"
		args = []string{"-global", "driver=cfi.pflash01,property=secure,value=on"}
	}
	for _, f := range []string{code, vars} {
		if _, err := os.Stat(f); err != nil {
			return "", nil, fmt.Errorf("boot %s: %s: %w (apt-get install ovmf)", m.Name, f, err)
		}
	}
	own := filepath.Join(dir, "OVMF_VARS-"+m.Firmware+".fd")
	if _, err := os.Stat(own); errors.Is(err, os.ErrNotExist) {
		b, err := os.ReadFile(vars)
		if err != nil {
			return "", nil, err
		}
		if err := os.WriteFile(own, b, 0o600); err != nil {
			return "", nil, err
		}
	} else if err != nil {
		return "", nil, err
	}
	return machine, append(args,
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+code,
		"-drive", "if=pflash,format=raw,unit=1,file="+own), nil
}

// Forward is a TCP port of the guest reachable on the host's loopback.
type Forward struct {
	Host  int // 0: any free port
	Guest int
}

// ParseForward reads "HOST:GUEST" or "GUEST" (any free host port).
func ParseForward(s string) (Forward, error) {
	h, g, ok := strings.Cut(s, ":")
	if !ok {
		h, g = "0", s
	}
	hp, err1 := strconv.Atoi(h)
	gp, err2 := strconv.Atoi(g)
	if err1 != nil || err2 != nil || hp < 0 || hp > 65535 || gp < 1 || gp > 65535 {
		return Forward{}, fmt.Errorf("forward %q: want HOSTPORT:GUESTPORT, such as 18080:8080", s)
	}
	return Forward{Host: hp, Guest: gp}, nil
}

// Options tune a boot. The zero value works.
type Options struct {
	Memory int64 // bytes; 0 means DefaultMemory
	CPUs   int   // 0 means 2
	// CPU is QEMU's -cpu model; "" means DefaultCPU.
	CPU      string
	Forwards []Forward // besides ssh (22), always forwarded
	// KernelArgs are appended to the kernel command line.
	KernelArgs []string
	// Console receives every console line (terminal controls removed)
	// as it comes; nil discards them.
	Console io.Writer
	// TempDir is where the run's directory is made; "" means os.TempDir.
	TempDir string
	// DiskSize, when larger than the first disk, is the size the guest
	// sees it as (its overlay's): a stick larger than its image.
	DiskSize int64
	// Reboot lets a guest reboot keep running (same overlays) instead of
	// ending QEMU: a power-cut drill resets the guest and waits for it.
	Reboot bool
	// Xen, when set, starts the machine as a Xen dom0 (a direct kernel
	// boot only): QEMU's multiboot loader starts the hypervisor, which
	// starts the root's kernel and initrd as its dom0. The serial port is
	// then Xen's, and the kernel's console its hvc0.
	Xen *Xen
}

// Xen is a hypervisor to boot a machine under.
type Xen struct {
	// Hypervisor is the uncompressed ELF (QEMU's multiboot loader reads
	// no gzip): Debian's /boot/xen-*.gz, gunzipped.
	Hypervisor string
	// Args is the hypervisor's command line (console=com1, dom0_mem=...).
	Args []string
}

// Defaults.
const (
	DefaultMemory = 1 << 30
	// DefaultCPU: "max" gives the guest every instruction TCG emulates,
	// and was measured faster to boot than qemu64 here; see docs/boot.md.
	DefaultCPU = "max"
)

// VM is a running guest. Stop it, always: it owns a QEMU process and a
// temporary directory.
type VM struct {
	Machine Machine
	Started time.Time
	// Dir holds the run's overlays, kernel, console log and key; it is
	// removed by Stop.
	Dir string
	// ConsoleLog is the serial console as QEMU wrote it.
	ConsoleLog string
	// KeyFile is Machine.SSHKey written out for ssh (0600), or "".
	KeyFile string

	ports   map[int]int // guest port -> host port
	cmd     *exec.Cmd
	stderr  *tailBuffer
	console *console

	exited  chan struct{} // closed when QEMU has exited
	waitErr error

	stopOnce sync.Once
	stopErr  error
}

// Start boots m. The guest runs until Stop (or until it powers off).
func Start(ctx context.Context, m Machine, o Options) (_ *VM, err error) {
	if len(m.Disks) == 0 {
		return nil, errors.New("boot: no disks")
	}
	if m.RootUUID == "" && len(m.CmdLine) == 0 {
		return nil, errors.New("boot: neither a root filesystem UUID nor a kernel command line")
	}
	if !m.Address.IsValid() || !m.Address.Addr().Is4() {
		return nil, fmt.Errorf("boot %s: the guest's IPv4 LAN address is unknown", m.Name)
	}
	if m.Gateway.IsValid() && (!m.Address.Masked().Contains(m.Gateway) || m.Gateway == m.Address.Addr()) {
		return nil, fmt.Errorf("boot %s: gateway %s is not another address of %s", m.Name, m.Gateway, m.Address.Masked())
	}
	qemu, err := run.Look("qemu-system-x86_64")
	if err != nil {
		return nil, err
	}
	if o.Memory == 0 {
		o.Memory = DefaultMemory
	}
	if o.CPUs == 0 {
		o.CPUs = 2
	}
	if o.CPU == "" {
		o.CPU = DefaultCPU
	}
	dir, err := os.MkdirTemp(o.TempDir, "applbuild-boot-"+m.Name+"-")
	if err != nil {
		return nil, fmt.Errorf("boot %s: %w", m.Name, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	v := &VM{Machine: m, Dir: dir, ConsoleLog: filepath.Join(dir, "console.log"), ports: map[int]int{}, exited: make(chan struct{})}

	if m.root == "" {
		m.root = m.Disks[0]
	}
	var bootArgs []string
	machine := "q35"
	if m.Firmware == "" {
		kernel, initrd, err := Kernel(ctx, m.root, dir)
		if err != nil {
			return nil, fmt.Errorf("boot %s: %w", m.Name, err)
		}
		bootArgs = []string{"-kernel", kernel, "-initrd", initrd, "-append", KernelCommandLine(m, o.KernelArgs)}
		if o.Xen != nil {
			bootArgs = xenArgs(o.Xen, kernel, initrd, KernelCommandLine(m, o.KernelArgs))
		}
	} else if o.Xen != nil {
		return nil, fmt.Errorf("boot %s: a Xen host boots its kernel directly, not through %s", m.Name, m.Firmware)
	} else {
		if len(o.KernelArgs) > 0 {
			return nil, fmt.Errorf("boot %s: kernel arguments need a direct kernel boot: the disk's own boot loader (%s) chooses them", m.Name, m.Firmware)
		}
		if machine, bootArgs, err = FirmwareArgs(m, dir); err != nil {
			return nil, err
		}
	}
	var drives []string
	for i, d := range m.Disks {
		abs, err := filepath.Abs(d)
		if err != nil {
			return nil, err
		}
		// The overlay takes every write; the image is only read.
		ov := filepath.Join(dir, fmt.Sprintf("disk%d.qcow2", i))
		argv := []string{"qemu-img", "create", "-q", "-f", "qcow2", "-b", abs, "-F", "raw", ov}
		if i == 0 && o.DiskSize > 0 {
			argv = append(argv, strconv.FormatInt(o.DiskSize, 10))
		}
		if err := run.Run(ctx, argv...); err != nil {
			return nil, fmt.Errorf("boot %s: overlay for %s: %w", m.Name, d, err)
		}
		drives = append(drives, "-drive", fmt.Sprintf("file=%s,format=qcow2,if=virtio,cache=unsafe,discard=unmap", ov))
	}
	if len(m.SSHKey) > 0 {
		v.KeyFile = filepath.Join(dir, "id_ed25519")
		if err := os.WriteFile(v.KeyFile, m.SSHKey, 0o600); err != nil {
			return nil, err
		}
	}

	fwds := append([]Forward{{Guest: 22}}, o.Forwards...)
	netdev := []string{"user", "id=n0", "net=" + m.Address.Masked().String(), "restrict=on"}
	if m.Gateway.IsValid() {
		netdev = append(netdev, "host="+m.Gateway.String())
	}
	for _, f := range fwds {
		if _, dup := v.ports[f.Guest]; dup {
			continue
		}
		hp := f.Host
		if hp == 0 {
			if hp, err = freePort(); err != nil {
				return nil, fmt.Errorf("boot %s: %w", m.Name, err)
			}
		}
		v.ports[f.Guest] = hp
		netdev = append(netdev, fmt.Sprintf("hostfwd=tcp:127.0.0.1:%d-%s:%d", hp, m.Address.Addr(), f.Guest))
	}
	nic := "virtio-net-pci,netdev=n0"
	if m.MAC != "" {
		nic += ",mac=" + m.MAC
	}
	args := []string{
		"-machine", machine, "-accel", "tcg", "-cpu", o.CPU,
		"-m", strconv.FormatInt(o.Memory>>20, 10) + "M", "-smp", strconv.Itoa(o.CPUs),
		"-nodefaults", "-display", "none", "-no-user-config",
		"-chardev", "file,id=s0,path=" + v.ConsoleLog, "-serial", "chardev:s0",
		"-netdev", strings.Join(netdev, ","), "-device", nic,
		"-device", "virtio-rng-pci",
	}
	args = append(append(args, bootArgs...), drives...)
	if !o.Reboot {
		// A kernel panic (panic=-1) or a reboot ends QEMU instead of
		// looping: a test drive is one boot.
		args = append(args, "-no-reboot")
	}
	cmd := exec.Command(qemu, args...)
	// Its own process group: Ctrl-C on the terminal reaches applbuild,
	// which stops QEMU and cleans up, instead of killing QEMU under it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	v.stderr = &tailBuffer{}
	cmd.Stdout = v.stderr
	cmd.Stderr = v.stderr
	v.cmd = cmd
	v.console = newConsole(v.ConsoleLog, o.Console)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("boot %s: %w", m.Name, err)
	}
	v.Started = time.Now()
	go v.console.follow()
	go func() {
		v.waitErr = cmd.Wait()
		close(v.exited)
	}()
	return v, nil
}

// xenArgs boots the hypervisor with QEMU's multiboot loader and the
// kernel and initrd as its modules, the dom0's console on Xen's hvc0.
func xenArgs(x *Xen, kernel, initrd, cmdline string) []string {
	cmdline = strings.Replace(cmdline, "console=ttyS0", "console=hvc0", 1)
	// Multiboot modules are comma-separated, each a file and its command
	// line; a comma inside one is doubled.
	mods := strings.ReplaceAll(kernel+" "+cmdline, ",", ",,") + "," + strings.ReplaceAll(initrd, ",", ",,")
	return []string{"-kernel", x.Hypervisor, "-append", strings.Join(x.Args, " "), "-initrd", mods}
}

// KernelCommandLine is what the guest's kernel is started with: the
// node's own command line with the console on the serial port, or, when
// the image has none, the root by UUID (the disk order under QEMU is not
// Xen's) and eth0 naming as under Xen; then systemd's status lines, so the
// console shows how far the boot got.
func KernelCommandLine(m Machine, extra []string) string {
	args := []string{"root=UUID=" + m.RootUUID, "ro", "net.ifnames=0"}
	if len(m.CmdLine) > 0 {
		args = nil
		for _, a := range m.CmdLine {
			if !strings.HasPrefix(a, "console=") {
				args = append(args, a)
			}
		}
	}
	args = append(args, "console=ttyS0", "systemd.show_status=1", "panic=-1")
	return strings.Join(append(args, extra...), " ")
}

// freePort asks the kernel for a free loopback port. Another process may
// take it before QEMU binds it; QEMU then fails to start and says so.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// HostPort is the loopback port forwarded to the guest's port, or 0.
func (v *VM) HostPort(guest int) int { return v.ports[guest] }

// Exited is closed when QEMU has exited.
func (v *VM) Exited() <-chan struct{} { return v.exited }

// Tail is the last n lines of the console.
func (v *VM) Tail(n int) []string { return v.console.tail(n) }

// Stop ends QEMU (SIGTERM, then SIGKILL after 10 s) and removes the run's
// directory. It is safe to call more than once and from a deferred call
// after a failed boot.
func (v *VM) Stop() error {
	v.stopOnce.Do(func() {
		if v.cmd != nil && v.cmd.Process != nil {
			select {
			case <-v.exited:
			default:
				_ = syscall.Kill(-v.cmd.Process.Pid, syscall.SIGTERM)
				select {
				case <-v.exited:
				case <-time.After(10 * time.Second):
					_ = syscall.Kill(-v.cmd.Process.Pid, syscall.SIGKILL)
					<-v.exited
				}
			}
		}
		if v.console != nil {
			v.console.close()
		}
		v.stopErr = os.RemoveAll(v.Dir)
	})
	return v.stopErr
}

// LoginPrompt is agetty's prompt on the serial console. There is no
// pattern for multi-user.target: systemd stops writing status lines to the
// console once a getty runs on it, usually before it reaches
// multi-user.target. VM.WaitActive asks systemd instead.
var LoginPrompt = regexp.MustCompile(`^\S+ login:(?: |$)`)

// BootError is a boot that did not get where it was waited for.
type BootError struct {
	Name   string
	Wanted string
	Reason string   // "timed out after 10m0s", "QEMU exited: ..."
	Tail   []string // the console's last lines
}

// TailLines is how many console lines a BootError carries.
const TailLines = 50

func (e *BootError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "boot %s: %s before %s", e.Name, e.Reason, e.Wanted)
	if len(e.Tail) > 0 {
		fmt.Fprintf(&b, "; the console's last %d lines:\n", len(e.Tail))
		for _, l := range e.Tail {
			b.WriteString("  | " + l + "\n")
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

// WaitConsole waits until a console line matches re and returns it with
// how long after Start it was read. It fails with a *BootError when ctx
// ends or QEMU exits first.
func (v *VM) WaitConsole(ctx context.Context, re *regexp.Regexp) (string, time.Duration, error) {
	return v.waitLine(ctx, re, time.Time{}, v.Started)
}

// WaitConsoleAfter is WaitConsole for a line read after t (the login
// prompt of the boot after a reset, not the one before it), with how long
// after t it was read.
func (v *VM) WaitConsoleAfter(ctx context.Context, re *regexp.Regexp, after time.Time) (string, time.Duration, error) {
	return v.waitLine(ctx, re, after, after)
}

// waitLine waits for a console line matching re read after after, and
// returns it with how long after since it was read.
func (v *VM) waitLine(ctx context.Context, re *regexp.Regexp, after, since time.Time) (string, time.Duration, error) {
	from := 0
	next := func() (line, bool) {
		for {
			l, n, ok := v.console.find(re, from)
			from = n // past every line looked at, matched or not
			if !ok {
				return line{}, false
			}
			if l.At.After(after) {
				return l, true
			}
		}
	}
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		if l, ok := next(); ok {
			return l.Text, l.At.Sub(since), nil
		}
		select {
		case <-ctx.Done():
			return "", 0, v.bootError(re.String(), fmt.Sprintf("%v after %s", context.Cause(ctx), time.Since(since).Round(time.Second)))
		case <-v.exited:
			// The log may still hold the line: read it all once more.
			v.console.close()
			if l, ok := next(); ok {
				return l.Text, l.At.Sub(since), nil
			}
			return "", 0, v.bootError(re.String(), "QEMU exited ("+v.exitReason()+")")
		case <-t.C:
		}
	}
}

func (v *VM) exitReason() string {
	msg := fmt.Sprint(v.waitErr)
	if v.waitErr == nil {
		msg = "exit 0: the guest powered off, rebooted or panicked"
	}
	if s := strings.TrimSpace(v.stderr.String()); s != "" {
		msg += ": " + s
	}
	return msg
}

func (v *VM) bootError(wanted, reason string) *BootError {
	return &BootError{Name: v.Machine.Name, Wanted: wanted, Reason: reason, Tail: v.console.tail(TailLines)}
}

// tailBuffer keeps the last 8 KiB of what QEMU says on stdout and stderr.
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 8<<10 {
		t.b = slices.Clone(t.b[len(t.b)-8<<10:])
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
