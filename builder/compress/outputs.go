package compress

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
)

// Outputs writes what a stick image ships with, beside img: img.xz (XZ at
// its defaults), img.bmap (format 2.0, for bmaptool and applbuild flash)
// and SHA256SUMS over the three files.
func Outputs(ctx context.Context, img string) error {
	if err := XZFile(ctx, img+".xz", img, XZOptions{}); err != nil {
		return err
	}
	f, err := os.Open(img)
	if err != nil {
		return err
	}
	m, err := MakeBmap(ctx, f, BmapOptions{})
	f.Close()
	if err != nil {
		return err
	}
	if err := os.WriteFile(img+".bmap", m.Marshal(), 0o644); err != nil {
		return err
	}
	dir, base := filepath.Split(img)
	sums, err := SumFiles(ctx, dir, base, base+".xz", base+".bmap")
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := WriteSums(&b, sums); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "SHA256SUMS"), b.Bytes(), 0o644)
}
