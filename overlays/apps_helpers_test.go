package overlays

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/applbuild/applbuild/builder"
)

// appFreePort asks the kernel for a free loopback TCP port.
func appFreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// appDaemon starts a server in the foreground and stops it (and waits for
// it) when the test ends. Its output goes to a log file that is printed
// when the test fails.
func appDaemon(t testing.TB, env []string, args ...string) {
	t.Helper()
	logf := filepath.Join(t.TempDir(), filepath.Base(args[0])+".log")
	out, err := os.Create(logf)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", args[0], err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		out.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf)
			t.Logf("%s output:\n%s", strings.Join(args, " "), b)
		}
	})
}

// appWaitPort waits until something accepts connections on 127.0.0.1:port.
func appWaitPort(t testing.TB, port int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on 127.0.0.1:%d: %v", port, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// appGet fetches url and returns the status and body.
func appGet(t testing.TB, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// appOpenDir is a temp dir that unprivileged server children (www-data,
// nobody) can reach: t.TempDir's parent is 0700.
func appOpenDir(t testing.TB) string {
	t.Helper()
	d := t.TempDir()
	for _, p := range []string{d, filepath.Dir(d)} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// appReplace replaces old by new in s and fails unless old occurs exactly
// once: a test adapting a generated file must notice when it changes.
func appReplace(t testing.TB, s, old, new string) string {
	t.Helper()
	if n := strings.Count(s, old); n != 1 {
		t.Fatalf("want %q once, found it %d times in:\n%s", old, n, s)
	}
	return strings.Replace(s, old, new, 1)
}

// appExecStart is the command line of a unit's ExecStart=.
func appExecStart(t testing.TB, unit []byte) []string {
	t.Helper()
	for _, line := range strings.Split(string(unit), "\n") {
		if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
			return strings.Fields(v)
		}
	}
	t.Fatalf("no ExecStart= in:\n%s", unit)
	return nil
}

// appWithService returns a copy of pl whose service run by unit listens on
// port: servers under test get a free loopback port from the same
// generator that writes the image's config.
func appWithService(pl *builder.Plan, unit string, port int) *builder.Plan {
	cp := *pl
	cp.Services = append([]builder.Service(nil), pl.Services...)
	for i := range cp.Services {
		if cp.Services[i].Unit == unit {
			cp.Services[i].Port = port
		}
	}
	return &cp
}

// appOverlayOnto copies the host's dir (a package's config tree) to a temp
// dir and lays the generated files below it over the copy, the way the
// image gets them. It returns the copy's path.
func appOverlayOnto(t testing.TB, files []File, dir string, drop ...string) string {
	t.Helper()
	root := appOpenDir(t)
	dst := filepath.Join(root, filepath.Base(dir))
	if out, err := exec.Command("cp", "-a", dir, dst).CombinedOutput(); err != nil {
		t.Fatalf("copy %s: %v: %s", dir, err, out)
	}
	for _, d := range drop {
		matches, _ := filepath.Glob(filepath.Join(dst, d))
		for _, m := range matches {
			if err := os.Remove(m); err != nil {
				t.Fatal(err)
			}
		}
	}
	var under []File
	for _, f := range files {
		if rel, ok := strings.CutPrefix(f.Path, dir+"/"); ok {
			f.Path = "/" + rel
			under = append(under, f)
		}
	}
	if len(under) == 0 {
		t.Fatalf("nothing generated below %s", dir)
	}
	// Replace, never write through: a copied symlink may point at the
	// host's own file.
	for _, f := range under {
		if !f.IsDir() {
			if err := os.Remove(filepath.Join(dst, f.Path)); err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
		}
	}
	if err := WriteTree(dst, under); err != nil {
		t.Fatal(err)
	}
	return dst
}

// appGen runs one generator on a plan's first node.
func appGen(t testing.TB, gen func(Input) ([]File, error), pl *builder.Plan) []File {
	t.Helper()
	files, err := gen(Input{Plan: pl, Node: &pl.Nodes[0], Keys: testRing(t)})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// appByPath indexes files by path.
func appByPath(files []File) map[string]File {
	m := map[string]File{}
	for _, f := range files {
		m[f.Path] = f
	}
	return m
}
