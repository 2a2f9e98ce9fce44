package compress

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/applbuild/applbuild/internal/run"
	"github.com/applbuild/applbuild/internal/testenv"
)

const miB = 1 << 20

// sparseImage makes a size-byte sparse file at path with data written at
// the given offsets (each a run of bytes of one value).
func sparseImage(t *testing.T, path string, size int64, writes map[int64][]byte) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for off, b := range writes {
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
}

// ext4Image makes a real, sparse ext4 image of a small tree with mke2fs -d:
// what the targets compress and map.
func ext4Image(t *testing.T, dir string, size int64) string {
	t.Helper()
	testenv.Tools(t, "mke2fs")
	tree := filepath.Join(dir, "tree")
	for i, content := range []string{"hello\n", string(make([]byte, 300<<10)), "world\n"} {
		sub := filepath.Join(tree, "d", string(rune('a'+i)))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sub, "f"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Some incompressible bytes, so a range checksum has something to catch.
	rnd := make([]byte, 2*miB)
	for i := range rnd {
		rnd[i] = byte(i*7919 + i>>8*31)
	}
	if err := os.WriteFile(filepath.Join(tree, "blob"), rnd, 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "root.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(size)
	f.Close()
	if err := run.Run(context.Background(), "mke2fs", "-q", "-F", "-t", "ext4", "-d", tree, img); err != nil {
		t.Fatal(err)
	}
	return img
}

func writeBmap(t *testing.T, img string, opts BmapOptions) (*Bmap, string) {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := MakeBmap(context.Background(), f, opts)
	if err != nil {
		t.Fatal(err)
	}
	path := img + ".bmap"
	if err := os.WriteFile(path, m.Marshal(), 0o644); err != nil {
		t.Fatal(err)
	}
	return m, path
}
