package record

import (
	"testing"
	"time"

	"gardend/internal/testkeys"

	"github.com/libp2p/go-libp2p/core/peer"
)

// FuzzVerify feeds arbitrary bytes to record verification, which runs
// on every heartbeat, publish and DHT value.
func FuzzVerify(f *testing.F) {
	c := newCodec(f)
	key := testkeys.SoftKey(f)
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		f.Fatal(err)
	}
	raw, err := Sign(c, key, PeerRecord{Peer: []byte(id), Seq: 1, Expires: uint64(time.Now().Add(time.Hour).Unix())})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	tomb, _ := SignTombstone(c, key, 2, time.Now())
	f.Add(tomb)
	now := time.Now()
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Verify(c, data, now)
		if err == nil && (v.Record == nil) == (v.Tombstone == nil) {
			t.Fatal("verified a record that is neither or both")
		}
		if err != nil && Reason(err) == "other" {
			t.Fatalf("untyped error: %v", err)
		}
	})
}
