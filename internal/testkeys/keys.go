// Package testkeys makes real keys for tests: a software keystore wrapped
// for libp2p, as a daemon without a token has, a SoftHSM token (pkcs11
// build) and private network keys.
package testkeys

import (
	"context"
	"crypto/rand"
	"path/filepath"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/pnet"

	"gardend/hsm"
)

// SoftKey makes a software keystore in a temporary directory and wraps it
// for libp2p: a real identity, as a daemon without a token has.
func SoftKey(t testing.TB) crypto.PrivKey {
	t.Helper()
	return Libp2p(t, create(t, hsm.KeyRef{File: filepath.Join(t.TempDir(), "id.key")}))
}

// Libp2p wraps ks's identity for libp2p.
func Libp2p(t testing.TB, ks hsm.Keystore) crypto.PrivKey {
	t.Helper()
	k, err := hsm.NewPrivKey(ks)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// create makes the keystore ref names, closed at the end of the test.
func create(t testing.TB, ref hsm.KeyRef) hsm.Keystore {
	t.Helper()
	ks, _, err := hsm.Create(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	return ks
}

// PSK is a new random private network key.
func PSK(t testing.TB) pnet.PSK {
	t.Helper()
	psk := make([]byte, 32)
	if _, err := rand.Read(psk); err != nil {
		t.Fatal(err)
	}
	return psk
}
