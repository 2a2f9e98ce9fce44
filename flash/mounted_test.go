package flash

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/applbuild/applbuild/internal/run"
	"github.com/applbuild/applbuild/internal/testenv"
)

// TestRefusesMounted mounts an ext4 loop device in a private mount
// namespace (unshare -m: the host never sees the mount, and it goes when
// the namespace's last process does) and runs TestMountedChild there.
func TestRefusesMounted(t *testing.T) {
	testenv.Tools(t, "unshare", "mke2fs")
	dir := t.TempDir()
	img := testImage(t, dir, 32*miB)
	dev, _ := loopDevice(t, 64*miB, 0)
	ctx := context.Background()
	if err := run.Run(ctx, "mke2fs", "-q", "-F", "-t", "ext4", dev); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	cmd := &run.Cmd{
		Args: []string{"unshare", "--mount", "--propagation", "private", "sh", "-c",
			`mount "$1" "$2" && exec "$3" -test.run '^TestMountedChild$' -test.v`, "sh", dev, mnt, os.Args[0]},
		Env: []string{"FLASH_TEST_MOUNTED=" + img + "|" + dev + "|" + mnt},
	}
	out, err := cmd.Output(ctx)
	if err != nil || !strings.Contains(string(out), "--- PASS: TestMountedChild") {
		t.Fatalf("in a private mount namespace: %v\n%s", err, out)
	}
}

// TestMountedChild is TestRefusesMounted's half inside the namespace.
func TestMountedChild(t *testing.T) {
	env := os.Getenv("FLASH_TEST_MOUNTED")
	if env == "" {
		t.Skip("run by TestRefusesMounted")
	}
	parts := strings.Split(env, "|")
	img, dev, mnt := parts[0], parts[1], parts[2]
	_, err := Flash(context.Background(), Options{Image: img, Target: dev, Force: true, Yes: true})
	want := filepath.Base(dev) + " is mounted on " + mnt
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), want) {
		t.Errorf("err = %v, want refused: %q", err, want)
	}
}
