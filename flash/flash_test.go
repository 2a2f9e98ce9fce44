package flash

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/applbuild/applbuild/builder/compress"
	"github.com/applbuild/applbuild/internal/progress"
	"github.com/applbuild/applbuild/internal/testenv"
)

func TestFlashToFile(t *testing.T) {
	dir := t.TempDir()
	img := testImage(t, dir, 48*miB)
	xz := xzImage(t, img)
	noBmap := filepath.Join(t.TempDir(), "bare.img")
	os.Link(img, noBmap)
	for _, tt := range []struct {
		name, image string
		bmap        bool
	}{
		{"raw with bmap", img, true},
		{"xz with bmap", xz, true},
		{"raw without bmap", noBmap, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.raw")
			os.WriteFile(out, bytes.Repeat([]byte{1}, 60*miB), 0o644) // an old, longer file
			var log bytes.Buffer
			res, err := Flash(context.Background(), Options{Image: tt.image, Target: out, Report: progress.NewPlain(&log)})
			if err != nil {
				t.Fatal(err)
			}
			testenv.Tools(t, "cmp")
			cmpFiles(t, img, out, 0)
			if (res.Bmap != "") != tt.bmap {
				t.Errorf("bmap used: %q, want one: %v", res.Bmap, tt.bmap)
			}
			if tt.bmap && res.Written >= 48*miB/2 {
				t.Errorf("wrote %d bytes with a bmap: more than the data", res.Written)
			}
			if !tt.bmap && res.Written != 48*miB {
				t.Errorf("wrote %d bytes without a bmap, want all %d", res.Written, 48*miB)
			}
			if !strings.Contains(log.String(), "[verify "+out+"] done") {
				t.Errorf("no verify stage in the progress:\n%s", log.String())
			}
		})
	}
}

// TestFlashLoopDevice writes to a real block device: with a bmap only the
// mapped blocks change (the stick's old bytes stay elsewhere), without one
// everything does.
func TestFlashLoopDevice(t *testing.T) {
	dir := t.TempDir()
	img := testImage(t, dir, 32*miB)
	raw, _ := os.ReadFile(img)
	data, _ := os.ReadFile(img + ".bmap")
	m, err := compress.ParseBmap(data)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("bmap", func(t *testing.T) {
		dev, file := loopDevice(t, 40*miB, 40*miB)
		res, err := Flash(context.Background(), Options{Image: img, Target: dev, Force: true, Yes: true})
		if err != nil {
			t.Fatal(err)
		}
		if res.Device == nil || res.Device.Backing != file {
			t.Errorf("device %+v, want the loop device of %s", res.Device, file)
		}
		got, _ := os.ReadFile(file)
		mapped := make([]bool, m.BlocksCount())
		for _, r := range m.Ranges {
			e := m.Extent(r)
			if !bytes.Equal(got[e.Off:e.End()], raw[e.Off:e.End()]) {
				t.Errorf("blocks %d-%d not written", r.First, r.Last)
			}
			for b := r.First; b <= r.Last; b++ {
				mapped[b] = true
			}
		}
		for b, ok := range mapped {
			if !ok && got[int64(b)*compress.BlockSize] != 0xaa {
				t.Fatalf("unmapped block %d was written", b)
			}
		}
	})
	t.Run("no bmap", func(t *testing.T) {
		dev, file := loopDevice(t, 40*miB, 40*miB)
		bare := filepath.Join(t.TempDir(), "bare.img")
		os.Link(img, bare)
		if _, err := Flash(context.Background(), Options{Image: bare, Target: dev, Force: true, Yes: true}); err != nil {
			t.Fatal(err)
		}
		cmpFiles(t, img, file, 32*miB)
	})
}

