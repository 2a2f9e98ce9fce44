package regfile

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	os.WriteFile(p, []byte("x"), 0o600)
	f, fi, err := Open(p)
	if err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("regular file: %v %v", fi, err)
	}
	f.Close()
	// A FIFO with no writer: opened at once, not waited on.
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		f, fi, err := Open(fifo)
		if err == nil {
			if fi.Mode()&os.ModeNamedPipe == 0 {
				t.Errorf("fifo reported as %v", fi.Mode())
			}
			f.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("fifo: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Open blocked on a FIFO")
	}
	if _, _, err := Open(filepath.Join(dir, "missing")); !os.IsNotExist(err) {
		t.Errorf("missing file: %v", err)
	}
}
