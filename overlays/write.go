package overlays

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// WriteTree writes files below dir, as they will stand in the image:
// content, modes and symlinks. Owners are not applied (render runs as any
// user); the build applies them from the image's own passwd.
func WriteTree(dir string, files []File) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range files {
		dst := filepath.Join(dir, strings.TrimPrefix(f.Path, "/"))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		switch {
		case f.IsDir():
			if err := os.MkdirAll(dst, f.Mode.Perm()); err != nil {
				return err
			}
			if err := os.Chmod(dst, f.Mode.Perm()); err != nil {
				return err
			}
		case f.IsLink():
			_ = os.Remove(dst)
			if err := os.Symlink(f.Link, dst); err != nil {
				return fmt.Errorf("%s: %w", f.Path, err)
			}
		default:
			if err := os.WriteFile(dst, f.Data, f.Mode.Perm()); err != nil {
				return fmt.Errorf("%s: %w", f.Path, err)
			}
			if err := os.Chmod(dst, f.Mode.Perm()); err != nil {
				return err
			}
		}
	}
	return nil
}