// TestVerifyCatchesCorruption corrupts the loop device's backing file
// between the write and the read-back. The loop device's page cache still
// holds the good bytes: only a read-back that reaches the device sees it.
func TestVerifyCatchesCorruption(t *testing.T) {
	dir := t.TempDir()
	img := testImage(t, dir, 32*miB)
	xz := xzImage(t, img)
	dev, file := loopDevice(t, 32*miB, 0)
	o := Options{Image: xz, Target: dev, Force: true, Yes: true}
	o.beforeVerify = func(string) {
		f, err := os.OpenFile(file, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		f.WriteAt([]byte("corrupt"), 1024+100) // inside the superblock: mapped
		f.Sync()
	}
	_, err := Flash(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "reads back different bytes") {
		t.Fatalf("err = %v, want a failed verify", err)
	}
	if !strings.Contains(err.Error(), "blocks 0-") {
		t.Errorf("the failing range is not named: %v", err)
	}
}

func TestImageNotMatchingBmap(t *testing.T) {
	dir := t.TempDir()
	img := testImage(t, dir, 32*miB)
	f, _ := os.OpenFile(img, os.O_WRONLY, 0)
	f.WriteAt([]byte("x"), 1024+200)
	f.Close()
	_, err := Flash(context.Background(), Options{Image: img, Target: filepath.Join(dir, "out")})
	if err == nil || !strings.Contains(err.Error(), "does not match its bmap") {
		t.Errorf("err = %v, want the image refused by its bmap", err)
	}
}

// TestInterrupted stops a write to a loop device after its first 4 MiB,
// as Ctrl-C does: the device is reported incomplete.
func TestInterrupted(t *testing.T) {
	dir := t.TempDir()
	img := testImage(t, dir, 32*miB)
	os.Remove(img + ".bmap") // every byte: more than one buffer
	dev, _ := loopDevice(t, 32*miB, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o := Options{Image: img, Target: dev, Force: true, Yes: true, afterWrite: cancel}
	_, err := Flash(ctx, o)
	if err == nil || !strings.Contains(err.Error(), "interrupted after 4.0 MiB of 32.0 MiB: "+dev+" is incomplete") {
		t.Errorf("err = %v, want the device reported incomplete", err)
	}
	// Interrupted before the first byte: the device is as it was.
	_, err = Flash(ctx, Options{Image: img, Target: dev, Force: true, Yes: true})
	if err == nil || !strings.Contains(err.Error(), "nothing was written to "+dev) {
		t.Errorf("err = %v, want nothing written", err)
	}
	// A file was already cut to the image's size: incomplete too.
	out := filepath.Join(dir, "out")
	_, err = Flash(ctx, Options{Image: img, Target: out})
	if err == nil || !strings.Contains(err.Error(), out+" is incomplete") {
		t.Errorf("err = %v, want the file reported incomplete", err)
	}
}

func TestRefusedTargets(t *testing.T) {
	dir := t.TempDir()
	img := testImage(t, dir, 32*miB)
	for _, tt := range []struct{ name, target, want string }{
		{"the image itself", img, "it is " + img + " itself"},
		{"its bmap", img + ".bmap", "itself"},
		{"no such device", "/dev/sdzz9", "no such device"},
		{"a character device", "/dev/null", "neither a block device nor a regular file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Flash(context.Background(), Options{Image: img, Target: tt.target})
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want refused: %q", err, tt.want)
			}
		})
	}
	if _, err := os.Stat("/dev/sdzz9"); err == nil {
		t.Error("a file was made under /dev")
	}
}

// TestRefusedDevices goes through each refusal on real loop devices.
func TestRefusedDevices(t *testing.T) {
	dir := t.TempDir()
	img := testImage(t, dir, 32*miB)
	flash := func(o Options) error {
		o.Image = img
		_, err := Flash(context.Background(), o)
		return err
	}
	refusedWith := func(t *testing.T, err error, want string) {
		t.Helper()
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want refused: %q", err, want)
		}
	}
	dev, _ := loopDevice(t, 64*miB, 0)
	t.Run("non-removable", func(t *testing.T) {
		refusedWith(t, flash(Options{Target: dev, Yes: true}), "not a removable device (--force")
	})
	t.Run("no terminal, no --yes", func(t *testing.T) {
		refusedWith(t, flash(Options{Target: dev, Force: true}), "no terminal to confirm on")
	})
	t.Run("not confirmed", func(t *testing.T) {
		var asked string
		err := flash(Options{Target: dev, Force: true, Confirm: func(q string) (bool, error) { asked = q; return false, nil }})
		refusedWith(t, err, "not confirmed")
		if !strings.Contains(asked, dev) || !strings.Contains(asked, "64.0 MiB") || !strings.Contains(asked, "loop device of") {
			t.Errorf("the question does not name the device and its size: %q", asked)
		}
	})
	t.Run("confirmed", func(t *testing.T) {
		err := flash(Options{Target: dev, Force: true, Confirm: func(string) (bool, error) { return true, nil }})
		if err != nil {
			t.Error(err)
		}
	})
	t.Run("too small", func(t *testing.T) {
		small, _ := loopDevice(t, 16*miB, 0)
		refusedWith(t, flash(Options{Target: small, Force: true, Yes: true}), "holds 16.0 MiB, the image needs 32.0 MiB")
	})
	t.Run("larger than 256 GiB", func(t *testing.T) {
		big, _ := loopDevice(t, 300<<30, 0)
		refusedWith(t, flash(Options{Target: big, Yes: true}), "larger than a stick's 256.0 GiB")
		if err := flash(Options{Target: big, Yes: true, Force: true}); err != nil {
			t.Errorf("--force: %v", err)
		}
	})
}

// TestRefusesSystemDisk asks only whether the disk / lives on may be
// written: Flash is never called on it.
func TestRefusesSystemDisk(t *testing.T) {
	h := RealHost()
	disks, err := h.SystemDisks()
	if err != nil {
		t.Fatal(err)
	}
	if len(disks) == 0 {
		t.Skip("/ is on no block device here (a container?)")
	}
	for disk := range disks {
		d, err := h.Inspect("/dev/" + disk)
		if err != nil {
			t.Fatal(err)
		}
		why, err := h.Refusals(d, 1, true)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(why, "; "), "the running system lives on "+disk) {
			t.Errorf("%s: refusals %q, want the running system named", disk, why)
		}
	}
}
