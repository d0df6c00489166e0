//go:build pkcs11

package host

import (
	"context"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/hsm"
	"gardend/hsm/hsmtest"
	"gardend/internal/testkeys"
)

// tokenKey makes a SoftHSM token with an identity and wraps it for libp2p.
func tokenKey(t testing.TB) crypto.PrivKey {
	t.Helper()
	s := hsmtest.New(t)
	s.InitToken(t, "gardend", "1234")
	ref, err := hsm.ParseKeyRef(s.URI("gardend", "identity", "1234"))
	if err != nil {
		t.Fatal(err)
	}
	ks, _, err := hsm.Create(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	k, err := hsm.NewPrivKey(ks)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// A host whose key never leaves the token starts, and handshakes both ways
// with a software-keyed host; its peer ID is the token's public key.
func TestTokenKeyedHostHandshakes(t *testing.T) {
	psk := testkeys.PSK(t)
	key := tokenKey(t)
	if _, err := key.Raw(); err == nil {
		t.Fatal("token key exported its raw bytes")
	}
	tok := newTestHost(t, key, psk)
	soft := newTestHost(t, testkeys.SoftKey(t), psk)
	want, _ := peer.IDFromPublicKey(key.GetPublic())
	if tok.ID() != want {
		t.Fatalf("host ID %s, token key gives %s", tok.ID(), want)
	}
	if err := echo(t, tok, soft); err != nil {
		t.Fatalf("token → soft: %v", err)
	}
	if err := echo(t, soft, tok); err != nil {
		t.Fatalf("soft → token: %v", err)
	}
	// The soft side authenticated the token's key in the Noise handshake.
	if got := soft.Peerstore().PubKey(tok.ID()); got == nil || !got.Equals(key.GetPublic()) {
		t.Fatal("peer did not learn the token's public key")
	}
}
