package cluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/internal/run"
	"github.com/applbuild/applbuild/internal/testenv"
)

// TestNetwork makes a cluster's network for real: the namespace, the
// bridges, the taps, applbuild's address; moves a tap to the island and
// back; and removes it all, leaving no namespace.
func TestNetwork(t *testing.T) {
	testenv.Root(t)
	testenv.Tools(t, "ip")
	ctx := context.Background()
	ns := fmt.Sprintf("applbuild-test-%d", os.Getpid())
	taps := []string{tapName("n1"), tapName("n2")}
	if err := createNetwork(ctx, ns, "192.168.224.1/24", taps); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = deleteNetwork(context.Background(), ns) })
	if err := createNetwork(ctx, ns, "192.168.224.1/24", taps); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Errorf("a second network of one cluster: %v", err)
	}
	master := func(tap string) string {
		out, err := run.Output(ctx, "ip", "-n", ns, "-o", "link", "show", tap)
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(string(out))
		for i, w := range f {
			if w == "master" && i+1 < len(f) {
				return f[i+1]
			}
		}
		return ""
	}
	if m := master(taps[0]); m != bridgeName {
		t.Errorf("tap on %q, want %s", m, bridgeName)
	}
	addrs, _ := run.Output(ctx, "ip", "-n", ns, "-o", "-4", "addr", "show", "dev", bridgeName)
	if !strings.Contains(string(addrs), "192.168.224.1/24") {
		t.Errorf("applbuild's address is not on the bridge: %s", addrs)
	}
	// Nothing of it in the host's own namespace.
	if out, _ := run.Output(ctx, "ip", "-o", "link", "show"); strings.Contains(string(out), taps[0]) {
		t.Errorf("a tap in the host's namespace:\n%s", out)
	}

	if err := partition(ctx, ns, taps[0], "192.168.224.161", "192.168.224.1/24", true); err != nil {
		t.Fatal(err)
	}
	if m := master(taps[0]); m != islandName {
		t.Errorf("partitioned tap on %q, want %s", m, islandName)
	}
	route, _ := run.Output(ctx, "ip", "-n", ns, "route", "get", "192.168.224.161")
	if !strings.Contains(string(route), "dev "+islandName) {
		t.Errorf("no route to the partitioned node through the island: %s", route)
	}
	if err := partition(ctx, ns, taps[0], "192.168.224.161", "192.168.224.1/24", false); err != nil {
		t.Fatal(err)
	}
	if m := master(taps[0]); m != bridgeName {
		t.Errorf("healed tap on %q", m)
	}
	route, _ = run.Output(ctx, "ip", "-n", ns, "route", "get", "192.168.224.161")
	if !strings.Contains(string(route), "dev "+bridgeName) {
		t.Errorf("healed route: %s", route)
	}

	// Dial from inside: a listener made in the namespace, on applbuild's
	// address there, answers; a closed port does not.
	var l net.Listener
	if err := inNetns(ns, func() (err error) {
		l, err = net.Listen("tcp", "192.168.224.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go acceptAndClose(l)
	if err := dialIn(ns, l.Addr().String(), 5*time.Second); err != nil {
		t.Errorf("dial %s inside the namespace: %v", l.Addr(), err)
	}
	if err := dialIn(ns, "192.168.224.1:9", time.Second); err == nil {
		t.Error("a dial to a closed port answered")
	}

	// Listen: a stand-in outside the cluster on an address of its own;
	// the nodes' and floating addresses and other LANs are refused.
	c := &Cluster{NetNS: ns, HostAddr: "192.168.224.1/24"}
	c.Plan.Network.Subnet = "192.168.224.0/24"
	c.Plan.Nodes = append(c.Plan.Nodes, builder.Node{Name: "n1", Address: "192.168.224.161"})
	c.Plan.Services = append(c.Plan.Services, builder.Service{Name: "pound", IP: "192.168.224.170"})
	for addr, want := range map[string]string{
		"192.168.224.161:80": "n1's address",
		"192.168.224.170:80": "pound's floating address",
		"10.0.0.1:80":        "not on the cluster's LAN",
	} {
		if _, err := c.Listen(ctx, addr); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Listen(%s) = %v, want %q", addr, err, want)
		}
	}
	sl, err := c.Listen(ctx, "192.168.224.21:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sl.Close()
	go acceptAndClose(sl)
	if err := dialIn(ns, sl.Addr().String(), 5*time.Second); err != nil {
		t.Errorf("dial the stand-in %s: %v", sl.Addr(), err)
	}
	if out, _ := run.Output(ctx, "ip", "-o", "addr", "show"); strings.Contains(string(out), "192.168.224.21/") {
		t.Errorf("the stand-in's address is in the host's namespace:\n%s", out)
	}

	if err := deleteNetwork(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if netnsExists(ns) {
		t.Error("the namespace is still there")
	}
	if err := deleteNetwork(ctx, ns); err != nil {
		t.Errorf("removing a network that is gone: %v", err)
	}
}

// acceptAndClose accepts and closes every connection until l is closed.
func acceptAndClose(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}
