package overlays

import (
	"bytes"
	"encoding/base64"
	"encoding/pem"
	"strings"
	"testing"
)

// keyMaterial is the secret bytes of a node's overlay: the corosync
// authkey and the ed25519 seed and public key of the host and root keys.
func keyMaterial(t *testing.T, files map[string]File) map[string][]byte {
	t.Helper()
	m := map[string][]byte{"authkey": mustFile(t, files, corosyncKeyPath).Data}
	for _, p := range []string{"/etc/ssh/ssh_host_ed25519_key", "/root/.ssh/id_ed25519"} {
		fields := strings.Fields(string(mustFile(t, files, p+".pub").Data))
		blob, err := base64.StdEncoding.DecodeString(fields[1])
		if err != nil {
			t.Fatal(err)
		}
		pub := blob[len(blob)-32:]
		block, _ := pem.Decode(mustFile(t, files, p).Data)
		if block == nil {
			t.Fatalf("%s: not PEM", p)
		}
		// The private section holds seed || public key.
		i := bytes.LastIndex(block.Bytes, pub)
		if i < 32 {
			t.Fatalf("%s: no ed25519 private key in it", p)
		}
		m[p+" seed"], m[p+" public"] = block.Bytes[i-32:i], pub
	}
	return m
}

// sharesBytes reports whether a and b have any 8 bytes in common.
func sharesBytes(a, b []byte) bool {
	for i := 0; i+8 <= len(a); i++ {
		if bytes.Contains(b, a[i:i+8]) {
			return true
		}
	}
	return false
}

// TestKeysPerCluster: two clusters built from one site secret share no
// key bytes (corosync authkey, root's key, a node's host key), whether
// they differ in name or in domain; the same cluster twice gets the same.
func TestKeysPerCluster(t *testing.T) {
	lab := keyMaterial(t, renderNode(t, planFor(t, "web-cluster", "cluster.name=lab"), "n1"))
	again := keyMaterial(t, renderNode(t, planFor(t, "web-cluster", "cluster.name=lab"), "n1"))
	for k, v := range lab {
		if !bytes.Equal(v, again[k]) {
			t.Errorf("%s: the same cluster rendered twice, different keys", k)
		}
	}
	for _, other := range [][]string{{"cluster.name=prod"}, {"cluster.name=lab", "domain=prod.example"}} {
		prod := keyMaterial(t, renderNode(t, planFor(t, "web-cluster", other...), "n1"))
		for ka, a := range lab {
			for kb, b := range prod {
				if sharesBytes(a, b) {
					t.Errorf("%v: lab's %s and prod's %s share bytes", other, ka, kb)
				}
			}
		}
	}
}
