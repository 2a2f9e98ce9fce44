package overlays

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/applbuild/applbuild/internal/testenv"
)

// TestPuppetCA checks the build-time CA and server certificates with
// OpenSSL, the way a puppet agent's TLS stack sees them: each node's
// certificate chains to the CA, is not revoked by a CRL that verifies,
// serves and authenticates TLS, names the node, "puppet" and the floating
// service, and matches the node's own key; the CA directory is one on
// every node and each node holds only its own key.
func TestPuppetCA(t *testing.T) {
	testenv.Tools(t, "openssl")
	pl := planFor(t, "web-cluster")
	sv, ok := puppetService(pl)
	if !ok {
		t.Fatal("web-cluster has no puppetserver")
	}
	const cadir, ssldir = "/etc/puppet/puppetserver/ca", "/var/lib/puppet/ssl"
	var first map[string]File
	for _, n := range pl.Nodes {
		files := renderNode(t, pl, n.Name)
		if first == nil {
			first = files
		}
		for p, f := range first {
			if strings.HasPrefix(p, cadir+"/") && !bytes.Equal(files[p].Data, f.Data) {
				t.Errorf("%s: %s differs from %s's", n.Name, p, pl.Nodes[0].Name)
			}
		}
		dir := t.TempDir()
		write := func(name string, f File) string {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, f.Data, 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}
		ca := write("ca.pem", mustFile(t, files, cadir+"/ca_crt.pem"))
		crl := write("crl.pem", mustFile(t, files, cadir+"/ca_crl.pem"))
		certname := strings.ToLower(n.FQDN)
		cert := write("cert.pem", mustFile(t, files, ssldir+"/certs/"+certname+".pem"))
		key := write("key.pem", mustFile(t, files, ssldir+"/private_keys/"+certname+".pem"))
		for _, purpose := range []string{"sslserver", "sslclient"} {
			if out, err := combined(ctxFor(t), "openssl", "verify", "-x509_strict", "-purpose", purpose, "-crl_check", "-CAfile", ca, "-CRLfile", crl, cert); err != nil {
				t.Errorf("%s: openssl verify -purpose %s: %v\n%s", n.Name, purpose, err, out)
			}
		}
		for _, host := range []string{certname, "puppet", puppetServiceName(sv)} {
			if out, err := combined(ctxFor(t), "openssl", "x509", "-in", cert, "-noout", "-checkhost", host); err != nil || !strings.Contains(out, "does match") {
				t.Errorf("%s: the certificate does not name %s: %v\n%s", n.Name, host, err, out)
			}
		}
		certMod, err1 := combined(ctxFor(t), "openssl", "x509", "-in", cert, "-noout", "-modulus")
		keyMod, err2 := combined(ctxFor(t), "openssl", "rsa", "-in", key, "-noout", "-modulus")
		if err1 != nil || err2 != nil || certMod != keyMod {
			t.Errorf("%s: certificate and key do not match (%v, %v)", n.Name, err1, err2)
		}
		for p, f := range files {
			if strings.HasPrefix(p, ssldir+"/private_keys/") && !f.IsDir() && p != ssldir+"/private_keys/"+certname+".pem" {
				t.Errorf("%s holds another node's key %s", n.Name, p)
			}
			if strings.HasSuffix(p, "_key.pem") || strings.HasPrefix(p, ssldir+"/private_keys/") && !f.IsDir() {
				if f.Mode.Perm() != 0o640 || f.Owner != "puppet:puppet" {
					t.Errorf("%s: %s is %v %s, want 0640 puppet:puppet", n.Name, p, f.Mode.Perm(), f.Owner)
				}
			}
		}
	}
	inv := string(mustFile(t, first, cadir+"/inventory.txt").Data)
	if got := strings.Count(inv, "\n"); got != len(pl.Nodes)+1 {
		t.Errorf("inventory.txt has %d lines, want the CA and %d nodes:\n%s", got, len(pl.Nodes), inv)
	}
	if !strings.HasPrefix(inv, "0x0001 2025-08-09T00:00:00UTC 2045-08-04T00:00:00UTC /CN=Puppet CA: puppet.example.org\n") {
		t.Errorf("inventory.txt starts %q", inv)
	}
	if got := string(mustFile(t, first, cadir+"/serial").Data); got != "0005" {
		t.Errorf("serial %q, want 0005 (CA, n1..n3 issued)", got)
	}
	// A plan without puppetserver gets none of it.
	for p := range renderNode(t, planFor(t, "mysql-ha"), "n1") {
		if strings.HasPrefix(p, cadir) || strings.HasPrefix(p, ssldir) {
			t.Errorf("mysql-ha has %s", p)
		}
	}
}

// TestPuppetCertsSignedOnce: rendering every node of a cluster signs each
// node's certificate once, not once per render (N², 4096 signatures of
// RSA-4096 at the 64-node limit), and the kept certificate is the one a
// fresh signature gives.
func TestPuppetCertsSignedOnce(t *testing.T) {
	pl := planFor(t, "web-cluster")
	before := puppetSigned.Load()
	var first []byte
	for _, n := range pl.Nodes {
		f := mustFile(t, renderNode(t, pl, n.Name), "/etc/puppet/puppetserver/ca/signed/"+strings.ToLower(pl.Nodes[0].FQDN)+".pem")
		if first == nil {
			first = f.Data
		} else if !bytes.Equal(f.Data, first) {
			t.Errorf("%s's render holds another certificate of %s", n.Name, pl.Nodes[0].Name)
		}
	}
	if d := puppetSigned.Load() - before; d > int64(len(pl.Nodes)) {
		t.Errorf("rendering %d nodes made %d signatures, want at most %d", len(pl.Nodes), d, len(pl.Nodes))
	}
	// The cache gives what signing gives.
	puppetCertsMu.Lock()
	clear(puppetCerts)
	puppetCertsMu.Unlock()
	f := mustFile(t, renderNode(t, pl, pl.Nodes[1].Name), "/etc/puppet/puppetserver/ca/signed/"+strings.ToLower(pl.Nodes[0].FQDN)+".pem")
	if !bytes.Equal(f.Data, first) {
		t.Error("a fresh signature differs from the kept certificate")
	}
}
