package rootfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/applbuild/applbuild/internal/run"
)

// debootstrap is the fallback builder for hosts without mmdebstrap. It is
// less tested than mmdebstrap: it builds into a directory, then this code
// does what mmdebstrap's hooks and cleanup do, then GNU tar packs the tree
// with the same options mmdebstrap uses.
type debootstrap struct{}

func (debootstrap) tool(ctx context.Context) (string, error) { return toolVersion(ctx, "debootstrap") }

// debootstrapVariant maps mmdebstrap's variants onto debootstrap's three.
func debootstrapVariant(v string) string {
	switch v {
	case "buildd":
		return "buildd"
	case "important", "debootstrap", "standard":
		return "" // debootstrap's default: required + important
	default:
		return "minbase"
	}
}

func (debootstrap) build(ctx context.Context, req Request, dir, debs string, progress func(string)) ([]Package, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("debootstrap: building a rootfs needs root")
	}
	root := filepath.Join(dir, "root")
	args := []string{"debootstrap", "--arch=" + req.Arch, "--components=" + strings.Join(req.Components, ","), "--cache-dir=" + debs}
	if v := debootstrapVariant(req.Variant); v != "" {
		args = append(args, "--variant="+v)
	}
	if len(req.Packages) > 0 {
		args = append(args, "--include="+strings.Join(req.Packages, ","))
	}
	// No "--": debootstrap rejects it. Normalize guarantees the suite does
	// not start with "-", and root is absolute.
	args = append(args, req.Suite, root, req.Mirror)
	lw := &lineWriter{emit: progress}
	env := []string{"SOURCE_DATE_EPOCH=" + strconv.FormatInt(req.SourceDateEpoch, 10), "TMPDIR=" + dir}
	_, err := (&run.Cmd{Args: killGroup(args), Env: env, Stdout: lw}).Output(ctx)
	lw.flush()
	if err != nil {
		// debootstrap prints its errors on stdout.
		if ctx.Err() == nil {
			return nil, bootstrapError(err, req, lw)
		}
		return nil, err
	}
	status, err := run.Output(ctx, "chroot", root, "dpkg-query", "-W", "-f", dpkgQueryFormat)
	if err != nil {
		return nil, err
	}
	statusPath := filepath.Join(dir, statusFile)
	if err := os.WriteFile(statusPath, status, 0o644); err != nil {
		return nil, err
	}
	pkgs, err := readStatus(statusPath)
	if err != nil {
		return nil, err
	}
	if err := tidyTree(root); err != nil {
		return nil, err
	}
	progress("I: creating tarball...")
	if err := packTree(ctx, root, filepath.Join(dir, tarballName), req.SourceDateEpoch); err != nil {
		return nil, err
	}
	return pkgs, nil
}

// tidyTree does to a debootstrap tree what mmdebstrap's hooks and cleanup
// step do: no host name, no host resolver, no apt lists or cache, no logs
// or ids that differ between builds.
func tidyTree(root string) error {
	var errs []error
	rm := func(rel string) {
		if err := os.RemoveAll(filepath.Join(root, rel)); err != nil {
			errs = append(errs, err)
		}
	}
	rmGlob := func(pattern string) {
		m, _ := filepath.Glob(filepath.Join(root, pattern))
		for _, p := range m {
			if err := os.RemoveAll(p); err != nil {
				errs = append(errs, err)
			}
		}
	}
	rm("etc/hostname")
	rmGlob("etc/ssh/ssh_host_*_key")
	rmGlob("etc/ssh/ssh_host_*_key.pub")
	if fi, err := os.Lstat(filepath.Join(root, "etc/resolv.conf")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		errs = append(errs, os.WriteFile(filepath.Join(root, "etc/resolv.conf"), []byte(resolvConf), 0o644))
	}
	if _, err := os.Stat(filepath.Join(root, "etc/machine-id")); err == nil {
		errs = append(errs, os.WriteFile(filepath.Join(root, "etc/machine-id"), nil, 0o444))
	}
	rm("var/lib/dbus/machine-id")
	rmGlob("var/lib/apt/lists/*_*")
	rmGlob("var/cache/apt/*.bin")
	rmGlob("var/cache/apt/archives/*.deb")
	for _, f := range []string{"var/log/dpkg.log", "var/log/apt/history.log", "var/log/apt/term.log", "var/log/alternatives.log", "var/log/bootstrap.log", "var/cache/ldconfig/aux-cache", "var/log/apt/eipp.log.xz"} {
		rm(f)
	}
	rmGlob("run/*")
	rmGlob("tmp/*")
	rmGlob("tmp/.[!.]*")
	return errors.Join(errs...)
}

// packTree writes root as a reproducible pax tarball, as mmdebstrap does.
func packTree(ctx context.Context, root, tarball string, epoch int64) error {
	_, err := (&run.Cmd{
		Args: []string{
			"tar", "--sort=name", "--mtime=@" + strconv.FormatInt(epoch, 10), "--clamp-mtime",
			"--numeric-owner", "--one-file-system", "--format=pax",
			"--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
			"--xattrs", "--xattrs-include=*",
			"-C", root, "-cf", tarball, ".",
		},
	}).Output(ctx)
	if err != nil {
		return fmt.Errorf("pack rootfs: %w", err)
	}
	return nil
}
