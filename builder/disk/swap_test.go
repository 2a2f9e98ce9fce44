package disk

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/applbuild/applbuild/internal/run"
	"github.com/applbuild/applbuild/internal/testenv"
)

func TestMakeSwap(t *testing.T) {
	testenv.Tools(t, "blkid", "mkswap")
	ctx := context.Background()
	dir := t.TempDir()
	ours := filepath.Join(dir, "ours.swap")
	uuid := UUIDFromSeed("n1", "swap")
	if err := MakeSwap(ours, 64*miB+100, uuid, "swap-n1"); err != nil {
		t.Fatal(err)
	}
	out, err := run.Output(ctx, "blkid", "-p", "-o", "export", ours)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"TYPE=swap", "UUID=" + uuid, "LABEL=swap-n1", "VERSION=1"} {
		if !strings.Contains(string(out), want+"\n") {
			t.Errorf("blkid: no %s in\n%s", want, out)
		}
	}

	// mkswap's header for the same size, UUID and label, byte for byte.
	theirs := filepath.Join(dir, "mkswap.swap")
	if err := createSparse(theirs, 64*miB); err != nil {
		t.Fatal(err)
	}
	if _, err := run.Output(ctx, "mkswap", "-p", "4096", "-U", uuid, "-L", "swap-n1", theirs); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(ours)
	b, _ := os.ReadFile(theirs)
	if len(a) != len(b) {
		t.Fatalf("size %d, mkswap's %d", len(a), len(b))
	}
	fields := []struct {
		name     string
		from, to int
	}{
		{"bootbits", 0, 1024}, {"version", 1024, 1028}, {"last_page", 1028, 1032},
		{"nr_badpages", 1032, 1036}, {"uuid", 1036, 1052}, {"volume", 1052, 1068},
		{"padding", 1068, 4086}, {"magic", 4086, 4096},
	}
	for _, f := range fields {
		if !bytes.Equal(a[f.from:f.to], b[f.from:f.to]) {
			t.Errorf("%s: ours %x, mkswap %x", f.name, a[f.from:f.to], b[f.from:f.to])
		}
	}
	if !bytes.Equal(a, b) {
		t.Error("the area after the header differs from mkswap's")
	}
}

func TestMakeSwapRefuses(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name  string
		size  int64
		uuid  string
		label string
		want  string
	}{
		{"bad uuid", miB, "x", "", "uuid"},
		{"long label", miB, testUUID, strings.Repeat("l", 17), "longer than 16"},
		{"too small", 9 * 4096, testUUID, "", "minimum of 10 pages"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := MakeSwap(filepath.Join(dir, "s"), tt.size, tt.uuid, tt.label)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
