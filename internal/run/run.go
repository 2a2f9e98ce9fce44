// Package run executes external programs the one way applbuild allows:
// with a context, the command line logged at debug level, stderr captured
// into the error, and the Debian package named when the program is missing.
package run

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// packages maps a program to the Debian package that ships it, so a missing
// tool is reported with the exact apt-get line that fixes it.
var packages = map[string]string{
	"mke2fs":                  "e2fsprogs",
	"e2fsck":                  "e2fsprogs",
	"debugfs":                 "e2fsprogs",
	"tune2fs":                 "e2fsprogs",
	"mmdebstrap":              "mmdebstrap",
	"debootstrap":             "debootstrap",
	"qemu-system-x86_64":      "qemu-system-x86",
	"qemu-img":                "qemu-utils",
	"lvm":                     "lvm2",
	"pvck":                    "lvm2",
	"vgck":                    "lvm2",
	"pvs":                     "lvm2",
	"vgs":                     "lvm2",
	"lvs":                     "lvm2",
	"losetup":                 "mount",
	"blkid":                   "util-linux",
	"unshare":                 "util-linux",
	"mksquashfs":              "squashfs-tools",
	"unsquashfs":              "squashfs-tools",
	"crm_verify":              "pacemaker-cli-utils",
	"crm_simulate":            "pacemaker-cli-utils",
	"corosync":                "corosync",
	"corosync-qnetd":          "corosync-qnetd",
	"glusterfsd":              "glusterfs-server",
	"glusterfs":               "glusterfs-client",
	"apache2ctl":              "apache2",
	"monit":                   "monit",
	"sshd":                    "openssh-server",
	"ssh-keygen":              "openssh-client",
	"systemd-analyze":         "systemd",
	"systemd-nspawn":          "systemd-container",
	"drbdadm":                 "drbd-utils",
	"exportfs":                "nfs-kernel-server",
	"haproxy":                 "haproxy",
	"pound":                   "pound",
	"rsync":                   "rsync",
	"xz":                      "xz-utils",
	"zstd":                    "zstd",
	"bmaptool":                "bmap-tools",
	"sgdisk":                  "gdisk",
	"ip":                      "iproute2",
	"tar":                     "tar",
	"chroot":                  "coreutils",
	"svnserve":                "subversion",
	"svnadmin":                "subversion",
	"cvs":                     "cvs",
	"mariadbd":                "mariadb-server",
	"grub-mkimage":            "grub-common",
	"mkfs.vfat":               "dosfstools",
	"mcopy":                   "mtools",
	"mmd":                     "mtools",
	"mariadb-install-db":      "mariadb-server",
	"mariadb":                 "mariadb-client",
	"my_print_defaults":       "mariadb-client-core",
	"svn":                     "subversion",
	"shellcheck":              "shellcheck",
	"systemd-sysusers":        "systemd",
	"systemd-socket-activate": "systemd",
	"apache2":                 "apache2-bin",
	"dpkg-deb":                "dpkg",
	"apt-get":                 "apt",
	"ifup":                    "ifupdown",
	"ifquery":                 "ifupdown",
	"findmnt":                 "util-linux",
	"visudo":                  "sudo",
	"cibadmin":                "pacemaker-cli-utils",
	"ssh":                     "openssh-client",
	"gluster":                 "glusterfs-server",
	"mkswap":                  "util-linux",
	"ifdown":                  "ifupdown",
	"dsh":                     "dsh",
	"update-passwd":           "base-passwd",
}

// Package names the Debian package that provides prog, or "" if unknown.
func Package(prog string) string { return packages[prog] }

// MissingError says a program is not installed and which package provides it.
type MissingError struct {
	Program string
	Package string
}

func (e *MissingError) Error() string {
	if e.Package == "" {
		return fmt.Sprintf("%s: not found in PATH", e.Program)
	}
	return fmt.Sprintf("%s: not found in PATH (install it: apt-get install %s)", e.Program, e.Package)
}

// ErrMissing matches any MissingError with errors.Is.
var ErrMissing = errors.New("program not installed")

func (e *MissingError) Is(target error) bool { return target == ErrMissing }

// Look finds prog in PATH or returns a *MissingError naming its package.
func Look(prog string) (string, error) {
	p, err := exec.LookPath(prog)
	if err != nil {
		return "", &MissingError{Program: prog, Package: packages[prog]}
	}
	return p, nil
}

