package kernel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// bzImage builds a synthetic kernel: a boot header with setup_sects,
// version and payload fields, and payload bytes where they say.
func bzImage(setupSects byte, version uint16, payloadOff uint32, payload []byte) []byte {
	setup := int(setupSects)
	if setup == 0 {
		setup = 4
	}
	img := make([]byte, (setup+1)*512+int(payloadOff)+len(payload)+64)
	img[offSetupSects] = setupSects
	copy(img[offHeaderMagic:], "HdrS")
	binary.LittleEndian.PutUint16(img[offVersion:], version)
	binary.LittleEndian.PutUint32(img[offPayloadOffset:], payloadOff)
	binary.LittleEndian.PutUint32(img[offPayloadLength:], uint32(len(payload)))
	copy(img[(setup+1)*512+int(payloadOff):], payload)
	return img
}

func pad(b ...byte) []byte { return append(b, make([]byte, 16)...) }

func TestDetect(t *testing.T) {
	tests := []struct {
		name    string
		img     []byte
		want    Compression
		pvgrub  bool
		wantErr bool
	}{
		{"gzip", bzImage(39, 0x20f, 0x2cc, pad(0x1f, 0x8b, 0x08)), Gzip, true, false},
		{"xz", bzImage(27, 0x20d, 0x3b5, pad(0xfd, '7', 'z', 'X', 'Z', 0x00)), XZ, true, false},
		{"zstd (trixie's 6.12)", bzImage(39, 0x20f, 0x2cc, pad(0x28, 0xb5, 0x2f, 0xfd)), Zstd, false, false},
		{"lz4 (cloud kernel)", bzImage(30, 0x20f, 0x100, pad(0x02, 0x21, 0x4c, 0x18)), LZ4, false, false},
		{"bzip2", bzImage(30, 0x20f, 0x100, pad('B', 'Z', 'h', '9')), Bzip2, false, false},
		{"lzma", bzImage(30, 0x20f, 0x100, pad(0x5d, 0x00, 0x00, 0x80)), LZMA, false, false},
		{"lzo", bzImage(30, 0x20f, 0x100, pad(0x89, 'L', 'Z', 'O')), LZO, false, false},
		{"setup_sects 0 means 4", bzImage(0, 0x20f, 0x10, pad(0x1f, 0x8b)), Gzip, true, false},
		{"ELF vmlinux", append([]byte("\x7fELF\x02\x01\x01"), make([]byte, 1024)...), ELF, true, false},
		{"boot protocol too old", bzImage(30, 0x207, 0x100, pad(0x1f, 0x8b)), "", false, true},
		{"unknown magic", bzImage(30, 0x20f, 0x100, pad(0xde, 0xad, 0xbe, 0xef)), "", false, true},
		{"no HdrS", make([]byte, 4096), "", false, true},
		{"truncated", []byte("MZ"), "", false, true},
		{"payload past the end", bzImage(30, 0x20f, 0x100, pad(0x1f, 0x8b))[:(31 * 512)], "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Detect(bytes.NewReader(tt.img))
			if tt.wantErr {
				if !errors.Is(err, ErrNotKernel) {
					t.Fatalf("Detect = %q, %v; want ErrNotKernel", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Detect = %q, %v; want %q", got, err, tt.want)
			}
			if got.PVGrubLoads() != tt.pvgrub {
				t.Errorf("%s.PVGrubLoads() = %v, want %v", got, got.PVGrubLoads(), tt.pvgrub)
			}
		})
	}
}

// TestDetectRealKernels runs the detector on whatever kernels the host has
// (none in a container: then it says so) and on APPLBUILD_KERNEL: each
// must be recognised. The kernel of a built image is checked, with the
// compression it must have, by the e2e test ("kernel compression").
func TestDetectRealKernels(t *testing.T) {
	paths, _ := filepath.Glob("/boot/vmlinuz-*")
	if k := os.Getenv("APPLBUILD_KERNEL"); k != "" {
		paths = append(paths, k)
	}
	if len(paths) == 0 {
		t.Skip("no /boot/vmlinuz-* on this host and APPLBUILD_KERNEL unset")
	}
	for _, p := range paths {
		c, err := DetectFile(p)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if c == "" {
			t.Errorf("%s: compression not recognised", p)
		}
		t.Logf("%s: %s (pvgrub2 loads it: %v)", p, c, c.PVGrubLoads())
	}
}
