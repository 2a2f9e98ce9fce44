package target

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/applbuild/applbuild/internal/run"
	"github.com/applbuild/applbuild/internal/testenv"
)

// TestWriteGPTImage: a partitioned image as sgdisk reads it: a clean
// table (sgdisk -v), every partition where the layout says with its type,
// GUID and name, each piece's bytes at its partition's start, and the
// pieces' holes still holes in the image.
func TestWriteGPTImage(t *testing.T) {
	testenv.Tools(t, "sgdisk")
	dir := t.TempDir()
	const mib = 1 << 20
	piece := func(name string, size int64, data []byte, at int64) string {
		path := filepath.Join(dir, name)
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(data, at); err != nil {
			t.Fatal(err)
		}
		return path
	}
	a := bytes.Repeat([]byte("A"), 4096)
	b := bytes.Repeat([]byte("B"), 8192)
	im := Image{File: "disk.img", Size: 12 * mib, Table: &GPT{
		GUID: "11111111-2222-4333-8444-555555555555",
		Partitions: []Partition{
			{Number: 1, Name: "one", Type: "21686148-6449-6E6F-744E-656564454649", GUID: "aaaaaaaa-0000-4000-8000-000000000001", Start: mib, Size: mib, Piece: "a"},
			{Number: 2, Name: "two", Type: "0FC63DAF-8483-4772-8E79-3D69D8477DE4", GUID: "aaaaaaaa-0000-4000-8000-000000000002", Start: 2 * mib, Size: 8 * mib, Piece: "b"},
		},
	}}
	pieces := map[string]string{"a": piece("a", 4096, a, 0), "b": piece("b", 8*mib, b, 6*mib)}
	out := filepath.Join(dir, "disk.img")
	if err := writeGPTImage(context.Background(), out, im, pieces); err != nil {
		t.Fatal(err)
	}
	v, err := run.Output(context.Background(), "sgdisk", "-v", out)
	if err != nil || !strings.Contains(string(v), "No problems found") {
		t.Fatalf("sgdisk -v: %v\n%s", err, v)
	}
	for _, pt := range im.Table.Partitions {
		info, err := run.Output(context.Background(), "sgdisk", "-i", string(rune('0'+pt.Number)), out)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{strings.ToUpper(pt.Type), strings.ToUpper(pt.GUID), "'" + pt.Name + "'",
			"First sector: " + itoa(pt.Start/512), "Last sector: " + itoa((pt.Start+pt.Size)/512-1)} {
			if !strings.Contains(string(info), want) {
				t.Errorf("partition %d: sgdisk -i lacks %q:\n%s", pt.Number, want, info)
			}
		}
	}
	img, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(img[mib:mib+4096], a) || !bytes.Equal(img[8*mib:8*mib+8192], b) {
		t.Error("a piece is not at its partition's start")
	}
	if !bytes.Equal(img[:446], make([]byte, 446)) || img[510] != 0x55 || img[511] != 0xaa || img[450] != 0xee {
		t.Error("sector 0 is not a protective MBR with empty boot code")
	}
	var st syscall.Stat_t
	if err := syscall.Stat(out, &st); err != nil {
		t.Fatal(err)
	}
	if used := st.Blocks * 512; used > 1*mib {
		t.Errorf("image uses %d bytes of 12 MiB: holes were filled", used)
	}
	// A piece larger than its partition is an error, not a truncation.
	pieces["a"] = piece("a2", 2*mib, a, 0)
	if err := writeGPTImage(context.Background(), out, im, pieces); err == nil || !strings.Contains(err.Error(), "the partition") {
		t.Errorf("oversized piece: %v", err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
