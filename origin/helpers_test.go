package origin

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/codec"
	"gardend/hsm"
)

// softKeystore is a real software keystore (hsm's key file) in a temp dir.
func softKeystore(t testing.TB) (hsm.Keystore, peer.ID) {
	t.Helper()
	ks, _, err := hsm.Create(context.Background(), hsm.KeyRef{File: filepath.Join(t.TempDir(), "id.key")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	return ks, keystoreID(t, ks)
}

func keystoreID(t testing.TB, ks hsm.Keystore) peer.ID {
	t.Helper()
	k, err := hsm.NewPrivKey(ks)
	if err != nil {
		t.Fatal(err)
	}
	id, err := k.PeerID()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// testEntries makes n distinct entries from origin to dest.
func testEntries(origin, dest peer.ID, n int) []Entry {
	es := make([]Entry, n)
	for i := range es {
		es[i] = Entry{
			Origin:     origin,
			Dest:       dest,
			ID:         uint64(1000 + i),
			Protocol:   "/gardend/resource/1",
			Op:         uint8(1 + i%3),
			ResourceID: fmt.Sprintf("res-%d", i),
			Payload:    []byte(fmt.Sprintf("payload of entry %d", i)),
		}
	}
	return es
}

func digestsOf(es []Entry) [][32]byte {
	ds := make([][32]byte, len(es))
	for i, e := range es {
		ds[i] = e.Digest()
	}
	return ds
}

func testCodec(t testing.TB) *codec.Codec {
	t.Helper()
	c, err := codec.New(nil, codec.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	return c
}
