//go:build pkcs11

package testkeys

import (
	"testing"

	"gardend/hsm"
	"gardend/hsm/hsmtest"
)

// Token makes a real SoftHSM token holding a fresh identity and opens it.
func Token(t testing.TB) hsm.Keystore {
	t.Helper()
	s := hsmtest.New(t)
	s.InitToken(t, "gardend", "1234")
	ref, err := hsm.ParseKeyRef(s.URI("gardend", "identity", "1234"))
	if err != nil {
		t.Fatal(err)
	}
	return create(t, ref)
}
