//go:build pkcs11

package host

import (
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/internal/testkeys"
)

// A host whose key never leaves the token starts, and handshakes both ways
// with a software-keyed host; its peer ID is the token's public key.
func TestTokenKeyedHostHandshakes(t *testing.T) {
	psk := testkeys.PSK(t)
	key := testkeys.Libp2p(t, testkeys.Token(t))
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
