package compress

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/applbuild/applbuild/internal/run"
	"github.com/applbuild/applbuild/internal/testenv"
)

func TestMakeBmapRanges(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "img")
	data := bytes.Repeat([]byte{0xab}, 3*BlockSize)
	clear(data[BlockSize : 2*BlockSize]) // a zero block written as data
	// 1 MiB + 100 bytes: the last block is partial and holds data.
	sparseImage(t, img, miB+100, map[int64][]byte{
		0:                {1},    // block 0
		10 * BlockSize:   data,   // blocks 10-12, 11 all zero
		13*BlockSize + 5: {2, 3}, // block 13: touches 10-12
		miB + 90:         {4},    // block 256, partial
	})
	for _, tt := range []struct {
		name string
		opts BmapOptions
		want [][2]int64
	}{
		{"holes only", BmapOptions{}, [][2]int64{{0, 0}, {10, 13}, {256, 256}}},
		{"zero blocks dropped", BmapOptions{DropZeroBlocks: true}, [][2]int64{{0, 0}, {10, 10}, {12, 13}, {256, 256}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := writeBmap(t, img, tt.opts)
			var got [][2]int64
			for _, r := range m.Ranges {
				got = append(got, [2]int64{r.First, r.Last})
			}
			if !equalRanges(got, tt.want) {
				t.Fatalf("ranges %v, want %v", got, tt.want)
			}
			if m.BlocksCount() != 257 || m.ImageSize != miB+100 {
				t.Errorf("BlocksCount %d, ImageSize %d", m.BlocksCount(), m.ImageSize)
			}
			raw, _ := os.ReadFile(img)
			for _, r := range m.Ranges {
				e := m.Extent(r)
				sum := sha256.Sum256(raw[e.Off:e.End()])
				if hex.EncodeToString(sum[:]) != r.SHA256 {
					t.Errorf("range %d-%d: chksum is not the sha256 of its bytes", r.First, r.Last)
				}
			}
		})
	}
}

func equalRanges(a, b [][2]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestBmapFileChecksum checks the format's rule directly: the sha256 of
// the file with that field's value replaced by 64 zeros.
func TestBmapFileChecksum(t *testing.T) {
	m := &Bmap{ImageSize: 3 * BlockSize, BlockSize: BlockSize,
		Ranges: []BlockRange{{First: 1, Last: 2, SHA256: strings.Repeat("a", 64)}}}
	out := m.Marshal()
	i := bytes.Index(out, []byte("<BmapFileChecksum> ")) + len("<BmapFileChecksum> ")
	field := string(out[i : i+64])
	zeroed := bytes.Clone(out)
	copy(zeroed[i:], strings.Repeat("0", 64))
	if sum := sha256.Sum256(zeroed); hex.EncodeToString(sum[:]) != field {
		t.Errorf("BmapFileChecksum %s is not the sha256 of the zeroed file", field)
	}
	got, err := ParseBmap(out)
	if err != nil {
		t.Fatal(err)
	}
	if got.ImageSize != m.ImageSize || len(got.Ranges) != 1 || got.Ranges[0] != m.Ranges[0] {
		t.Errorf("round trip: %+v, want %+v", got, m)
	}
}

func TestParseBmapRefuses(t *testing.T) {
	m := &Bmap{ImageSize: 8 * BlockSize, BlockSize: BlockSize,
		Ranges: []BlockRange{{First: 0, Last: 1, SHA256: strings.Repeat("b", 64)}, {First: 4, Last: 4, SHA256: strings.Repeat("c", 64)}}}
	good := string(m.Marshal())
	// resum recomputes the file checksum, so that only the named fault is left.
	resum := func(s string) string {
		i := strings.Index(s, "<BmapFileChecksum> ") + len("<BmapFileChecksum> ")
		z := s[:i] + strings.Repeat("0", 64) + s[i+64:]
		sum := sha256.Sum256([]byte(z))
		return s[:i] + hex.EncodeToString(sum[:]) + s[i+64:]
	}
	for _, tt := range []struct{ name, bmap, want string }{
		{"edited, checksum kept", strings.Replace(good, "> 4 <", "> 5 <", 1), "checksum does not match"},
		{"cut short", good[:len(good)-40], "bad bmap"},
		{"version 1.4", resum(strings.Replace(good, `version="2.0"`, `version="1.4"`, 1)), "only 2.x"},
		{"ranges overlap", resum(strings.Replace(good, "> 4 <", "> 1 <", 1)), "not a block range"},
		{"range outside", resum(strings.Replace(good, "> 4 <", "> 8 <", 1)), "not a block range"},
		{"wrong count", resum(strings.Replace(good, "<BlocksCount> 8 ", "<BlocksCount> 9 ", 1)), "does not match ImageSize"},
		{"wrong mapped count", resum(strings.Replace(good, "<MappedBlocksCount> 3 ", "<MappedBlocksCount> 4 ", 1)), "cover 3"},
		{"md5", resum(strings.Replace(good, "> sha256 <", "> md5 <", 1)), "only sha256"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseBmap([]byte(tt.bmap))
			if !errors.Is(err, ErrBadBmap) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want ErrBadBmap with %q", err, tt.want)
			}
		})
	}
}