// Cmd describes one program run.
type Cmd struct {
	Args   []string  // program and arguments
	Env    []string  // extra KEY=VALUE on top of the inherited environment
	Dir    string    // working directory
	Stdin  io.Reader // optional
	Stdout io.Writer // optional; when nil, Output returns it
}

// Output runs args and returns stdout; on failure the error carries the
// command line, the exit status and the tail of stderr.
func Output(ctx context.Context, args ...string) ([]byte, error) {
	return (&Cmd{Args: args}).Output(ctx)
}

// Run runs args, discarding stdout.
func Run(ctx context.Context, args ...string) error {
	_, err := (&Cmd{Args: args}).Output(ctx)
	return err
}

// Output runs c and returns what it wrote on stdout (unless c.Stdout is set).
func (c *Cmd) Output(ctx context.Context) ([]byte, error) {
	if len(c.Args) == 0 {
		return nil, errors.New("run: empty command")
	}
	path, err := Look(c.Args[0])
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, path, c.Args[1:]...)
	cmd.Dir = c.Dir
	cmd.Stdin = c.Stdin
	if len(c.Env) > 0 {
		cmd.Env = append(cmd.Environ(), c.Env...)
	}
	var stdout bytes.Buffer
	if c.Stdout != nil {
		cmd.Stdout = c.Stdout
	} else {
		cmd.Stdout = &stdout
	}
	var stderr tail
	cmd.Stderr = &stderr
	// The program dies with the build, however the build ends. Its own
	// process group lets a cancellation kill it and everything it started
	// (and keeps a terminal's Ctrl-C from reaching it before applbuild has
	// decided what to do); Pdeathsig kills it when applbuild itself is
	// killed and cannot cancel anything.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }
	// A grandchild that escaped the group and still holds stdout or
	// stderr must not keep Wait from returning.
	cmd.WaitDelay = waitDelay
	slog.Debug("run", "cmd", strings.Join(c.Args, " "), "dir", c.Dir)
	if err := start(cmd); err != nil {
		if ctx.Err() != nil {
			return stdout.Bytes(), fmt.Errorf("%s: %w", c.Args[0], ctx.Err())
		}
		return stdout.Bytes(), &ExitError{Args: c.Args, Err: err, Stderr: stderr.String()}
	}
	return stdout.Bytes(), nil
}

// waitDelay is how long Wait waits for the program's output pipes to close
// after it was killed.
const waitDelay = 5 * time.Second

// start runs cmd to completion on one locked OS thread. Pdeathsig fires
// when the thread that started the child exits, not the process: Go may end
// an idle thread at any time, so the thread is kept until the child is gone.
func start(cmd *exec.Cmd) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return cmd.Run()
}

// killGroup kills the process group pid leads, and pid itself should it
// have left the group.
func killGroup(pid int) error {
	gerr := syscall.Kill(-pid, syscall.SIGKILL)
	perr := syscall.Kill(pid, syscall.SIGKILL)
	switch {
	case gerr == nil || perr == nil:
		return nil
	case errors.Is(gerr, syscall.ESRCH):
		return os.ErrProcessDone // exec.Cmd's word for "already gone"
	}
	return gerr
}

// ExitError is a program that ran and failed.
type ExitError struct {
	Args   []string
	Err    error
	Stderr string
}

func (e *ExitError) Error() string {
	msg := fmt.Sprintf("%s: %v", strings.Join(e.Args, " "), e.Err)
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += ":\n" + s
	}
	return msg
}

func (e *ExitError) Unwrap() error { return e.Err }

// Is matches syscall.ENOSPC when the program failed for want of disk
// space, as its message says (the exit status cannot): a full disk is
// reported the same way whichever program ran into it.
func (e *ExitError) Is(target error) bool {
	return target == syscall.ENOSPC && NoSpaceMessage(e.Stderr)
}

// NoSpaceMessage reports whether a program's output says the disk is full.
func NoSpaceMessage(s string) bool {
	return strings.Contains(s, "No space left on device") || strings.Contains(s, "Disk quota exceeded")
}

// tail keeps the last 8 KiB written to it: enough to explain a failure
// without holding a chatty program's whole stderr in memory.
type tail struct{ b []byte }

const tailMax = 8 << 10

func (t *tail) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > tailMax {
		t.b = append(t.b[:0], t.b[len(t.b)-tailMax:]...)
	}
	return len(p), nil
}

func (t *tail) String() string { return string(t.b) }
