package target

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/applbuild/applbuild/internal/run"
	"github.com/applbuild/applbuild/internal/testenv"
)

// TestConvert: each format holds the raw disk's bytes (qemu-img compare),
// passes qemu-img check, and comes out the same twice from the same seed
// (qemu-img alone stamps random ids into VMDK and VDI); another seed
// gives other ids.
func TestConvert(t *testing.T) {
	testenv.Tools(t, "qemu-img")
	ctx := context.Background()
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(8 << 20)
	f.WriteAt(bytes.Repeat([]byte("applbuild"), 1000), 3<<20)
	f.Close()
	for _, format := range Formats {
		read := func(seed string) []byte {
			out, err := Convert(ctx, img, format, seed)
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if o, err := run.Output(ctx, "qemu-img", "check", out); err != nil {
				t.Errorf("qemu-img check %s: %v\n%s", format, err, o)
			}
			if o, err := run.Output(ctx, "qemu-img", "compare", "-f", "raw", "-F", format, img, out); err != nil {
				t.Errorf("qemu-img compare %s: %v\n%s", format, err, o)
			}
			return b
		}
		a, b, other := read("seed/n1"), read("seed/n1"), read("seed/n2")
		if !bytes.Equal(a, b) {
			t.Errorf("%s: two conversions with one seed differ", format)
		}
		if format != "qcow2" && bytes.Equal(a, other) {
			t.Errorf("%s: two seeds give the same ids", format)
		}
	}
	if _, err := Convert(ctx, img, "vhdx", "s"); err == nil {
		t.Error("vhdx converted")
	}
}

// TestFixVMDKShortCID: qemu-img writes the CID with %x, so one image in
// sixteen has a CID shorter than eight digits (CI met one). The same seed
// must still give the same bytes, whatever length the random CID had.
func TestFixVMDKShortCID(t *testing.T) {
	testenv.Tools(t, "qemu-img")
	ctx := context.Background()
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	var want []byte
	for _, cid := range []string{"CID=1", "CID=abcdef", "CID=fffffffe"} {
		out := filepath.Join(dir, "disk.vmdk")
		if o, err := run.Output(ctx, "qemu-img", "convert", "-q", "-f", "raw", "-O", "vmdk", img, out); err != nil {
			t.Fatalf("%v\n%s", err, o)
		}
		// Put the CID of the length under test in, as qemu-img would.
		if err := patchHead(out, 64<<10, func(head []byte) error {
			desc := head[512 : 512+20*512]
			text := desc[:bytes.IndexByte(desc, 0)]
			loc := vmdkCID.FindIndex(text)
			if loc == nil {
				t.Fatalf("no CID in\n%s", text)
			}
			n := append(append(append([]byte{}, text[:loc[0]]...), cid...), text[loc[1]:]...)
			clear(desc)
			copy(desc, n)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := fixVMDK(out, "seed/n1"); err != nil {
			t.Fatalf("%s: %v", cid, err)
		}
		if o, err := run.Output(ctx, "qemu-img", "check", out); err != nil {
			t.Errorf("%s: qemu-img check: %v\n%s", cid, err, o)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if want == nil {
			want = b
		} else if !bytes.Equal(b, want) {
			t.Errorf("%s: other bytes than after a CID of another length", cid)
		}
	}
	if !vmdkCID.Match(want) || bytes.Contains(want, []byte("CID=1\n")) {
		t.Error("no eight-digit CID written")
	}
}