// TestBmaptoolAccepts is the proof that matters: Debian's bmaptool reads
// our bmap, copies the image (raw and xz-compressed) byte for byte, and
// refuses a corrupted bmap or image.
func TestBmaptoolAccepts(t *testing.T) {
	testenv.Tools(t, "bmaptool", "xz", "cmp")
	ctx := context.Background()
	dir := t.TempDir()
	img := ext4Image(t, dir, 64*miB)
	m, bmap := writeBmap(t, img, BmapOptions{})
	if m.MappedBlocks() == 0 || m.MappedBlocks() == m.BlocksCount() {
		t.Fatalf("%d of %d blocks mapped: the ext4 image is not sparse", m.MappedBlocks(), m.BlocksCount())
	}
	if err := run.Run(ctx, "xz", "-k", "-T2", "-1", img); err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{img, img + ".xz"} {
		out := filepath.Join(dir, "out.raw")
		os.Remove(out)
		if err := run.Run(ctx, "bmaptool", "copy", "--bmap", bmap, src, out); err != nil {
			t.Fatalf("bmaptool copy %s: %v", filepath.Base(src), err)
		}
		if err := run.Run(ctx, "cmp", img, out); err != nil {
			t.Errorf("bmaptool copy of %s is not the image: %v", filepath.Base(src), err)
		}
	}

	good, _ := os.ReadFile(bmap)
	t.Run("edited bmap", func(t *testing.T) {
		bad := filepath.Join(dir, "edited.bmap")
		r := m.Ranges[len(m.Ranges)-1]
		edited := bytes.Replace(good, []byte(r.SHA256), []byte(strings.Repeat("1", 64)), 1)
		os.WriteFile(bad, edited, 0o644)
		err := run.Run(ctx, "bmaptool", "copy", "--bmap", bad, img, filepath.Join(dir, "x.raw"))
		if err == nil || !strings.Contains(err.Error(), "checksum") {
			t.Errorf("bmaptool took an edited bmap: %v", err)
		}
	})
	t.Run("corrupted image", func(t *testing.T) {
		bad := filepath.Join(dir, "bad.img")
		raw, _ := os.ReadFile(img)
		e := m.Extent(m.Ranges[len(m.Ranges)/2])
		raw[e.Off+e.Len/2] ^= 0xff
		os.WriteFile(bad, raw, 0o644)
		err := run.Run(ctx, "bmaptool", "copy", "--bmap", bmap, bad, filepath.Join(dir, "y.raw"))
		if err == nil || !strings.Contains(err.Error(), "checksum") {
			t.Errorf("bmaptool copied a corrupted image: %v", err)
		}
	})
	t.Run("bmaptool create maps a superset of zeros", func(t *testing.T) {
		// bmaptool maps with FIEMAP, which also counts extents allocated
		// but never written (mke2fs fallocates its journal); SEEK_DATA
		// counts them as holes. Every block we map must be one of
		// bmaptool's, and every block only bmaptool maps must read as zeros.
		theirs, err := run.Output(ctx, "bmaptool", "create", img)
		if err != nil {
			t.Fatal(err)
		}
		tm, err := ParseBmap(theirs)
		if err != nil {
			t.Fatalf("bmaptool's own bmap: %v", err)
		}
		ours, their := blockSet(m), blockSet(tm)
		raw, _ := os.ReadFile(img)
		zero := make([]byte, BlockSize)
		for b := range ours {
			if !their[b] {
				t.Errorf("we map block %d, bmaptool does not", b)
			}
		}
		for b := range their {
			if !ours[b] && !bytes.Equal(raw[b*BlockSize:(b+1)*BlockSize], zero) {
				t.Errorf("block %d holds data but is not mapped", b)
			}
		}
		t.Logf("bmaptool maps %d blocks, we %d", tm.MappedBlocks(), m.MappedBlocks())
	})
}

func blockSet(m *Bmap) map[int64]bool {
	set := map[int64]bool{}
	for _, r := range m.Ranges {
		for b := r.First; b <= r.Last; b++ {
			set[b] = true
		}
	}
	return set
}
