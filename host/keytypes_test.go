package host

import (
	"encoding/hex"
	"errors"
	"testing"

	secp256k1 "github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/libp2p/go-libp2p/core/crypto"
	cpb "github.com/libp2p/go-libp2p/core/crypto/pb"
	"google.golang.org/protobuf/proto"
)

// TestSecp256k1IdentitiesAreRefused: gardend is built without secp256k1
// (shim/secp256k1). A peer presenting such a key, here the curve's
// generator point, a valid compressed key, is refused where go-libp2p
// reads it (the Noise handshake reads the remote key this way), and
// nothing can make or use one, without a panic escaping.
func TestSecp256k1IdentitiesAreRefused(t *testing.T) {
	g, _ := hex.DecodeString("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")
	typ := cpb.KeyType_Secp256k1
	raw, err := proto.Marshal(&cpb.PublicKey{Type: &typ, Data: g})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := crypto.UnmarshalPublicKey(raw); !errors.Is(err, secp256k1.ErrNotBuiltIn) {
		t.Fatalf("a secp256k1 public key was read: %v", err)
	}
	if _, _, err := crypto.GenerateKeyPair(crypto.Secp256k1, 0); err == nil {
		t.Fatal("a secp256k1 key pair was generated")
	}
	priv, err := crypto.UnmarshalSecp256k1PrivateKey(make([]byte, secp256k1.PrivKeyBytesLen))
	if err != nil {
		t.Fatal(err)
	}
	if sig, err := priv.Sign([]byte("data")); err == nil {
		t.Fatalf("signed with secp256k1: %x", sig)
	}
	if _, err := crypto.MarshalPublicKey(priv.GetPublic()); err == nil {
		t.Fatal("a secp256k1 public key was derived and written")
	}
	// Ed25519, every gardend identity, is untouched.
	ed, _, err := crypto.GenerateKeyPair(crypto.Ed25519, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := crypto.MarshalPublicKey(ed.GetPublic())
	if err != nil {
		t.Fatal(err)
	}
	if back, err := crypto.UnmarshalPublicKey(b); err != nil || !back.Equals(ed.GetPublic()) {
		t.Fatalf("Ed25519 key round trip: %v", err)
	}
}
