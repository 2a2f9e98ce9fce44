package flash

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/applbuild/applbuild/builder/compress"
	"github.com/applbuild/applbuild/internal/run"
	"github.com/applbuild/applbuild/internal/testenv"
)

const miB = 1 << 20

// testImage makes a sparse ext4 image of a small tree (mke2fs -d), its
// bmap beside it, and returns the image's path.
func testImage(t *testing.T, dir string, size int64) string {
	t.Helper()
	testenv.Tools(t, "mke2fs", "xz")
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(filepath.Join(tree, "etc"), 0o755)
	os.WriteFile(filepath.Join(tree, "etc", "hostname"), []byte("n1\n"), 0o644)
	blob := make([]byte, 3*miB)
	for i := range blob {
		blob[i] = byte(i*2654435761>>13 + i)
	}
	os.WriteFile(filepath.Join(tree, "blob"), blob, 0o644)
	img := filepath.Join(dir, "n1.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(size)
	f.Close()
	if err := run.Run(context.Background(), "mke2fs", "-q", "-F", "-t", "ext4", "-d", tree, img); err != nil {
		t.Fatal(err)
	}
	f, _ = os.Open(img)
	defer f.Close()
	m, err := compress.MakeBmap(context.Background(), f, compress.BmapOptions{})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "n1.img.bmap"), m.Marshal(), 0o644)
	return img
}

// xzImage compresses img beside it (n1.img.xz) and returns that path.
func xzImage(t *testing.T, img string) string {
	t.Helper()
	if err := run.Run(context.Background(), "xz", "-k", "-f", "-T2", "-1", img); err != nil {
		t.Fatal(err)
	}
	return img + ".xz"
}

// loopDevice attaches a size-byte sparse file filled with 0xaa in its first
// fill bytes to a free loop device, detached when the test ends (also when
// it fails). It returns the device and its backing file.
func loopDevice(t *testing.T, size, fill int64) (dev, file string) {
	t.Helper()
	testenv.Root(t)
	testenv.Tools(t, "losetup")
	file = filepath.Join(t.TempDir(), "stick")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	garbage := []byte(strings.Repeat("\xaa", miB))
	for off := int64(0); off < fill; off += miB {
		f.WriteAt(garbage[:min(miB, fill-off)], off)
	}
	f.Close()
	var lastErr error
	for range 5 { // other tests race for free devices
		out, err := run.Output(context.Background(), "losetup", "--find", "--show", file)
		if err == nil {
			dev = strings.TrimSpace(string(out))
			t.Cleanup(func() {
				if err := run.Run(context.Background(), "losetup", "--detach", dev); err != nil {
					t.Errorf("detach %s: %v", dev, err)
				}
			})
			return dev, file
		}
		lastErr = err
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("losetup %s: %v", file, lastErr)
	return "", ""
}

func cmpFiles(t *testing.T, a, b string, n int64) {
	t.Helper()
	args := []string{"cmp"}
	if n > 0 {
		args = append(args, "-n", strconvI(n))
	}
	if err := run.Run(context.Background(), append(args, a, b)...); err != nil {
		t.Errorf("%s and %s differ: %v", a, b, err)
	}
}

func strconvI(n int64) string { return strconv.FormatInt(n, 10) }
