package disk

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestCopySparse(t *testing.T) {
	dir := t.TempDir()
	// src: 8 MiB, data at 1 MiB (64 KiB, with a zero 4 KiB block inside)
	// and in the last 4 KiB; holes elsewhere.
	src := filepath.Join(dir, "src")
	if err := createSparse(src, 8*miB); err != nil {
		t.Fatal(err)
	}
	sf, err := os.OpenFile(src, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	chunk := bytes.Repeat([]byte{0xab}, 64*1024)
	clear(chunk[8192:12288])
	sf.WriteAt(chunk, miB)
	sf.WriteAt(bytes.Repeat([]byte{0xcd}, 4096), 8*miB-4096)
	want, _ := os.ReadFile(src)

	tests := []struct {
		name                  string
		dstOff, srcOff, n     int64
		wantWritten, wantSize int64
	}{
		{"whole file at an offset", 3 * miB, 0, 8 * miB, 60*1024 + 4096, 11 * miB},
		{"middle range", 0, miB + 4096, 4096 * 3, 4096 * 2, 4096 * 3},
		{"only holes", 0, 2 * miB, miB, 0, miB},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "dst")
			df, err := os.Create(dst)
			if err != nil {
				t.Fatal(err)
			}
			defer df.Close()
			w, err := CopySparse(context.Background(), df, tt.dstOff, sf, tt.srcOff, tt.n)
			if err != nil {
				t.Fatal(err)
			}
			if w != tt.wantWritten {
				t.Errorf("wrote %d bytes, want %d", w, tt.wantWritten)
			}
			got, _ := os.ReadFile(dst)
			if int64(len(got)) != tt.wantSize {
				t.Fatalf("dst is %d bytes, want %d", len(got), tt.wantSize)
			}
			if !bytes.Equal(got[tt.dstOff:], want[tt.srcOff:tt.srcOff+tt.n]) {
				t.Error("content differs")
			}
			var st syscall.Stat_t
			syscall.Stat(dst, &st)
			if st.Blocks*512 > tt.wantWritten+64*1024 {
				t.Errorf("dst uses %d bytes on disk for %d written: not sparse", st.Blocks*512, tt.wantWritten)
			}
		})
	}
}
