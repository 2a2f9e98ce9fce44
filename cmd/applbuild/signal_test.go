package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestInterruptedExitCode: a command stopped by SIGINT or SIGTERM exits
// 128+signal and says so, instead of exit 1 with "context canceled".
func TestInterruptedExitCode(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(signalled{sig})
		var stdout, stderr bytes.Buffer
		code := run(ctx, []string{"plan", "web-cluster"}, &stdout, &stderr)
		if code != 128+int(sig) {
			t.Errorf("%v: exit %d, want %d\n%s", sig, code, 128+int(sig), stderr.String())
		}
		if want := "interrupted by " + signalName(sig); !strings.Contains(stderr.String(), want) {
			t.Errorf("%v: stderr %q, want %q", sig, stderr.String(), want)
		}
	}
}

// signalHelperEnv makes the test binary take signals as main does and
// report what it saw (TestSignalContext).
const signalHelperEnv = "APPLBUILD_SIGNAL_HELPER"

func signalHelper() {
	ctx, stop := signalContext()
	defer stop()
	self, _ := os.FindProcess(os.Getpid())
	_ = self.Signal(syscall.SIGTERM)
	<-ctx.Done()
	var intr signalled
	if !errors.As(context.Cause(ctx), &intr) || intr.sig != syscall.SIGTERM {
		os.Stderr.WriteString("cause: " + context.Cause(ctx).Error() + "\n")
		os.Exit(4)
	}
	os.Stderr.WriteString("cancelled\n")
	// The second signal must not be swallowed by a cleanup in progress.
	_ = self.Signal(syscall.SIGTERM)
	time.Sleep(10 * time.Second)
	os.Exit(5)
}

// TestSignalContext: the first SIGTERM cancels the context with the signal
// as its cause; the second one kills at once.
func TestSignalContext(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), signalHelperEnv+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("helper: %v\n%s", err, stderr.String())
	}
	ws := ee.Sys().(syscall.WaitStatus)
	if !strings.Contains(stderr.String(), "cancelled") || !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Fatalf("helper ended with %v, want killed by the second SIGTERM after cancelling\n%s", err, stderr.String())
	}
}
