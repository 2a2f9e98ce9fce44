package rootfs

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
)

// aptUnreachable is mmdebstrap's output for a mirror nothing listens on.
const aptUnreachable = `I: running apt-get update...
Ign:1 http://127.0.0.1:9/debian trixie InRelease
Err:1 http://127.0.0.1:9/debian trixie InRelease
  Could not connect to 127.0.0.1:9 (127.0.0.1). - connect (111: Connection refused)
Reading package lists...
E: Failed to fetch http://127.0.0.1:9/debian/dists/trixie/InRelease  Could not connect to 127.0.0.1:9 (127.0.0.1). - connect (111: Connection refused)
E: Some index files failed to download. They have been ignored, or old ones used instead.
E: apt-get update --error-on=any -oAPT::Status-Fd=<$fd> -oDpkg::Use-Pty=false failed
E: mmdebstrap failed to run`

// TestBootstrapErrorMirror: a bootstrap that could not reach the mirror
// says which mirror and what to check, not mmdebstrap's whole command
// line; a full disk matches ENOSPC; anything else keeps its output.
func TestBootstrapErrorMirror(t *testing.T) {
	req := Request{Mirror: "http://127.0.0.1:9/debian"}
	exit := errors.New("mmdebstrap ...: exit status 25")
	lw := &lineWriter{emit: func(string) {}}
	lw.Write([]byte(aptUnreachable + "\n"))
	err := bootstrapError(exit, req, lw)
	var me *MirrorError
	if !errors.As(err, &me) || !errors.Is(err, exit) {
		t.Fatalf("bootstrapError = %v, want a MirrorError wrapping the exit", err)
	}
	want := "the Debian mirror http://127.0.0.1:9/debian cannot be used: Failed to fetch http://127.0.0.1:9/debian/dists/trixie/InRelease  Could not connect to 127.0.0.1:9 (127.0.0.1). - connect (111: Connection refused); check the network and the mirror (the spec's mirror:, or --set mirror=URL)"
	if err.Error() != want {
		t.Errorf("message\n%s\nwant\n%s", err, want)
	}

	lw = &lineWriter{emit: func(string) {}}
	lw.Write([]byte("dpkg: error processing archive x.deb (--unpack):\n cannot copy extracted data for './usr/bin/x': failed to write (No space left on device)\n"))
	if err := bootstrapError(exit, req, lw); !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "failed to write") {
		t.Errorf("full disk: %v, want ENOSPC and the output", err)
	}
	lw = &lineWriter{emit: func(string) {}}
	lw.Write([]byte("E: Unable to locate package nosuch\n"))
	if err := bootstrapError(exit, req, lw); errors.As(err, &me) || errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "nosuch") {
		t.Errorf("other failure: %v", err)
	}
}

// TestCacheFullDisk: a bootstrap that ran out of space names the cache
// directory, what was free and --cache-dir, and leaves nothing.
func TestCacheFullDisk(t *testing.T) {
	b := &fakeBuilder{hook: func(context.Context) error {
		return errors.Join(errors.New("tar: write"), syscall.ENOSPC)
	}}
	c := newCache(t, b)
	_, err := c.Get(t.Context(), testRequest(), nil)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Get = %v, want ENOSPC", err)
	}
	for _, want := range []string{"rootfs cache " + c.Dir + ": out of disk space (", "MiB free when the bootstrap started", "pass --cache-dir a directory on a larger file system"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v: does not say %q", err, want)
		}
	}
	if l := leftovers(t, c.Dir); len(l) != 0 {
		t.Errorf("left %v", l)
	}
}
