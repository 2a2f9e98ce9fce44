package overlays

import (
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/applbuild/applbuild/builder"
)

// puppetCA gives a puppetserver cluster its certificate authority and each
// node its server certificate, made at build time from the cluster's ring.
//
// puppetserver makes both on its first start when they are missing: two
// 4096-bit RSA keys, which under software emulation took minutes of a
// start that failover waits for (docs/cluster.md). The files are the ones
// puppetserver writes itself (certificate_authority.clj's
// generate-ssl-files! and initialize-master-ssl!, the layout `puppetserver
// ca import` writes): a one-level CA in cadir, which lives on the shared
// /etc/puppet volume, so every node signs with one CA; and in each node's
// own ssldir its key and a certificate for its certname (the node's FQDN,
// puppet's default), with puppet's default alternative name "puppet" and
// the floating service's name. With all of them present puppetserver logs
// "CA already initialized for SSL" and "Master already initialized for
// SSL" and generates nothing.
//
// The dates are fixed, so a rebuild is bit-identical: valid from
// puppetNotBefore for puppetValidity. A site with its own CA imports it
// (`puppetserver ca import`) over these.
func puppetCA(in Input) ([]File, error) {
	sv, ok := puppetService(in.Plan)
	if !ok {
		return nil, nil
	}
	ca, err := in.Keys.RSA("puppet-ca", puppetKeyBits)
	if err != nil {
		return nil, err
	}
	caName := "Puppet CA: " + puppetServiceName(sv)
	notAfter := puppetNotBefore.Add(puppetValidity)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: caName},
		NotBefore:             puppetNotBefore,
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SubjectKeyId:          keyID(&ca.PublicKey),
		AuthorityKeyId:        keyID(&ca.PublicKey),
		ExtraExtensions:       []pkix.Extension{netscapeComment()},
	}
	caDER, err := x509.CreateCertificate(nil, caTmpl, caTmpl, &ca.PublicKey, ca)
	if err != nil {
		return nil, fmt.Errorf("puppet CA: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	crlDER, err := x509.CreateRevocationList(nil, &x509.RevocationList{
		Number: big.NewInt(0), ThisUpdate: puppetNotBefore, NextUpdate: notAfter,
	}, caCert, ca)
	if err != nil {
		return nil, fmt.Errorf("puppet CA's CRL: %w", err)
	}
	caPEM := pemBlock("CERTIFICATE", caDER)
	crlPEM := pemBlock("X509 CRL", crlDER)
	caPub, err := x509.MarshalPKIXPublicKey(&ca.PublicKey)
	if err != nil {
		return nil, err
	}

	const owner = "puppet:puppet"
	const cadir = "/etc/puppet/puppetserver/ca"
	const ssldir = "/var/lib/puppet/ssl"
	inventory := []string{inventoryLine(caCert)}
	out := []File{
		directory(cadir, 0o755, owner),
		directory(cadir+"/signed", 0o755, owner),
		directory(cadir+"/requests", 0o755, owner),
		{Path: cadir + "/ca_crt.pem", Mode: 0o644, Owner: owner, Data: caPEM},
		{Path: cadir + "/ca_key.pem", Mode: 0o640, Owner: owner, Data: pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(ca))},
		{Path: cadir + "/ca_pub.pem", Mode: 0o644, Owner: owner, Data: pemBlock("PUBLIC KEY", caPub)},
		{Path: cadir + "/ca_crl.pem", Mode: 0o644, Owner: owner, Data: crlPEM},
		{Path: cadir + "/infra_crl.pem", Mode: 0o644, Owner: owner, Data: crlPEM},
		{Path: cadir + "/infra_inventory.txt", Mode: 0o644, Owner: owner},
		{Path: cadir + "/infra_serials", Mode: 0o644, Owner: owner},
		directory(ssldir, 0o771, owner),
		directory(ssldir+"/certs", 0o755, owner),
		directory(ssldir+"/private_keys", 0o750, owner),
		directory(ssldir+"/public_keys", 0o755, owner),
		{Path: ssldir + "/certs/ca.pem", Mode: 0o644, Owner: owner, Data: caPEM},
		{Path: ssldir + "/crl.pem", Mode: 0o644, Owner: owner, Data: crlPEM},
	}
	// Every node's certificate, in plan order (serials 2, 3, ...): the CA
	// directory is the same on every node, and this node's own key.
	for i, n := range in.Plan.Nodes {
		key, err := in.Keys.RSA("puppet-server/"+n.Name, puppetKeyBits)
		if err != nil {
			return nil, err
		}
		certname := strings.ToLower(n.FQDN)
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(int64(i + 2)),
			Subject:               pkix.Name{CommonName: certname},
			NotBefore:             puppetNotBefore,
			NotAfter:              notAfter,
			BasicConstraintsValid: true,
			KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			SubjectKeyId:          keyID(&key.PublicKey),
			DNSNames:              puppetAltNames(sv, certname),
			ExtraExtensions: []pkix.Extension{netscapeComment(), {
				// pp_cli_auth: puppetserver gives its own certificate
				// the right to use the CA's API from the command line.
				Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 34380, 1, 3, 39}, Value: mustASN1(asn1.RawValue{Tag: asn1.TagUTF8String, Bytes: []byte("true")}),
			}},
		}
		der, err := signPuppetCert(tmpl, caCert, &key.PublicKey, ca)
		if err != nil {
			return nil, fmt.Errorf("puppet certificate of %s: %w", n.Name, err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, err
		}
		inventory = append(inventory, inventoryLine(cert))
		certPEM := pemBlock("CERTIFICATE", der)
		out = append(out, File{Path: cadir + "/signed/" + certname + ".pem", Mode: 0o644, Owner: owner, Data: certPEM})
		if n.Name != in.Node.Name {
			continue
		}
		pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
		if err != nil {
			return nil, err
		}
		out = append(out,
			File{Path: ssldir + "/certs/" + certname + ".pem", Mode: 0o644, Owner: owner, Data: certPEM},
			File{Path: ssldir + "/private_keys/" + certname + ".pem", Mode: 0o640, Owner: owner, Data: pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key))},
			File{Path: ssldir + "/public_keys/" + certname + ".pem", Mode: 0o644, Owner: owner, Data: pemBlock("PUBLIC KEY", pub)})
	}
	out = append(out,
		File{Path: cadir + "/inventory.txt", Mode: 0o640, Owner: owner, Data: []byte(strings.Join(inventory, ""))},
		// The next serial, as puppetserver writes it (hex, 4 digits).
		File{Path: cadir + "/serial", Mode: 0o644, Owner: owner, Data: fmt.Appendf(nil, "%04X", len(in.Plan.Nodes)+2)})
	return out, nil
}

