package node

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/codec"
	"gardend/hsm/hsmtest"
)

// FuzzWireMessages feeds arbitrary frame bodies to the decoder of every
// gardend protocol. Whatever decodes must re-encode and decode to the same
// value; nothing may panic.
func FuzzWireMessages(f *testing.F) {
	c := newCodec(f)
	seeds := []any{
		&Heartbeat{Time: 1, Name: "n", Record: []byte{1}, PendingContact: [][]byte{{1, 2}}, Events: []MemberEvent{{Kind: 1, Peer: []byte{1}}}},
		&HeartbeatResponse{FillRate: 0.5, PendingCallers: []PeerAddrs{{Peer: []byte{1}, Addrs: [][]byte{{4}}}}},
		&RecordPublish{Signed: []byte{1}}, &RecordGet{Peer: []byte{1}}, &RecordResult{OK: true},
		&Mutation{ID: 1, Op: 1, Resource: "r", Owner: []byte{1}, Body: []byte("b")},
		&Booking{ID: 2, Booking: "b", Start: 1, End: 2}, &Ack{ID: 3}, &Wake{Time: 4},
	}
	for _, m := range seeds {
		b, err := c.EncodeMessage(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	protos := []string{ProtoHeartbeat, ProtoRecordPublish, ProtoRecordGet, ProtoRecordDelete, ProtoResource, ProtoBooking, ProtoWake}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, p := range protos {
			v, _, err := c.DecodeMessage(p, body)
			if err != nil {
				continue
			}
			again, err := c.EncodeMessage(v)
			if err != nil {
				t.Fatalf("re-encode %T: %v", v, err)
			}
			v2, _, err := c.DecodeMessage(p, again)
			if err != nil || !c.Equal(v, v2) {
				t.Fatalf("round trip of %T: %v", v, err)
			}
		}
	})
}

// FuzzVerifyRecord feeds arbitrary bytes to record verification, which runs
// on every heartbeat, publish and DHT value.
func FuzzVerifyRecord(f *testing.F) {
	c := newCodec(f)
	key := hsmtest.SoftKey(f)
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		f.Fatal(err)
	}
	raw, err := SignRecord(c, key, PeerRecord{Peer: []byte(id), Seq: 1, Expires: uint64(time.Now().Add(time.Hour).Unix())})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	tomb, _ := SignTombstone(c, key, 2, time.Now())
	f.Add(tomb)
	now := time.Now()
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := VerifyRecord(c, data, now)
		if err == nil && (v.Record == nil) == (v.Tombstone == nil) {
			t.Fatal("verified a record that is neither or both")
		}
		if err != nil && recordReason(err) == "other" {
			t.Fatalf("untyped error: %v", err)
		}
	})
}

// FuzzCarried feeds arbitrary frame bodies to the decoder of a Carrier's
// protocol (the Carried envelope of rooms above node, e.g. fleet): what
// decodes round-trips; nothing panics.
func FuzzCarried(f *testing.F) {
	reg, err := NewRegistry()
	if err != nil {
		f.Fatal(err)
	}
	const proto = ProtocolPrefix + "/fuzz/carried"
	if err := RegisterCarrier(reg, proto); err != nil {
		f.Fatal(err)
	}
	c, err := codec.New(reg, codec.DefaultLimits())
	if err != nil {
		f.Fatal(err)
	}
	for _, m := range []any{&Carried{ID: 1, Sent: 1700000000000, Body: []byte{0xa1, 1, 2}}, &Ack{ID: 1, Status: AckRefused, Reason: "r"}} {
		b, err := c.EncodeMessage(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		v, _, err := c.DecodeMessage(proto, body)
		if err != nil {
			return
		}
		again, err := c.EncodeMessage(v)
		if err != nil {
			t.Fatalf("re-encode %T: %v", v, err)
		}
		v2, _, err := c.DecodeMessage(proto, again)
		if err != nil || !c.Equal(v, v2) {
			t.Fatalf("round trip of %T: %v", v, err)
		}
	})
}
