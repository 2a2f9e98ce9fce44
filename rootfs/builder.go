package rootfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/applbuild/applbuild/internal/run"
)

// builder makes one rootfs tarball. Cache calls it with a fresh temporary
// directory, which it removes whatever build does or leaves behind.
type builder interface {
	// tool names the program and its version; it is part of every key.
	tool(ctx context.Context) (string, error)
	// build writes <dir>/rootfs.tar for the normalized request and returns
	// the installed packages. debs is a directory of .deb files shared by
	// all builds: it may take packages from there and should leave the ones
	// it downloaded there.
	build(ctx context.Context, req Request, dir, debs string, progress func(string)) ([]Package, error)
}

// findBuilder prefers mmdebstrap and falls back to debootstrap.
func findBuilder() (builder, error) {
	if _, err := run.Look("mmdebstrap"); err == nil {
		return mmdebstrap{}, nil
	}
	if _, err := run.Look("debootstrap"); err == nil {
		return debootstrap{}, nil
	}
	_, err := run.Look("mmdebstrap")
	return nil, fmt.Errorf("rootfs: no bootstrap tool: %w", err)
}

// resolvConf replaces the host's resolv.conf, which mmdebstrap and
// debootstrap copy in and which must not leak into an image.
const resolvConf = "# applbuild: the network configuration (overlay or DHCP) sets the nameservers\n"

// dpkgQueryFormat lists every package dpkg knows with its state, so that
// only installed ones are reported.
const dpkgQueryFormat = `${db:Status-Status}\t${Package}\t${Version}\t${Architecture}\n`

// statusFile is where the customize hook writes dpkg-query's output, in
// the build's temporary directory (outside the tree).
const statusFile = "dpkg-query.tsv"

type mmdebstrap struct{}

func (mmdebstrap) tool(ctx context.Context) (string, error) { return toolVersion(ctx, "mmdebstrap") }

func (mmdebstrap) build(ctx context.Context, req Request, dir, debs string, progress func(string)) ([]Package, error) {
	if os.Geteuid() != 0 {
		// As a user, unshare mode maps root to a subordinate uid that cannot
		// write the hooks' output into the cache; not needed yet.
		return nil, errors.New("mmdebstrap: building a rootfs needs root")
	}
	args := Command(req, dir, debs)
	lw := &lineWriter{emit: progress}
	_, err := (&run.Cmd{
		Args: args,
		// mmdebstrap makes its chroot under TMPDIR: inside our temporary
		// directory it is on the cache's file system (so the .deb hard
		// links work) and removed with it if the build is killed.
		Env:    []string{"SOURCE_DATE_EPOCH=" + strconv.FormatInt(req.SourceDateEpoch, 10), "TMPDIR=" + dir},
		Stdout: lw,
	}).Output(ctx)
	lw.flush()
	if err != nil {
		if ctx.Err() == nil {
			return nil, bootstrapError(err, req, lw)
		}
		return nil, err
	}
	return readStatus(filepath.Join(dir, statusFile))
}

// killGroup runs args as pid 1 of a new pid and mount namespace, which
// dies, and takes every process of the build with it, when the unshare
// process is killed (as exec does on context cancellation). The private
// mount namespace keeps any mount a maintainer script or the bootstrap tool
// makes off the host, whatever mode it runs in.
func killGroup(args []string) []string {
	return append([]string{"unshare", "--pid", "--fork", "--kill-child", "--mount", "--propagation=private", "--"}, args...)
}

// Command is the whole mmdebstrap command line a build of req runs, with
// the namespace wrapper, writing dir/rootfs.tar and sharing .debs with the
// debs directory: exported so the benchmark's floor runs exactly what a
// build runs. req must be normalized; run it with SOURCE_DATE_EPOCH set
// from req and TMPDIR=dir.
func Command(req Request, dir, debs string) []string {
	status := filepath.Join(dir, statusFile)
	args := []string{
		"mmdebstrap",
		"--mode=unshare",
		"--format=tar",
		"--variant=" + req.Variant,
		"--architectures=" + req.Arch,
		"--components=" + strings.Join(req.Components, ","),
		`--aptopt=Acquire::Retries "5"`,
		// Status lines go to stdout, which we read line by line; stderr
		// keeps the errors of the programs it runs, for the error message.
		"--logfile=/dev/stdout",
		// Keep the essential packages' .debs in the apt cache until the
		// customize hook has linked them into the shared cache; the cleanup
		// step empties the apt cache before the tarball is written.
		"--skip=essential/unlink",
		"--setup-hook=" + `mkdir -p "$1/var/cache/apt/archives" && { cp -al ` + shq(debs) + `/. "$1/var/cache/apt/archives/" 2>/dev/null || true; }`,
		"--customize-hook=" + `find "$1/var/cache/apt/archives" -maxdepth 1 -type f -name '*.deb' -exec cp -aln -t ` + shq(debs) + ` {} + 2>/dev/null || true`,
		"--customize-hook=" + strings.Join([]string{
			`set -e`,
			`rm -f "$1/etc/hostname"`,
			// openssh-server's postinst made host keys; every node built
			// from this entry would share them. First boot makes its own.
			`rm -f "$1"/etc/ssh/ssh_host_*_key "$1"/etc/ssh/ssh_host_*_key.pub`,
			`if [ ! -L "$1/etc/resolv.conf" ]; then printf '%s' ` + shq(resolvConf) + ` > "$1/etc/resolv.conf"; fi`,
			`chroot "$1" dpkg-query -W -f ` + shq(dpkgQueryFormat) + ` > ` + shq(status),
		}, "\n"),
	}
	for _, f := range req.Files {
		// Before the essential packages: nothing is installed yet.
		mode := "0644"
		if f.Executable {
			mode = "0755"
		}
		args = append(args, "--setup-hook="+`mkdir -p "$1"`+shq(filepath.Dir(f.Path))+` && printf '%s' `+shq(f.Content)+` > "$1"`+shq(f.Path)+
			` && chmod `+mode+` "$1"`+shq(f.Path))
	}
	if len(req.Packages) > 0 {
		args = append(args, "--include="+strings.Join(req.Packages, ","))
	}
	args = append(args, "--", req.Suite, filepath.Join(dir, tarballName), req.Mirror)
	return killGroup(args)
}

