//go:build pkcs11

package origin

import (
	"errors"
	"testing"

	"gardend/internal/testkeys"
)

// A token signs a batch root once; every entry verifies against the token's
// peer ID, and a changed entry does not.
func TestTokenSignsBatch(t *testing.T) {
	ks := testkeys.Token(t)
	id := keystoreID(t, ks)
	dest := newPeer(t)
	for _, n := range []int{1, 3, 64} {
		es := testEntries(id, dest, n)
		atts, err := SignBatch(ks, ks.PublicKey(), digestsOf(es))
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		for i := range es {
			if err := VerifyEntry(id, dest, es[i], atts[i]); err != nil {
				t.Fatalf("n=%d leaf %d: %v", n, i, err)
			}
		}
		forged := es[n-1]
		forged.Payload = []byte("changed by a station")
		if err := VerifyEntry(id, dest, forged, atts[n-1]); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("n=%d: changed entry: %v", n, err)
		}
	}
	// A token and a soft key of another identity do not stand in for each other.
	soft, softID := softKeystore(t)
	es := testEntries(softID, dest, 2)
	atts, err := SignBatch(soft, soft.PublicKey(), digestsOf(es))
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyPeer(id, es[0].Digest(), atts[0]); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("soft-signed entry under the token's key: %v", err)
	}
	if _, err := SignBatch(ks, soft.PublicKey(), digestsOf(es)); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("token signature checked under another key: %v", err)
	}
}
