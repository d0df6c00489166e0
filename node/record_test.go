package node

import (
	"context"
	"errors"
	"testing"
	"time"

	"gardend/hsm/hsmtest"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func recordFor(t *testing.T, tn *testNet, key crypto.PrivKey, seq uint64, expires time.Time) []byte {
	t.Helper()
	id, _ := peer.IDFromPrivateKey(key)
	raw, err := SignRecord(tn.codec, key, PeerRecord{Peer: []byte(id), Seq: seq, Expires: uint64(expires.Unix()), Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestRecordBookRules(t *testing.T) {
	tn := newTestNet(t)
	now := time.Now()
	alice, bob := hsmtest.SoftKey(t), hsmtest.SoftKey(t)
	aliceID, _ := peer.IDFromPrivateKey(alice)
	bobID, _ := peer.IDFromPrivateKey(bob)
	book := NewRecordBook(tn.codec)

	good := recordFor(t, tn, alice, 10, now.Add(time.Hour))
	if _, err := book.Put(good, aliceID, now); err != nil {
		t.Fatal(err)
	}
	// Forged: alice's record, one field changed after signing.
	var sr SignedRecord
	tn.codec.Unmarshal(good, &sr)
	sr.Record.Addrs = [][]byte{[]byte("evil")}
	sr.Record.Seq = 11
	forged, _ := tn.codec.Marshal(&sr)
	// Bob signs a record claiming to be alice.
	var claim SignedRecord
	tn.codec.Unmarshal(recordFor(t, tn, bob, 12, now.Add(time.Hour)), &claim)
	claim.Record.Peer = []byte(aliceID)
	impostor, _ := tn.codec.Marshal(&claim)
	bobTomb, _ := SignTombstone(tn.codec, bob, 99, now)
	cases := []struct {
		name string
		raw  []byte
		from peer.ID
		want error
	}{
		{"field changed after signing", forged, aliceID, ErrRecordSignature},
		{"key does not hash to the peer", impostor, aliceID, ErrRecordKey},
		{"published by someone else", recordFor(t, tn, alice, 13, now.Add(time.Hour)), bobID, ErrRecordNotOwner},
		{"foreign tombstone", bobTomb, aliceID, ErrRecordNotOwner},
		{"expired", recordFor(t, tn, alice, 14, now.Add(-time.Second)), aliceID, ErrRecordExpired},
		{"TTL too long", recordFor(t, tn, alice, 15, now.Add(MaxRecordTTL+time.Hour)), aliceID, ErrRecordTTL},
		{"replay of an older record", recordFor(t, tn, alice, 9, now.Add(time.Hour)), aliceID, ErrRecordReplay},
		{"garbage", []byte{0xa1, 0x01, 0x02}, aliceID, ErrRecordMalformed},
		{"both record and tombstone", func() []byte {
			var x SignedRecord
			tn.codec.Unmarshal(good, &x)
			x.Tombstone = &Tombstone{Peer: []byte(aliceID)}
			b, _ := tn.codec.Marshal(&x)
			return b
		}(), aliceID, ErrRecordMalformed},
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
	tomb, _ := SignTombstone(tn.codec, alice, 20, now)
	if _, err := book.Put(tomb, aliceID, now); err != nil {
		t.Fatal(err)
	}
	if _, err := book.Put(recordFor(t, tn, alice, 19, now.Add(MaxRecordTTL)), aliceID, now.Add(time.Minute)); !errors.Is(err, ErrRecordDeleted) {
		t.Fatalf("record older than the tombstone: %v", err)
	}
	if TombstoneTTL < MaxRecordTTL {
		t.Fatal("tombstones must outlive the longest record")
	}
	// Coming back with a newer record is the owner's right.
	if _, err := book.Put(recordFor(t, tn, alice, 21, now.Add(time.Hour)), aliceID, now); err != nil {
		t.Fatal(err)
	}
}

func TestIndexerRecordProtocols(t *testing.T) {
	tn, master, idx, nanos := groundAndNanos(t)
	// Heartbeats carry records: the indexer soon holds every peer's.
	eventually(t, "records via heartbeats", 5*time.Second, func() bool {
		_, ok := idx[0].idx.book.Get(nanos[2].ID(), time.Now())
		_, okm := idx[0].idx.book.Get(master.ID(), time.Now())
		return ok && okm
	})
	// An indexer suggests the other one.
	hb, _ := send(t, tn.codec, master, idx[0].info(), ProtoHeartbeat, &Heartbeat{Time: 1})
	if r := hb[0].(*HeartbeatResponse); len(r.Suggestions) != 1 || string(r.Suggestions[0].Peer) != string(idx[1].ID()) || r.MaxNodes == 0 {
		t.Fatalf("heartbeat response: %+v", r)
	}
	get := &RecordGet{Peer: []byte(nanos[2].ID())}
	replies, err := send(t, tn.codec, master, idx[0].info(), ProtoRecordGet, get)
	if err != nil {
		t.Fatal(err)
	}
	res := replies[0].(*RecordResult)
	v, err := VerifyRecord(tn.codec, res.Signed, time.Now())
	if !res.OK || err != nil || v.Peer != nanos[2].ID() || !v.Record.IsNano || string(v.Record.Master) != string(master.ID()) {
		t.Fatalf("record get: %+v %v", res, err)
	}
	// The master publishes a tombstone for a nano: refused (not the owner).
	var claim SignedRecord
	tomb, _ := SignTombstone(tn.codec, master.key, 1<<62, time.Now())
	tn.codec.Unmarshal(tomb, &claim)
	claim.Tombstone.Peer = []byte(nanos[2].ID())
	forged, _ := tn.codec.Marshal(&claim)
	replies, err = send(t, tn.codec, master, idx[0].info(), ProtoRecordDelete, &RecordPublish{Signed: forged})
	if err != nil || replies[0].(*RecordResult).OK {
		t.Fatalf("foreign tombstone accepted: %v %+v", err, replies)
	}
	// Its own tombstone is accepted, on the delete protocol only.
	replies, err = send(t, tn.codec, master, idx[0].info(), ProtoRecordPublish, &RecordPublish{Signed: tomb})
	if err != nil || replies[0].(*RecordResult).OK {
		t.Fatalf("tombstone on the publish protocol: %v %+v", err, replies)
	}
	if v, ok := idx[0].idx.book.Get(master.ID(), time.Now()); ok && v.Tombstone != nil {
		t.Fatal("a refused tombstone was stored")
	}
	replies, err = send(t, tn.codec, master, idx[0].info(), ProtoRecordDelete, &RecordPublish{Signed: tomb})
	if err != nil || !replies[0].(*RecordResult).OK {
		t.Fatalf("own tombstone: %v %+v", err, replies)
	}
	eventually(t, "records stored in the DHT", 5*time.Second, func() bool { return idx[0].Metrics.Get("dht_puts") > 0 })
	if idx[0].Metrics.Get("records_rejected_key") == 0 {
		t.Fatalf("rejections not counted: %v", idx[0].Metrics.Snapshot())
	}
}

var _ = context.Background

// A heartbeat carries the signed record only when the indexer needs it: not
// every interval (it is most of a heartbeat's bytes on a slow link), but
// again at once when the indexer has lost it.
func TestHeartbeatsCarryTheRecordOnlyWhenNeeded(t *testing.T) {
	tn := newTestNet(t)
	idx := tn.peerOf("idx", RoleIndexer)
	nano := tn.peerOf("nano", RoleNano)
	master := tn.peerOf("master", RoleMaster)
	idx.start(t)
	master.start(t)
	nano.opts.Master = master.info()
	nano.opts.Indexers = []peer.AddrInfo{idx.info()}
	nano.start(t)
	eventually(t, "ten heartbeats", 10*time.Second, func() bool { return idx.Metrics.Get("heartbeats_received") >= 10 })
	if got := nano.Metrics.Get("heartbeat_records_sent"); got != 1 {
		t.Fatalf("record sent %d times in 10 heartbeats, want once", got)
	}
	if _, ok := idx.idx.book.Get(nano.host.ID(), time.Now()); !ok {
		t.Fatal("the indexer does not hold the nano's record")
	}
	idx.idx.book.Prune(time.Now().Add(24 * time.Hour)) // the indexer forgets it
	eventually(t, "the record sent again", 10*time.Second, func() bool {
		_, ok := idx.idx.book.Get(nano.host.ID(), time.Now())
		return ok && nano.Metrics.Get("heartbeat_records_sent") == 2
	})
}

// TestRecordBookPrunesByExpiry: a record renewed with a later expiry is
// kept past its old record's expiry; expired ones go.
func TestRecordBookPrunesByExpiry(t *testing.T) {
	tn := newTestNet(t)
	now := time.Now()
	alice, bob := hsmtest.SoftKey(t), hsmtest.SoftKey(t)
	aliceID, _ := peer.IDFromPrivateKey(alice)
	bobID, _ := peer.IDFromPrivateKey(bob)
	book := NewRecordBook(tn.codec)
	mustPut := func(raw []byte, from peer.ID) {
		if _, err := book.Put(raw, from, now); err != nil {
			t.Fatal(err)
		}
	}
	mustPut(recordFor(t, tn, alice, 1, now.Add(time.Minute)), aliceID)
	mustPut(recordFor(t, tn, alice, 2, now.Add(time.Hour)), aliceID) // renewed
	mustPut(recordFor(t, tn, bob, 1, now.Add(10*time.Minute)), bobID)
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