// readStatus parses dpkg-query's output, keeping installed packages.
func readStatus(path string) ([]Package, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("installed packages: %w", err)
	}
	var out []Package
	for i, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 4 {
			return nil, fmt.Errorf("installed packages: %s:%d: %q: want 4 fields", path, i+1, line)
		}
		if f[0] == "installed" {
			out = append(out, Package{Name: f[1], Version: f[2], Arch: f[3]})
		}
	}
	return out, nil
}

// toolVersion returns "prog version" from prog --version's first line.
func toolVersion(ctx context.Context, prog string) (string, error) {
	out, err := run.Output(ctx, prog, "--version")
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	f := strings.Fields(line)
	if len(f) < 2 {
		return "", fmt.Errorf("%s --version: unexpected output %q", prog, line)
	}
	return prog + " " + f[len(f)-1], nil
}

// shq quotes s for sh.
func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// lineWriter hands complete lines to emit and keeps the last few for an
// error message.
type lineWriter struct {
	emit func(string)
	buf  []byte
	last []string
}

const keepLines = 20

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.line(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func (w *lineWriter) line(s string) {
	s = strings.TrimRight(s, "\r")
	if s == "" {
		return
	}
	w.emit(s)
	w.last = append(w.last, s)
	if len(w.last) > keepLines {
		w.last = w.last[len(w.last)-keepLines:]
	}
}

func (w *lineWriter) flush() {
	if len(w.buf) > 0 {
		w.line(string(w.buf))
		w.buf = nil
	}
}

func (w *lineWriter) tail() string { return strings.Join(w.last, "\n") }

// MirrorError is a bootstrap that could not get what it needs from the
// Debian mirror: unreachable, unknown host, or no such suite there.
type MirrorError struct {
	Mirror string
	Detail string // apt's own line about it
	Err    error  // the bootstrap tool's failure, with its whole output
}

func (e *MirrorError) Error() string {
	return fmt.Sprintf("the Debian mirror %s cannot be used: %s; check the network and the mirror (the spec's mirror:, or --set mirror=URL)",
		e.Mirror, e.Detail)
}

func (e *MirrorError) Unwrap() error { return e.Err }

// mirrorFailure finds apt's report of a mirror it could not use among a
// bootstrap's last status lines, or "".
func mirrorFailure(lines string) string {
	for _, l := range strings.Split(lines, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "E: Failed to fetch ") || strings.HasPrefix(l, "E: The repository ") ||
			strings.HasPrefix(l, "E: Release file for ") {
			return strings.TrimPrefix(l, "E: ")
		}
	}
	for _, l := range strings.Split(lines, "\n") {
		l = strings.TrimSpace(l)
		for _, s := range []string{"Could not connect to", "Could not resolve", "Temporary failure resolving", "Connection timed out", "Failed getting release file"} {
			if strings.Contains(l, s) {
				return strings.TrimPrefix(l, "E: ")
			}
		}
	}
	return ""
}

// bootstrapError explains a failed bootstrap by what its output says.
func bootstrapError(err error, req Request, lw *lineWriter) error {
	t := lw.tail()
	if d := mirrorFailure(t); d != "" {
		return &MirrorError{Mirror: req.Mirror, Detail: d, Err: err}
	}
	if run.NoSpaceMessage(t) {
		err = fmt.Errorf("%w: %w", syscall.ENOSPC, err)
	}
	if t != "" {
		return fmt.Errorf("%w\nlast status lines:\n%s", err, t)
	}
	return err
}
