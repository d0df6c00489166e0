package hsm

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"

	"gardend/platform"
)

// storageKeyInfo domain-separates the storage key from any other use of the
// identity seed. Changing it orphans every existing database.
const storageKeyInfo = "gardend/v1/storage-key"

// wrapAAD binds a wrapped data key to its purpose.
var wrapAAD = []byte("gardend/v1/data-key")

// wrapVersion is the first byte of a wrapped data key: nonce and sealed key follow.
const wrapVersion = 1

const gcmNonceSize = 12

// soft is the software keystore: an Ed25519 seed in a PEM (PKCS#8) file,
// followed by its public key (see readKeyFile).
type soft struct {
	path string
	priv ed25519.PrivateKey
	// checkPublic, when the public key was taken from the file rather than
	// derived from the seed, derives it once before the first signature
	// and compares; nil when it was derived.
	checkPublic func() error
	aead        cipher.AEAD
	closed      atomic.Bool
}

func openSoft(path string, create bool) (Keystore, bool, error) {
	priv, pubFromFile, err := readKeyFile(path)
	created := false
	if errors.Is(err, fs.ErrNotExist) && create {
		_, priv, err = ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, false, err
		}
		pemBytes, err := marshalKeyFile(priv)
		if err != nil {
			return nil, false, err
		}
		if err := platform.WriteFileAtomic(path, pemBytes, 0o600); err != nil {
			return nil, false, fmt.Errorf("write key file: %w", err)
		}
		created = true
	} else if errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("%s: %w", path, ErrNoKey)
	} else if err != nil {
		return nil, false, err
	}
	kek, err := hkdf.Key(sha256.New, priv.Seed(), nil, storageKeyInfo, 32)
	if err != nil {
		return nil, false, err
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, false, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, false, err
	}
	ks := &soft{path: path, priv: priv, aead: aead}
	if pubFromFile {
		ks.checkPublic = sync.OnceValue(func() error {
			if !bytes.Equal(ed25519.NewKeyFromSeed(priv.Seed())[ed25519.SeedSize:], priv[ed25519.SeedSize:]) {
				return fmt.Errorf("%s: %w", path, ErrKeyMismatch)
			}
			return nil
		})
	}
	return ks, created, nil
}

// marshalKeyFile writes priv as keygen does: its seed as a PEM "PRIVATE KEY"
// (PKCS#8, RFC 8410, as `openssl genpkey -algorithm ed25519` writes it), then
// its public key as a PEM "PUBLIC KEY" (as `openssl pkey -pubout` writes it).
func marshalKeyFile(priv ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		return nil, err
	}
	return append(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})...), nil
}

// readKeyFile reads a key file: a PEM "PRIVATE KEY" block, and after it,
// optionally, the PEM "PUBLIC KEY" block of the same key. With that block the
// public key is taken from the file (pubFromFile) instead of being derived
// from the seed, which would fill crypto/ed25519's base-point table on the
// start's path: 256 field inversions, 10–20 ms of a start under qemu-aarch64
// and a few ms on a board. The first signature needs the table anyway and
// derives the key then (soft.checkPublic). Other blocks are ignored, and a
// file without the public block (an older keygen's, `openssl genpkey`'s) is
// read as before.
func readKeyFile(path string) (priv ed25519.PrivateKey, pubFromFile bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, false, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, false, fmt.Errorf("%s has mode %04o, want 0600: %w", path, st.Mode().Perm(), ErrKeyFileMode)
	}
	data, err := io.ReadAll(io.LimitReader(f, 16<<10)) // a key file is a few hundred bytes
	if err != nil {
		return nil, false, err
	}
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, false, fmt.Errorf("%s: not a PEM \"PRIVATE KEY\" file", path)
	}
	var pub ed25519.PublicKey
	for {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type == "PUBLIC KEY" {
			if pub, err = parseEd25519SPKI(b.Bytes); err != nil {
				return nil, false, fmt.Errorf("%s: the PUBLIC KEY block: %w", path, err)
			}
			break
		}
	}
	if seed, ok := parseEd25519PKCS8(block.Bytes); ok {
		if pub != nil {
			return ed25519.PrivateKey(append(bytes.Clone(seed), pub...)), true, nil
		}
		return ed25519.NewKeyFromSeed(seed), false, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, false, fmt.Errorf("%s: key is %T, want Ed25519", path, k)
	}
	// x509 derived the public key: the file's must be the same.
	if pub != nil && !pub.Equal(priv.Public()) {
		return nil, false, fmt.Errorf("%s: %w", path, ErrKeyMismatch)
	}
	return priv, false, nil
}

