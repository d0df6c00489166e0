//go:build !nodht

package node

import (
	"testing"
	"time"

	"gardend/internal/testkeys"
	"gardend/record"

	"github.com/libp2p/go-libp2p/core/peer"
)

// FuzzDHTValidator feeds arbitrary keys and values to the DHT's record
// validator, which judges every value other DHT servers send: a value
// validates only as a record or tombstone that verifies and belongs to
// the key's peer; a refusal is counted with its reason; Select never
// picks a value that does not validate, nor an older one over the
// genuine record.
func FuzzDHTValidator(f *testing.F) {
	tn := newTestNet(f)
	n := builtNode(f, tn, tn.peerOf("indexer", RoleIndexer))
	v := dhtValidator{n: n}
	now := time.Now()
	n.o.Now = func() time.Time { return now }
	alice, bob := testkeys.SoftKey(f), testkeys.SoftKey(f)
	aliceID, _ := peer.IDFromPrivateKey(alice)
	genuine := signedFor(f, tn.codec, alice, 5, now)
	tomb, err := record.SignTombstone(tn.codec, alice, 6, now)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(aliceID), genuine, byte(0))
	f.Add([]byte(aliceID), tomb, byte(0))
	f.Add([]byte(aliceID), signedFor(f, tn.codec, alice, 4, now), byte(0))
	f.Add([]byte(aliceID), signedFor(f, tn.codec, bob, 9, now), byte(1))
	f.Add([]byte("/other/x"), genuine, byte(2))
	f.Fuzz(func(t *testing.T, k, value []byte, form byte) {
		key := dhtKey(aliceID)
		switch form % 3 {
		case 1:
			key = "/" + dhtNamespace + "/" + string(k)
		case 2:
			key = string(k)
		}
		n.Metrics = NewMetrics()
		if err := v.Validate(key, value); err != nil {
			checkReasons(t, n.Metrics)
			if len(n.Metrics.Snapshot()) != 1 {
				t.Fatalf("refusal counted %v times: %v", n.Metrics.Snapshot(), err)
			}
		} else {
			rec, err := record.Verify(tn.codec, value, now)
			if err != nil || dhtKey(rec.Peer) != key {
				t.Fatalf("value %x validated under %q: %v", value, key, err)
			}
		}
		if key != dhtKey(aliceID) {
			return
		}
		i, err := v.Select(key, [][]byte{genuine, value})
		if err != nil || i < 0 || i > 1 {
			t.Fatalf("select = %d, %v with the genuine record among the values", i, err)
		}
		if i == 1 {
			rec, err := record.Verify(tn.codec, value, now)
			if err != nil || rec.Peer != aliceID || rec.Seq < 5 {
				t.Fatalf("select preferred %x over the genuine record: %v", value, err)
			}
		}
	})
}
