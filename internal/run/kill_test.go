package run

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the test binary act as a parent that runs a child through
// Output and waits to be killed (TestKilledParentKillsChild).
const helperEnv = "APPLBUILD_RUN_TEST_PARENT"

func TestMain(m *testing.M) {
	if pidfile := os.Getenv(helperEnv); pidfile != "" {
		_, err := Output(context.Background(), "sh", "-c", `echo $$ > "$1"; exec sleep 300`, "sh", pidfile)
		fmt.Fprintln(os.Stderr, "child ended:", err)
		os.Exit(3)
	}
	os.Exit(m.Run())
}

// TestCancelKillsGroup: a cancelled program is killed with everything it
// started, and Output returns at once even though a grandchild held its
// output pipes. Before, only the direct child was killed: the grandchild
// ran on and Output waited for it for as long as it lived.
func TestCancelKillsGroup(t *testing.T) {
	pidfile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := Output(ctx, "sh", "-c", `sleep 300 & echo $! > "$1"; wait`, "sh", pidfile)
		done <- err
	}()
	pid := waitPidfile(t, pidfile)
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), context.Canceled.Error()) {
			t.Errorf("Output after cancel: %v, want context canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Output did not return after cancel")
	}
	if !gone(pid, 5*time.Second) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("grandchild %d still runs after its command was cancelled", pid)
	}
}

// TestKilledParentKillsChild: when applbuild itself is killed (SIGKILL, so
// it cannot cancel anything), the program it was running dies with it.
func TestKilledParentKillsChild(t *testing.T) {
	pidfile := filepath.Join(t.TempDir(), "pid")
	parent := exec.Command(os.Args[0], "-test.run=^$")
	parent.Env = append(os.Environ(), helperEnv+"="+pidfile)
	parent.Stderr = os.Stderr
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	pid := waitPidfile(t, pidfile)
	if err := parent.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = parent.Wait()
	if !gone(pid, 5*time.Second) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("child %d still runs after its parent was killed", pid)
	}
}

// TestCancelAfterExit: cancelling after the program ended changes nothing.
func TestCancelAfterExit(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out, err := Output(ctx, "echo", "hi")
	cancel()
	if err != nil || string(out) != "hi\n" {
		t.Fatalf("echo: %q %v", out, err)
	}
}

func waitPidfile(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(path)
		if s := strings.TrimSpace(string(b)); err == nil && strings.HasSuffix(string(b), "\n") {
			pid, err := strconv.Atoi(s)
			if err != nil {
				t.Fatalf("%s: %q", path, b)
			}
			return pid
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never written", path)
	return 0
}

// gone waits until pid no longer runs (a zombie counts as gone: it waits
// only for its new parent to reap it).
func gone(pid int, wait time.Duration) bool {
	deadline := time.Now().Add(wait)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return true
		}
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && len(b) > i+2 && b[i+2] == 'Z' {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNoSpaceIsENOSPC: a program that failed on a full disk matches
// syscall.ENOSPC, whatever its exit status; another failure does not.
func TestNoSpaceIsENOSPC(t *testing.T) {
	_, err := Output(context.Background(), "sh", "-c", `echo "tar: ./usr/bin/x: Cannot write: No space left on device" >&2; exit 2`)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("%v: does not match ENOSPC", err)
	}
	_, err = Output(context.Background(), "sh", "-c", `echo "tar: bad archive" >&2; exit 2`)
	if err == nil || errors.Is(err, syscall.ENOSPC) {
		t.Errorf("%v: matches ENOSPC", err)
	}
}
