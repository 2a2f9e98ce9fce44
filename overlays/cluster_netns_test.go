package overlays

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/applbuild/applbuild/internal/run"
)

// netnsWith makes a network namespace that owns addrs (CIDR form) on a
// veth pair inside it, for programs that check their config against the
// local addresses (corosync -t, drbdadm). The namespace, and the veth pair
// with it, is deleted when the test ends. Nothing in it is connected to
// the host.
func netnsWith(t *testing.T, addrs ...string) string {
	t.Helper()
	h := sha256.Sum256([]byte(t.Name() + fmt.Sprint(addrs)))
	name := fmt.Sprintf("applbuild-%d-%x", os.Getpid(), h[:4])
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run.Run(ctx, "ip", "netns", "add", name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := run.Run(ctx, "ip", "netns", "delete", name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	// No dummy interfaces here (the host kernel has no dummy module):
	// a veth pair whose both ends stay in the namespace does the same.
	cmds := [][]string{
		{"ip", "-n", name, "link", "set", "lo", "up"},
		{"ip", "-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1"},
	}
	for _, a := range addrs {
		cmds = append(cmds, []string{"ip", "-n", name, "addr", "add", a, "dev", "v0"})
	}
	cmds = append(cmds,
		[]string{"ip", "-n", name, "link", "set", "v0", "up"},
		[]string{"ip", "-n", name, "link", "set", "v1", "up"})
	for _, c := range cmds {
		if err := run.Run(ctx, c...); err != nil {
			t.Fatal(err)
		}
	}
	return name
}
