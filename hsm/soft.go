package hsm

import (
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

// soft is the software keystore: an Ed25519 seed in a PEM (PKCS#8) file.
type soft struct {
	path   string
	priv   ed25519.PrivateKey
	aead   cipher.AEAD
	closed atomic.Bool
}

func openSoft(path string, create bool) (Keystore, bool, error) {
	priv, err := readKeyFile(path)
	created := false
	if errors.Is(err, fs.ErrNotExist) && create {
		_, priv, err = ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, false, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return nil, false, err
		}
		pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
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
	return &soft{path: path, priv: priv, aead: aead}, created, nil
}

func readKeyFile(path string) (ed25519.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s has mode %04o, want 0600: %w", path, st.Mode().Perm(), ErrKeyFileMode)
	}
	data, err := io.ReadAll(io.LimitReader(f, 16<<10)) // a key file is a few hundred bytes
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: not a PEM \"PRIVATE KEY\" file", path)
	}
	if priv, ok := parseEd25519PKCS8(block.Bytes); ok {
		return priv, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: key is %T, want Ed25519", path, k)
	}
	return priv, nil
}

// ed25519PKCS8Prefix is the DER of an Ed25519 private key in PKCS#8 v1
// (RFC 8410: version 0, algorithm 1.3.101.112, the 32-byte seed as an OCTET
// STRING inside the privateKey OCTET STRING) up to the seed: what keygen
// (x509.MarshalPKCS8PrivateKey) and `openssl genpkey -algorithm ed25519`
// write.
const ed25519PKCS8Prefix = "\x30\x2e\x02\x01\x00\x30\x05\x06\x03\x2b\x65\x70\x04\x22\x04\x20"

// parseEd25519PKCS8 reads a key in exactly that form without encoding/asn1,
// whose reflection-driven parser is code run once per start (2.4 ms of it
// under qemu-aarch64). Any other form (attributes, a public key, another
// algorithm) reports false and goes through x509, which decides as before.
func parseEd25519PKCS8(der []byte) (ed25519.PrivateKey, bool) {
	if len(der) != len(ed25519PKCS8Prefix)+ed25519.SeedSize || string(der[:len(ed25519PKCS8Prefix)]) != ed25519PKCS8Prefix {
		return nil, false
	}
	return ed25519.NewKeyFromSeed(der[len(ed25519PKCS8Prefix):]), true
}

func (s *soft) PublicKey() ed25519.PublicKey { return s.priv.Public().(ed25519.PublicKey) }

func (s *soft) Sign(msg []byte) ([]byte, error) {
	if s.closed.Load() {
		return nil, ErrClosed
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
