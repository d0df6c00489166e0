package node

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/record"
)

// recordFor signs a record of key's peer: seq, expiry, nothing else.
func recordFor(t *testing.T, tn *testNet, key crypto.PrivKey, seq uint64, expires time.Time) []byte {
	t.Helper()
	id, _ := peer.IDFromPrivateKey(key)
	raw, err := record.Sign(tn.codec, key, record.PeerRecord{Peer: []byte(id), Seq: seq, Expires: uint64(expires.Unix()), Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	return raw
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
	v, err := record.Verify(tn.codec, res.Signed, time.Now())
	if !res.OK || err != nil || v.Peer != nanos[2].ID() || !v.Record.IsNano || string(v.Record.Master) != string(master.ID()) {
		t.Fatalf("record get: %+v %v", res, err)
	}
	// The master publishes a tombstone for a nano: refused (not the owner).
	var claim record.Signed
	tomb, _ := record.SignTombstone(tn.codec, master.key, 1<<62, time.Now())
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
	if DHTBuilt { // a nodht build keeps records in the book only
		eventually(t, "records stored in the DHT", 5*time.Second, func() bool { return idx[0].Metrics.Get("dht_puts") > 0 })
	}
	if idx[0].Metrics.Get("records_rejected_key") == 0 {
		t.Fatalf("rejections not counted: %v", idx[0].Metrics.Snapshot())
	}
}

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
