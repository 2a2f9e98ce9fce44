// Package keys derives every secret a cluster needs (corosync authkey, ssh
// host and root keys) from one master secret and the cluster's identity,
// so a rebuild with the same secret gives the same bytes, two sites with
// different secrets share nothing, and neither do two clusters of one site.
// The master secret never enters the Plan.
package keys

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/applbuild/applbuild/internal/regfile"
)

// Ring derives keys from a master secret.
type Ring struct {
	master      []byte
	fingerprint string // the site secret's, also on a cluster's ring
}

// Bounds of a site secret: at least a 256-bit key, and small enough that
// reading /dev/zero or a disk image by mistake is refused, not slurped.
const (
	MinSecret = 32
	MaxSecret = 4 << 10
)

// ErrBadSecret matches every refusal of a site secret.
var ErrBadSecret = errors.New("unusable site secret")

func bad(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadSecret}, args...)...)
}

// New makes a Ring from master, refusing one too short, too long or all
// zeros (an unset or wiped secret).
func New(master []byte) (*Ring, error) {
	if len(master) < MinSecret {
		return nil, bad("it is %d bytes, want at least %d", len(master), MinSecret)
	}
	if len(master) > MaxSecret {
		return nil, bad("it is more than %d bytes: not a secret file", MaxSecret)
	}
	if bytes.Count(master, []byte{0}) == len(master) {
		return nil, bad("it is all zero bytes")
	}
	sum := sha256.Sum256(append([]byte("applbuild/secret-fingerprint/v1\x00"), master...))
	return &Ring{master: append([]byte(nil), master...), fingerprint: hex.EncodeToString(sum[:8])}, nil
}

// Fingerprint names the site secret without revealing it: the first 16
// hex digits of sha256 over a label and the secret. Two builds with the
// same fingerprint used the same secret; a cluster's ring has its site's.
func (r *Ring) Fingerprint() string { return r.fingerprint }

// Cluster is the ring of one cluster, id its identity (the plan's seed,
// from the cluster name and domain): its master is derived from r's and
// id, so no key of one cluster opens another built from the same secret.
func (r *Ring) Cluster(id string) *Ring {
	m := hmac.New(sha256.New, r.master)
	m.Write([]byte("applbuild/cluster-ring/v1\x00"))
	m.Write([]byte(id))
	return &Ring{master: m.Sum(nil), fingerprint: r.fingerprint}
}

// Bytes derives n bytes for label (HMAC-SHA256 in counter mode).
func (r *Ring) Bytes(label string, n int) []byte {
	out := make([]byte, 0, n+sha256.Size)
	for i := uint32(1); len(out) < n; i++ {
		m := hmac.New(sha256.New, r.master)
		var ctr [4]byte
		binary.BigEndian.PutUint32(ctr[:], i)
		m.Write(ctr[:])
		m.Write([]byte(label))
		out = m.Sum(out)
	}
	return out[:n]
}

// SSHKey is an ed25519 key pair in OpenSSH formats.
type SSHKey struct {
	Private []byte // "-----BEGIN OPENSSH PRIVATE KEY-----" PEM
	Public  string // "ssh-ed25519 AAAA... comment"
}

// SSH derives the ed25519 key for label. The private key file is written
// without randomness (OpenSSH's check integers come from the key too), so
// it is reproducible.
func (r *Ring) SSH(label, comment string) SSHKey {
	seed := r.Bytes("ssh-ed25519/"+label, ed25519.SeedSize)
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	pubBlob := sshString(nil, []byte("ssh-ed25519"))
	pubBlob = sshString(pubBlob, pub)

	check := binary.BigEndian.Uint32(r.Bytes("ssh-check/"+label, 4))
	var body []byte
	body = binary.BigEndian.AppendUint32(body, check)
	body = binary.BigEndian.AppendUint32(body, check)
	body = sshString(body, []byte("ssh-ed25519"))
	body = sshString(body, pub)
	body = sshString(body, priv) // 64 bytes: seed then public key
	body = sshString(body, []byte(comment))
	for i := byte(1); len(body)%8 != 0; i++ {
		body = append(body, i)
	}
	var blob []byte
	blob = append(blob, "openssh-key-v1\x00"...)
	blob = sshString(blob, []byte("none"))
	blob = sshString(blob, []byte("none"))
	blob = sshString(blob, nil)
	blob = binary.BigEndian.AppendUint32(blob, 1)
	blob = sshString(blob, pubBlob)
	blob = sshString(blob, body)
	return SSHKey{
		Private: pem.EncodeToMemory(&pem.Block{Type: "OPENSSH PRIVATE KEY", Bytes: blob}),
		Public:  "ssh-ed25519 " + base64.StdEncoding.EncodeToString(pubBlob) + " " + comment,
	}
}

func sshString(b, s []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// Load reads the master secret at path, refusing (ErrBadSecret, with the
// reason) a file that is not a regular file, that its group or others may
// read or write, or whose content New refuses.
func Load(path string) ([]byte, error) {
	f, fi, err := regfile.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w", path, bad("it is not a regular file (%s)", fi.Mode().Type()))
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s: %w", path, bad("its mode %04o lets others read or change it: chmod 600 %s", perm, path))
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxSecret+1))
	if err != nil {
		return nil, err
	}
	if _, err := New(b); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// LoadOrCreate reads the master secret at path (Load), creating it (32
// random bytes, mode 0600, written atomically) when it does not exist yet.
func LoadOrCreate(path string) ([]byte, bool, error) {
	b, err := Load(path)
	if err == nil {
		return b, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, err
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, false, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".secret-*")
	if err != nil {
		return nil, false, err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(secret); err != nil {
		tmp.Close()
		return nil, false, err
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, false, err
	}
	if err := tmp.Close(); err != nil {
		return nil, false, err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, os.ErrExist) { // another build made it first
			b, err := Load(path)
			return b, false, err
		}
		return nil, false, err
	}
	return secret, true, nil
}

// DefaultPath is where the master secret lives when --secret is not given.
func DefaultPath() string {
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = "/root"
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "applbuild", "secret")
}
