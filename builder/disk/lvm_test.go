package disk

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// crcBitwise is lvm2's calc_crc done one bit at a time, written from the
// definition (reflected polynomial 0xedb88320, no inversions), to check
// the table-driven lvmCRC against.
func crcBitwise(crc uint32, p []byte) uint32 {
	for _, b := range p {
		crc ^= uint32(b)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xedb88320
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}

func TestLVMCRC(t *testing.T) {
	// Sectors written by lvm2 2.03.16's `pvcreate -u
	// AAAAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGGGG` on a 64 MiB device: the
	// label sector (CRC over bytes 20..511) and the empty metadata area
	// header (CRC over bytes 4..511).
	label := make([]byte, 512)
	copy(label, "LABELONE")
	binary.LittleEndian.PutUint64(label[8:], 1)
	binary.LittleEndian.PutUint32(label[20:], 32)
	copy(label[24:], "LVM2 001")
	copy(label[32:], "AAAAAABBBBCCCCDDDDEEEEFFFFGGGGGG")
	binary.LittleEndian.PutUint64(label[64:], 64<<20)
	binary.LittleEndian.PutUint64(label[72:], 1<<20) // data area
	binary.LittleEndian.PutUint64(label[104:], 4096) // metadata area
	binary.LittleEndian.PutUint64(label[112:], 0xff000)
	binary.LittleEndian.PutUint32(label[136:], 2) // extension version, flags 0

	mda := make([]byte, 512)
	copy(mda[4:], lvmFmtMagic)
	binary.LittleEndian.PutUint32(mda[20:], 1)
	binary.LittleEndian.PutUint64(mda[24:], 4096)
	binary.LittleEndian.PutUint64(mda[32:], 0xff000)

	rnd := make([]byte, 4099)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range rnd {
		rnd[i] = byte(r.Uint32())
	}

	tests := []struct {
		name string
		data []byte
		want uint32
	}{
		{"empty is the initial value", nil, lvmInitialCRC},
		{"lvm2 pvcreate label sector", label[20:], 0xcc33ffa1},
		{"lvm2 pvcreate mda header", mda[4:], 0xdb8ed616},
		{"random data, bitwise reference", rnd, crcBitwise(lvmInitialCRC, rnd)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := lvmCRC(lvmInitialCRC, tt.data); got != tt.want {
				t.Errorf("lvmCRC = %#x, want %#x", got, tt.want)
			}
		})
	}

	// Our label writer, given lvm2's inputs, must produce lvm2's sector
	// (apart from the PV_EXT_USED flag, which pvcreate leaves clear).
	ours := pvLabel(PVLayout{ID: "AAAAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGGGG", Size: 64 << 20,
		MDAStart: 4096, MDASize: 0xff000, PEStart: 1 << 20})
	binary.LittleEndian.PutUint32(ours[140:], 0)
	binary.LittleEndian.PutUint32(ours[16:], lvmCRC(lvmInitialCRC, ours[20:]))
	binary.LittleEndian.PutUint32(label[16:], 0xcc33ffa1)
	if !bytes.Equal(ours, label) {
		t.Errorf("label sector differs from lvm2's:\nours %x\nlvm2 %x", ours, label)
	}
}

