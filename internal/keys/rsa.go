package keys

import (
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/big"
	"sync"
	"sync/atomic"
)

// RSA derives the RSA key of bits for label: its primes are drawn from an
// HMAC-SHA256 stream of the ring, so a rebuild gives the same key. crypto/rsa
// cannot do this (since Go 1.26 GenerateKey ignores its reader), so the
// primes are searched here, the way GenerateKey does: random odd candidates
// of bits/2 with their top two bits set, so p·q has exactly bits; kept when
// big.Int.ProbablyPrime(20) (Miller-Rabin and Baillie-PSW) holds and e is
// invertible mod p-1. The key is checked by rsa.PrivateKey.Validate.
// A 4096-bit key takes seconds to find, so each is kept for the life of
// the process (a build renders every node with the same ring).
func (r *Ring) RSA(label string, bits int) (*rsa.PrivateKey, error) {
	if bits < 2048 || bits%16 != 0 {
		return nil, fmt.Errorf("rsa key %q: %d bits, want a multiple of 16, at least 2048", label, bits)
	}
	id := sha256.Sum256(append(r.Bytes("rsa-cache-id/"+label, 32), byte(bits>>8), byte(bits)))
	rsaMu.Lock() // nodes rendered side by side wait for one search
	defer rsaMu.Unlock()
	if k, ok := rsaCache.Load(id); ok {
		return k.(*rsa.PrivateKey), nil
	}
	s := &stream{key: r.Bytes("rsa/"+label, sha256.Size)}
	e := big.NewInt(65537)
	one := big.NewInt(1)
	for {
		p, q := s.prime(bits/2, e), s.prime(bits/2, e)
		if p.Cmp(q) == 0 {
			continue
		}
		n := new(big.Int).Mul(p, q)
		if n.BitLen() != bits {
			continue
		}
		pm, qm := new(big.Int).Sub(p, one), new(big.Int).Sub(q, one)
		phi := new(big.Int).Mul(pm, qm)
		d := new(big.Int).ModInverse(e, phi)
		if d == nil {
			continue
		}
		if p.Cmp(q) < 0 { // Primes[0] > Primes[1], as OpenSSL writes them
			p, q = q, p
		}
		k := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: n, E: 65537}, D: d, Primes: []*big.Int{p, q}}
		if err := k.Validate(); err != nil {
			return nil, fmt.Errorf("rsa key %q: %w", label, err)
		}
		k.Precompute()
		rsaCache.Store(id, k)
		rsaSearched.Add(1)
		return k, nil
	}
}

// RSASearched is how many RSA keys this process has searched for (a key
// served from the cache is not counted): a test that bounds the CPU time of
// a render allows for each.
func RSASearched() int64 { return rsaSearched.Load() }

var (
	rsaSearched atomic.Int64
	rsaMu       sync.Mutex
	rsaCache    sync.Map // sha256 of a ring-derived id -> *rsa.PrivateKey
)

// stream is HMAC-SHA256 in counter mode under key.
type stream struct {
	key []byte
	ctr uint64
}

func (s *stream) read(n int) []byte {
	out := make([]byte, 0, n+sha256.Size)
	for len(out) < n {
		s.ctr++
		m := hmac.New(sha256.New, s.key)
		var c [8]byte
		binary.BigEndian.PutUint64(c[:], s.ctr)
		m.Write(c[:])
		out = m.Sum(out)
	}
	return out[:n]
}

// prime draws a random odd start of bits (a multiple of 8, its top two
// bits set) and searches upward from it, as crypto/rand.Prime does: steps
// that a prime below 2^16 divides are skipped without big arithmetic, the
// rest are kept when ProbablyPrime(20) holds and e is invertible mod p-1.
// A search that runs past the top of bits draws a new start.
func (s *stream) prime(bits int, e *big.Int) *big.Int {
	one := big.NewInt(1)
	small := smallPrimes()
	res := make([]uint64, len(small))
	m, p := new(big.Int), new(big.Int)
	for {
		b := s.read(bits / 8)
		b[0] |= 0xc0
		b[len(b)-1] |= 1
		start := new(big.Int).SetBytes(b)
		for i, q := range small {
			res[i] = m.Mod(start, m.SetUint64(q)).Uint64()
		}
	next:
		for delta := uint64(0); delta < 1<<20; delta += 2 {
			for i, q := range small {
				if (res[i]+delta)%q == 0 {
					continue next
				}
			}
			p.Add(start, m.SetUint64(delta))
			if p.BitLen() != bits {
				break
			}
			if p.ProbablyPrime(20) && m.GCD(nil, nil, e, new(big.Int).Sub(p, one)).Cmp(one) == 0 {
				return new(big.Int).Set(p)
			}
		}
	}
}

// smallPrimes are the odd primes below 2^16, for prime's sieve.
var smallPrimes = sync.OnceValue(func() []uint64 {
	const n = 1 << 16
	composite := make([]bool, n)
	var out []uint64
	for i := 3; i < n; i += 2 {
		if composite[i] {
			continue
		}
		out = append(out, uint64(i))
		for j := i * i; j < n; j += 2 * i {
			composite[j] = true
		}
	}
	return out
})
