package compress

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"

	"github.com/applbuild/applbuild/internal/run"
	"github.com/applbuild/applbuild/internal/testenv"
)

// TestXZFile compresses a sparse ext4 image; xz -d and bmaptool (with the
// bmap) give it back byte for byte.
func TestXZFile(t *testing.T) {
	testenv.Tools(t, "xz", "bmaptool", "cmp")
	ctx := context.Background()
	dir := t.TempDir()
	img := ext4Image(t, dir, 64*miB)
	_, bmap := writeBmap(t, img, BmapOptions{})
	xz := img + ".xz"
	if err := XZFile(ctx, xz, img, XZOptions{Level: 1}); err != nil {
		t.Fatal(err)
	}
	if err := run.Run(ctx, "xz", "--test", xz); err != nil {
		t.Fatalf("xz --test: %v", err)
	}
	raw := filepath.Join(dir, "unxz.raw")
	f, _ := os.Create(raw)
	_, err := (&run.Cmd{Args: []string{"xz", "-dc", xz}, Stdout: f}).Output(ctx)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Run(ctx, "cmp", img, raw); err != nil {
		t.Errorf("xz -d: %v", err)
	}
	out := filepath.Join(dir, "bmap.raw")
	if err := run.Run(ctx, "bmaptool", "copy", "--bmap", bmap, xz, out); err != nil {
		t.Fatal(err)
	}
	if err := run.Run(ctx, "cmp", img, out); err != nil {
		t.Errorf("bmaptool copy: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".xz-*")); len(left) > 0 {
		t.Errorf("temp files left: %v", left)
	}
}

// TestXZSameBytesOnAnyMachine: the .xz of an image must not depend on how
// many CPUs compressed it, or a rebuild elsewhere is not bit-identical.
// Plain -T1 is xz's single-threaded mode (one block); the 3 MiB blocks of -1 in
// multi-threaded mode need more input than one block to show the split.
func TestXZSameBytesOnAnyMachine(t *testing.T) {
	testenv.Tools(t, "xz")
	data := make([]byte, 7*miB) // -1 blocks are 3 × its 1 MiB dictionary
	for i := range data {
		data[i] = byte(i*i>>9 + i>>12)
	}
	var sums [][32]byte
	for _, threads := range []int{1, 2, 3} {
		var out bytes.Buffer
		if err := XZ(context.Background(), &out, bytes.NewReader(data), XZOptions{Level: 1, Threads: threads}); err != nil {
			t.Fatal(err)
		}
		sums = append(sums, sha256.Sum256(out.Bytes()))
	}
	if sums[0] != sums[1] || sums[1] != sums[2] {
		t.Error("1, 2 and 3 threads give different .xz bytes")
	}
}

func TestXZRefusesLevel(t *testing.T) {
	if err := XZ(context.Background(), &bytes.Buffer{}, bytes.NewReader(nil), XZOptions{Level: 10}); err == nil {
		t.Error("level 10 accepted")
	}
}

func TestXZInterrupted(t *testing.T) {
	testenv.Tools(t, "xz")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dst := filepath.Join(t.TempDir(), "x.xz")
	src := filepath.Join(t.TempDir(), "img")
	sparseImage(t, src, miB, map[int64][]byte{0: {1}})
	if err := XZFile(ctx, dst, src, XZOptions{}); err == nil {
		t.Error("no error from a cancelled compression")
	}
	if _, err := os.Stat(dst); err == nil {
		t.Error("a cancelled compression left its output")
	}
}
