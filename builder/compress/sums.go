package compress

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Sum is one line of a SHA256SUMS file.
type Sum struct {
	Name   string // relative to the SHA256SUMS file's directory
	SHA256 string // lower-case hex
}

// SumFiles hashes the named files of dir, in the order given.
func SumFiles(ctx context.Context, dir string, names ...string) ([]Sum, error) {
	var out []Sum
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		h := sha256.New()
		_, err = io.Copy(h, readerCtx{ctx, f})
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("hash %s: %w", name, err)
		}
		out = append(out, Sum{Name: name, SHA256: hex.EncodeToString(h.Sum(nil))})
	}
	return out, nil
}

// WriteSums writes sums in the format `sha256sum -c` reads: the hex
// digest, a space, '*' (binary mode, which is what sha256sum itself writes
// for images) and the name. Names that sha256sum would have to escape
// (a newline, a backslash) are refused rather than escaped.
func WriteSums(w io.Writer, sums []Sum) error {
	var b strings.Builder
	for _, s := range sums {
		if strings.ContainsAny(s.Name, "\n\r\\") || s.Name == "" {
			return fmt.Errorf("SHA256SUMS: name %q cannot be written unescaped", s.Name)
		}
		if _, err := hex.DecodeString(s.SHA256); err != nil || len(s.SHA256) != 64 {
			return fmt.Errorf("SHA256SUMS: %s: %q is not a sha256", s.Name, s.SHA256)
		}
		fmt.Fprintf(&b, "%s *%s\n", strings.ToLower(s.SHA256), s.Name)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// readerCtx stops a long read when ctx ends.
type readerCtx struct {
	ctx context.Context
	r   io.Reader
}

func (r readerCtx) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
