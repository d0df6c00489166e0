package record

import (
	"errors"
	"testing"
	"time"

	"gardend/codec"
	"gardend/internal/testkeys"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func recordFor(t *testing.T, c *codec.Codec, key crypto.PrivKey, seq uint64, expires time.Time) []byte {
	t.Helper()
	id, _ := peer.IDFromPrivateKey(key)
	raw, err := Sign(c, key, PeerRecord{Peer: []byte(id), Seq: seq, Expires: uint64(expires.Unix()), Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestRecordBookRules(t *testing.T) {
	c := newCodec(t)
	now := time.Now()
	alice, bob := testkeys.SoftKey(t), testkeys.SoftKey(t)
	aliceID, _ := peer.IDFromPrivateKey(alice)
	bobID, _ := peer.IDFromPrivateKey(bob)
	book := NewBook(c)

	good := recordFor(t, c, alice, 10, now.Add(time.Hour))
	if _, err := book.Put(good, aliceID, now); err != nil {
		t.Fatal(err)
	}
	// Forged: alice's record, one field changed after signing.
	var sr Signed
	c.Unmarshal(good, &sr)
	sr.Record.Addrs = [][]byte{[]byte("evil")}
	sr.Record.Seq = 11
	forged, _ := c.Marshal(&sr)
	// Bob signs a record claiming to be alice.
	var claim Signed
	c.Unmarshal(recordFor(t, c, bob, 12, now.Add(time.Hour)), &claim)
	claim.Record.Peer = []byte(aliceID)
	impostor, _ := c.Marshal(&claim)
	bobTomb, _ := SignTombstone(c, bob, 99, now)
	cases := []struct {
		name string
		raw  []byte
		from peer.ID
		want error
	}{
		{"field changed after signing", forged, aliceID, ErrSignature},
		{"key does not hash to the peer", impostor, aliceID, ErrKey},
		{"published by someone else", recordFor(t, c, alice, 13, now.Add(time.Hour)), bobID, ErrNotOwner},
		{"foreign tombstone", bobTomb, aliceID, ErrNotOwner},
		{"expired", recordFor(t, c, alice, 14, now.Add(-time.Second)), aliceID, ErrExpired},
		{"TTL too long", recordFor(t, c, alice, 15, now.Add(MaxTTL+time.Hour)), aliceID, ErrTTL},
		{"replay of an older record", recordFor(t, c, alice, 9, now.Add(time.Hour)), aliceID, ErrReplay},
		{"garbage", []byte{0xa1, 0x01, 0x02}, aliceID, ErrMalformed},
		{"both record and tombstone", func() []byte {
			var x Signed
			c.Unmarshal(good, &x)
			x.Tombstone = &Tombstone{Peer: []byte(aliceID)}
			b, _ := c.Marshal(&x)
			return b
		}(), aliceID, ErrMalformed},
	}
	for _, tc := range cases {
		if _, err := book.Put(tc.raw, tc.from, now); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	if v, ok := book.Get(aliceID, now); !ok || v.Seq != 10 {
		t.Fatal("a rejected record replaced the good one")
	}
	// Alice's own tombstone revokes her record, and the revoked record
	// cannot be replayed while the tombstone lives (it outlives any record).
	tomb, _ := SignTombstone(c, alice, 20, now)
	if _, err := book.Put(tomb, aliceID, now); err != nil {
		t.Fatal(err)
	}
	if _, err := book.Put(recordFor(t, c, alice, 19, now.Add(MaxTTL)), aliceID, now.Add(time.Minute)); !errors.Is(err, ErrDeleted) {
		t.Fatalf("record older than the tombstone: %v", err)
	}
	if TombstoneTTL < MaxTTL {
		t.Fatal("tombstones must outlive the longest record")
	}
	// Coming back with a newer record is the owner's right.
	if _, err := book.Put(recordFor(t, c, alice, 21, now.Add(time.Hour)), aliceID, now); err != nil {
		t.Fatal(err)
	}
}

// TestRecordBookPrunesByExpiry: a record renewed with a later expiry is
// kept past its old record's expiry; expired ones go.
func TestRecordBookPrunesByExpiry(t *testing.T) {
	c := newCodec(t)
	now := time.Now()
	alice, bob := testkeys.SoftKey(t), testkeys.SoftKey(t)
	aliceID, _ := peer.IDFromPrivateKey(alice)
	bobID, _ := peer.IDFromPrivateKey(bob)
	book := NewBook(c)
	mustPut := func(raw []byte, from peer.ID) {
		if _, err := book.Put(raw, from, now); err != nil {
			t.Fatal(err)
		}
	}
	mustPut(recordFor(t, c, alice, 1, now.Add(time.Minute)), aliceID)
	mustPut(recordFor(t, c, alice, 2, now.Add(time.Hour)), aliceID) // renewed
	mustPut(recordFor(t, c, bob, 1, now.Add(10*time.Minute)), bobID)
	book.Prune(now.Add(2 * time.Minute))
	if _, ok := book.Get(aliceID, now); !ok || book.Len() != 2 {
		t.Fatalf("the renewed record went with its predecessor's expiry (len %d)", book.Len())
	}
	book.Prune(now.Add(11 * time.Minute))
	if book.Len() != 1 {
		t.Fatalf("bob's expired record kept: len %d", book.Len())
	}
	book.Prune(now.Add(2 * time.Hour))
	if book.Len() != 0 {
		t.Fatalf("len %d after every expiry", book.Len())
	}
}

// newCodec is a codec with no message registered: records are nested
// payloads, encoded and decoded by type.
func newCodec(t testing.TB) *codec.Codec {
	c, err := codec.New(codec.NewRegistry(), codec.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	return c
}