// ed25519PKCS8Prefix is the DER of an Ed25519 private key in PKCS#8 v1
// (RFC 8410: version 0, algorithm 1.3.101.112, the 32-byte seed as an OCTET
// STRING inside the privateKey OCTET STRING) up to the seed: what keygen
// (x509.MarshalPKCS8PrivateKey) and `openssl genpkey -algorithm ed25519`
// write.
const ed25519PKCS8Prefix = "\x30\x2e\x02\x01\x00\x30\x05\x06\x03\x2b\x65\x70\x04\x22\x04\x20"

// parseEd25519PKCS8 returns the seed of a key in exactly that form, without
// encoding/asn1, whose reflection-driven parser is code run once per start
// (2.4 ms of it under qemu-aarch64). Any other form (attributes, a public
// key, another algorithm) reports false and goes through x509, which decides
// as before.
func parseEd25519PKCS8(der []byte) (seed []byte, ok bool) {
	if len(der) != len(ed25519PKCS8Prefix)+ed25519.SeedSize || string(der[:len(ed25519PKCS8Prefix)]) != ed25519PKCS8Prefix {
		return nil, false
	}
	return der[len(ed25519PKCS8Prefix):], true
}

// ed25519SPKIPrefix is the DER of an Ed25519 SubjectPublicKeyInfo (RFC 8410:
// algorithm 1.3.101.112, the 32-byte key as a BIT STRING) up to the key.
const ed25519SPKIPrefix = "\x30\x2a\x30\x05\x06\x03\x2b\x65\x70\x03\x21\x00"

// parseEd25519SPKI reads an Ed25519 public key, in that exact form directly
// and in any other through x509.
func parseEd25519SPKI(der []byte) (ed25519.PublicKey, error) {
	if len(der) == len(ed25519SPKIPrefix)+ed25519.PublicKeySize && string(der[:len(ed25519SPKIPrefix)]) == ed25519SPKIPrefix {
		return ed25519.PublicKey(bytes.Clone(der[len(ed25519SPKIPrefix):])), nil
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, err
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("key is %T, want Ed25519", k)
	}
	return pub, nil
}

func (s *soft) PublicKey() ed25519.PublicKey { return s.priv.Public().(ed25519.PublicKey) }

func (s *soft) Sign(msg []byte) ([]byte, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if s.checkPublic != nil {
		if err := s.checkPublic(); err != nil {
			return nil, err
		}
	}
	return ed25519.Sign(s.priv, msg), nil
}

func (s *soft) WrapDataKey(dataKey []byte) ([]byte, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	return sealWrapped(s.aead, dataKey)
}

func (s *soft) UnwrapDataKey(wrapped []byte) ([]byte, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	return openWrapped(s.aead, wrapped)
}

func (s *soft) String() string { return "software key file:" + s.path }

func (s *soft) Close() error {
	s.closed.Store(true)
	return nil
}

func sealWrapped(aead cipher.AEAD, dataKey []byte) ([]byte, error) {
	out := make([]byte, 1+gcmNonceSize, 1+gcmNonceSize+len(dataKey)+aead.Overhead())
	out[0] = wrapVersion
	if _, err := rand.Read(out[1 : 1+gcmNonceSize]); err != nil {
		return nil, err
	}
	return aead.Seal(out, out[1:1+gcmNonceSize], dataKey, wrapAAD), nil
}

func openWrapped(aead cipher.AEAD, wrapped []byte) ([]byte, error) {
	if len(wrapped) < 1+gcmNonceSize+aead.Overhead() || wrapped[0] != wrapVersion {
		return nil, ErrUnwrap
	}
	dk, err := aead.Open(nil, wrapped[1:1+gcmNonceSize], wrapped[1+gcmNonceSize:], wrapAAD)
	if err != nil {
		return nil, ErrUnwrap
	}
	return dk, nil
}