// Every node's render signs every node's certificate (the CA directory is
// the same on all of them), so a build of N nodes would make N² RSA-4096
// signatures: 4096 for the 64-node limit. A PKCS #1 v1.5 signature is
// deterministic, so each certificate is signed once per process and kept
// by everything it is made of.
var (
	puppetCertsMu sync.Mutex
	puppetCerts   = map[[32]byte][]byte{}
	puppetSigned  atomic.Int64 // signatures made, for the test
)

// signPuppetCert is x509.CreateCertificate of tmpl by ca, once per
// process for the same CA, key and template fields.
func signPuppetCert(tmpl, caCert *x509.Certificate, pub *rsa.PublicKey, ca *rsa.PrivateKey) ([]byte, error) {
	h := sha256.New()
	for _, b := range [][]byte{caCert.Raw, pub.N.Bytes(), big.NewInt(int64(pub.E)).Bytes(), tmpl.SerialNumber.Bytes(),
		[]byte(tmpl.Subject.CommonName), []byte(strings.Join(tmpl.DNSNames, "\x00")),
		fmt.Appendf(nil, "%d/%d", tmpl.NotBefore.Unix(), tmpl.NotAfter.Unix())} {
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	var k [32]byte
	h.Sum(k[:0])
	puppetCertsMu.Lock()
	defer puppetCertsMu.Unlock()
	if der, ok := puppetCerts[k]; ok {
		return der, nil
	}
	der, err := x509.CreateCertificate(nil, tmpl, caCert, pub, ca)
	if err != nil {
		return nil, err
	}
	puppetSigned.Add(1)
	puppetCerts[k] = der
	return der, nil
}

// puppetKeyBits is puppet's keylength default.
const puppetKeyBits = 4096

// puppetNotBefore is the CA's fixed start: rootfs.DefaultSourceDateEpoch
// (the trixie release); puppetValidity takes it to 2045. puppetserver
// allows a CA up to 50 years (max-ca-ttl); its own default is 5 years
// from the first start.
var (
	puppetNotBefore = time.Unix(1754697600, 0).UTC()
	puppetValidity  = 20 * 365 * 24 * time.Hour
)

// puppetService is the plan's puppetserver service, if it has one.
func puppetService(pl *builder.Plan) (builder.Service, bool) {
	for _, sv := range pl.Services {
		if _, _, typ := sv.AgentParts(); typ == "puppetserver" {
			return sv, true
		}
	}
	return builder.Service{}, false
}

// puppetServiceName is the name agents reach the service by: its floating
// address's DNS name, or puppet's default server name.
func puppetServiceName(sv builder.Service) string {
	if sv.Host != "" {
		return strings.ToLower(sv.Host)
	}
	return "puppet"
}

// puppetAltNames are a server certificate's DNS names: puppetserver's
// defaults ("puppet" and the certname) and the floating service's name.
func puppetAltNames(sv builder.Service, certname string) []string {
	names := []string{"puppet"}
	for _, n := range []string{puppetServiceName(sv), certname} {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}

// keyID is the subject key identifier of RFC 5280 4.2.1.2 (1): the SHA-1
// of the public key's bits, as puppetserver's ssl-utils makes it.
func keyID(pub *rsa.PublicKey) []byte {
	sum := sha1.Sum(x509.MarshalPKCS1PublicKey(pub))
	return sum[:]
}

// netscapeComment is the comment puppetserver puts on every certificate
// it makes.
func netscapeComment() pkix.Extension {
	return pkix.Extension{
		Id:    asn1.ObjectIdentifier{2, 16, 840, 1, 113730, 1, 13},
		Value: mustASN1(asn1.RawValue{Tag: asn1.TagIA5String, Bytes: []byte("Puppet Server Internal Certificate")}),
	}
}

func mustASN1(v any) []byte {
	b, err := asn1.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// inventoryLine is a cert's line in the CA's inventory.txt, as
// puppetserver writes it: serial, validity, subject.
func inventoryLine(c *x509.Certificate) string {
	const f = "2006-01-02T15:04:05UTC"
	return fmt.Sprintf("0x%04x %s %s /CN=%s\n", c.SerialNumber, c.NotBefore.UTC().Format(f), c.NotAfter.UTC().Format(f), c.Subject.CommonName)
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
