package disk

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/applbuild/applbuild/internal/run"
)

func sha256File(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// attachLoop attaches path read-only to a free loop device and detaches it
// when the test ends. Other tests on the machine race for free devices, so
// a lost race is retried.
func attachLoop(t *testing.T, path string) string {
	t.Helper()
	ctx := context.Background()
	var lastErr error
	for range 5 {
		out, err := run.Output(ctx, "losetup", "--find", "--show", "--read-only", path)
		if err == nil {
			dev := strings.TrimSpace(string(out))
			t.Cleanup(func() {
				if err := run.Run(context.Background(), "losetup", "--detach", dev); err != nil {
					t.Errorf("detach %s: %v", dev, err)
				}
			})
			return dev
		}
		lastErr = err
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("attach %s: %v", path, lastErr)
	return ""
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
