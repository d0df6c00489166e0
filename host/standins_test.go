package host

import (
	"crypto/ed25519"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"
)

// TestMulticodecStandIn: go-libp2p's peer IDs still go to and from CIDs
// with the multicodec stand-in (shim/multicodec), and a CID of another
// codec is refused, the code named by its number (the stand-in names one).
func TestMulticodecStandIn(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(nil)
	k, err := crypto.UnmarshalEd25519PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	c := peer.ToCid(id)
	if c.Type() != cid.Libp2pKey {
		t.Fatalf("peer ID as CID has codec %#x, want libp2p-key", c.Type())
	}
	if back, err := peer.FromCid(c); err != nil || back != id {
		t.Fatalf("FromCid(ToCid(%s)) = %s, %v", id, back, err)
	}
	raw := cid.NewCidV1(cid.Raw, c.Hash())
	if _, err := peer.FromCid(raw); err == nil || !strings.Contains(err.Error(), `"Code(85)"`) {
		t.Fatalf("a raw CID as a peer ID: %v, want a refusal naming Code(85)", err)
	}
}

// TestCPUIDStandIn: with the CPU detection stood in (shim/cpuid), the
// hashers that asked it take their portable code and still hash right:
// BLAKE3 of nothing, from its specification's test vectors.
func TestCPUIDStandIn(t *testing.T) {
	sum, err := mh.Sum(nil, mh.BLAKE3, 32)
	if err != nil {
		t.Fatal(err)
	}
	d, err := mh.Decode(sum)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(d.Digest); got != "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262" {
		t.Fatalf("BLAKE3(\"\") = %s", got)
	}
}