func TestPlanVG(t *testing.T) {
	twoPVs := []PV{{Path: "a", Size: 2 * giB}, {Path: "b", Size: 2 * giB}}
	tests := []struct {
		name    string
		vg      VG
		wantErr string
		check   func(t *testing.T, l *Layout)
	}{
		{
			name: "extents and linear allocation across two PVs",
			vg: VG{Name: "n1_vg0", PVs: twoPVs, LVs: []LV{
				{"root", 1500 * miB}, {"var", 1000 * miB}, {"odd", 1}}},
			check: func(t *testing.T, l *Layout) {
				if l.ExtentSize != 4*miB {
					t.Errorf("extent size %d", l.ExtentSize)
				}
				for _, pv := range l.PVs {
					// (2 GiB - 1 MiB) / 4 MiB
					if pv.PECount != 511 || pv.PEStart != miB || pv.MDAStart != 4096 || pv.MDASize != miB-4096 {
						t.Errorf("PV %+v", pv)
					}
				}
				root, _ := l.LV("root")
				want := []Segment{{PV: 0, StartExtent: 0, PVExtent: 0, Extents: 375, LVOffset: 0, Offset: miB, Length: 1500 * miB}}
				if !equalSegs(root.Segments, want) {
					t.Errorf("root %+v", root.Segments)
				}
				v, _ := l.LV("var")
				want = []Segment{
					{PV: 0, StartExtent: 0, PVExtent: 375, Extents: 136, LVOffset: 0, Offset: miB + 375*4*miB, Length: 136 * 4 * miB},
					{PV: 1, StartExtent: 136, PVExtent: 0, Extents: 114, LVOffset: 136 * 4 * miB, Offset: miB, Length: 114 * 4 * miB},
				}
				if !equalSegs(v.Segments, want) {
					t.Errorf("var %+v", v.Segments)
				}
				odd, _ := l.LV("odd")
				if odd.Size != 4*miB || odd.Segments[0].PV != 1 || odd.Segments[0].PVExtent != 114 {
					t.Errorf("odd %+v", odd)
				}
			},
		},
		{
			name: "LV exactly filling the VG",
			vg:   VG{Name: "full", PVs: twoPVs, LVs: []LV{{"all", 1022 * 4 * miB}}},
			check: func(t *testing.T, l *Layout) {
				if n := len(l.LVs[0].Segments); n != 2 {
					t.Errorf("%d segments", n)
				}
			},
		},
		{
			name: "custom extent size",
			vg:   VG{Name: "big", ExtentSize: 32 * miB, PVs: twoPVs[:1], LVs: []LV{{"x", 33 * miB}}},
			check: func(t *testing.T, l *Layout) {
				if l.PVs[0].PECount != 63 || l.LVs[0].Extents != 2 {
					t.Errorf("pe_count %d extents %d", l.PVs[0].PECount, l.LVs[0].Extents)
				}
			},
		},
		{name: "too big", vg: VG{Name: "n1_vg0", PVs: twoPVs, LVs: []LV{{"a", 4000 * miB}, {"b", 300 * miB}}},
			wantErr: "VG n1_vg0: LVs need 4.2 GiB, PVs hold 3.99 GiB"},
		{name: "no PVs", vg: VG{Name: "v"}, wantErr: "VG v: no PVs"},
		{name: "tiny PV", vg: VG{Name: "v", PVs: []PV{{Path: "a", Size: 2 * miB}}}, wantErr: "holds no extent"},
		{name: "odd PV size", vg: VG{Name: "v", PVs: []PV{{Path: "a", Size: giB + 1}}}, wantErr: "not a multiple of 512"},
		{name: "same PV twice", vg: VG{Name: "v", PVs: []PV{{Path: "a", Size: giB}, {Path: "a", Size: giB}}}, wantErr: "listed twice"},
		{name: "same LV twice", vg: VG{Name: "v", PVs: twoPVs, LVs: []LV{{"x", miB}, {"x", miB}}}, wantErr: "LV x listed twice"},
		{name: "bad VG name", vg: VG{Name: "my vg", PVs: twoPVs}, wantErr: `VG name "my vg"`},
		{name: "reserved LV name", vg: VG{Name: "v", PVs: twoPVs, LVs: []LV{{"snapshot1", miB}}}, wantErr: "reserved"},
		{name: "zero LV", vg: VG{Name: "v", PVs: twoPVs, LVs: []LV{{"x", 0}}}, wantErr: "size must be positive"},
		{name: "extent not a power of two", vg: VG{Name: "v", ExtentSize: 3 * miB, PVs: twoPVs}, wantErr: "power of two"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := PlanVG(tt.vg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, l)
		})
	}
}

func equalSegs(a, b []Segment) bool {
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

func TestLVMIDs(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-zA-Z]{6}(-[0-9a-zA-Z]{4}){5}-[0-9a-zA-Z]{6}$`)
	a, b := LVMID("s", "vg/x"), LVMID("s", "vg/y")
	if !re.MatchString(a) || a == b || a != LVMID("s", "vg/x") {
		t.Errorf("LVMID: %q %q", a, b)
	}
	u := UUIDFromSeed("s", "fs/root")
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(u) {
		t.Errorf("UUIDFromSeed: %q", u)
	}
	if u != UUIDFromSeed("s", "fs/root") || u == UUIDFromSeed("s", "fs/var") || u == UUIDFromSeed("t", "fs/root") {
		t.Error("UUIDFromSeed is not a function of seed and purpose")
	}
}

// TestWritePVsDeterministic writes the same VG, with data, into two
// directories and compares the bytes.
func TestWritePVsDeterministic(t *testing.T) {
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "lv.img")
	data := bytes.Repeat([]byte("applbuild"), 1<<20)
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var sums [2][2]string
	for i := range sums {
		dir := t.TempDir()
		vg := VG{Name: "vg0", Seed: "seed", Time: 1700000000, PVs: []PV{
			{Path: filepath.Join(dir, "pv0"), Size: 16 * miB},
			{Path: filepath.Join(dir, "pv1"), Size: 16 * miB}},
			LVs: []LV{{"a", 8 * miB}, {"b", 12 * miB}}} // b spans
		l, err := PlanVG(vg)
		if err != nil {
			t.Fatal(err)
		}
		if err := WritePVs(ctx, l); err != nil {
			t.Fatal(err)
		}
		if err := WriteLV(ctx, l, "b", src); err != nil {
			t.Fatal(err)
		}
		for j, pv := range l.PVs {
			sums[i][j] = sha256File(t, pv.Path)
		}
		// b's bytes read back from its segments are the image.
		b, _ := l.LV("b")
		var got []byte
		for _, s := range b.Segments {
			f, _ := os.ReadFile(l.PVs[s.PV].Path)
			got = append(got, f[s.Offset:s.Offset+s.Length]...)
		}
		if !bytes.Equal(got[:len(data)], data) || bytes.ContainsFunc(got[len(data):], func(r rune) bool { return r != 0 }) {
			t.Error("LV b does not read back as its image")
		}
		if err := WriteLV(ctx, l, "a", filepath.Join(dir, "pv0")); err == nil {
			t.Error("WriteLV accepted an image bigger than the LV")
		}
	}
	if sums[0] != sums[1] {
		t.Errorf("same VG, different bytes: %v", sums)
	}
}
