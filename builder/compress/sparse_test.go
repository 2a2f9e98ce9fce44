package compress

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"
)

func TestSparseReader(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "img")
	sparseImage(t, img, 3*miB+7, map[int64][]byte{
		5:         []byte("head"),
		miB:       bytes.Repeat([]byte{0xee}, 70000),
		3*miB + 3: []byte("tail"),
	})
	want, _ := os.ReadFile(img)
	f, _ := os.Open(img)
	defer f.Close()
	ext, err := DataExtents(f, 3*miB+7)
	if err != nil {
		t.Fatal(err)
	}
	if len(ext) != 3 || ext[0].Off != 0 || ext[2].End() != 3*miB+7 {
		t.Errorf("extents %v: want three, from 0 to the end", ext)
	}
	r, err := NewSparseReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := iotest.TestReader(r, want); err != nil {
		t.Error(err)
	}
	// Odd-sized reads across the edges of extents and holes.
	r, _ = NewSparseReader(f)
	got, err := io.ReadAll(iotest.OneByteReader(io.LimitReader(r, 1<<20+4096)))
	if err != nil || !bytes.Equal(got, want[:1<<20+4096]) {
		t.Errorf("one byte at a time: %v", err)
	}
}
