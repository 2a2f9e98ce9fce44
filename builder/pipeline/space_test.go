package pipeline

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/applbuild/applbuild/internal/testenv"
)

const diskFullEnv = "APPLBUILD_TEST_DISK_FULL"

// TestBuildDiskFull builds onto a small tmpfs (in a mount namespace of its
// own, so the host never sees it): once with room, then with a tree that
// does not fit. The second build fails naming the directory, what it
// needed and what to do; the first build's output is untouched and nothing
// else is left on the file system.
func TestBuildDiskFull(t *testing.T) {
	if os.Getenv(diskFullEnv) == "" {
		testenv.Root(t)
		testenv.Tools(t, "unshare", "mke2fs", "debugfs", "cp", "systemd-sysusers")
		cmd := exec.Command("unshare", "--mount", "--propagation=private", "--",
			os.Args[0], "-test.run=^TestBuildDiskFull$", "-test.v")
		cmd.Env = append(os.Environ(), diskFullEnv+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestBuildDiskFull") {
			t.Fatalf("in a mount namespace: %v\n%s", err, out)
		}
		return
	}
	out := t.TempDir()
	if err := syscall.Mount("tmpfs", out, "tmpfs", 0, "size=48m"); err != nil {
		t.Fatalf("mount a tmpfs: %v", err)
	}
	defer syscall.Unmount(out, syscall.MNT_DETACH)
	tree := fakeTree(t, zstdMagic)
	res, err := Build(context.Background(), fakeOptions(t, tree, out))
	if err != nil {
		t.Fatalf("first build, with room: %v", err)
	}
	before, _ := os.ReadFile(filepath.Join(res.Dir, ManifestName))

	// 40 MB of data that does not compress: the tree and its image need
	// twice that on a file system with 48 MB.
	big := make([]byte, 40<<20)
	for i := range big {
		big[i] = byte(i*7 + i>>13)
	}
	if err := os.WriteFile(filepath.Join(tree, "usr/bin/big"), big, 0o755); err != nil {
		t.Fatal(err)
	}
	o := fakeOptions(t, tree, out)
	o.Plan.Nodes[0].Disks[0].Size = 128 << 20
	_, err = Build(context.Background(), o)
	var ns *NoSpaceError
	if !errors.As(err, &ns) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("build on a full disk = %v, want a NoSpaceError", err)
	}
	msg := err.Error()
	t.Log(msg)
	for _, want := range []string{"out of disk space in " + filepath.Join(out, "tiny"), "this build needs about ", "was free when it started", "pass --out a directory on a larger file system"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	after, _ := os.ReadFile(filepath.Join(res.Dir, ManifestName))
	if len(before) == 0 || string(before) != string(after) {
		t.Error("the previous output changed")
	}
	onlyOutput(t, out)
}
