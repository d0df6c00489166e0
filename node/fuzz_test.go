package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"gardend/codec"
	"gardend/dtn"
	"gardend/internal/testkeys"
	"gardend/record"
	"gardend/swim"
)

// FuzzWireMessages feeds arbitrary frame bodies to the decoder of every
// gardend protocol. Whatever decodes must re-encode and decode to the same
// value; nothing may panic.
func FuzzWireMessages(f *testing.F) {
	c := newCodec(f)
	seeds := []any{
		&Heartbeat{Time: 1, Name: "n", Record: []byte{1}, PendingContact: [][]byte{{1, 2}}, Events: []swim.Event{{Kind: 1, Peer: []byte{1}}}},
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

// builtNode is a node on a real host and store, built and not started: a
// fuzz target drives its judges directly, with no loop running.
func builtNode(f *testing.F, tn *testNet, x *tnode) *Node {
	n, err := New(x.opts)
	if err != nil {
		f.Fatal(err)
	}
	x.Node = n
	return n
}

// signedFor is a record of key's peer valid for an hour from now.
func signedFor(f *testing.F, c *codec.Codec, key crypto.PrivKey, seq uint64, now time.Time, addrs ...ma.Multiaddr) []byte {
	id, _ := peer.IDFromPrivateKey(key)
	rec := record.PeerRecord{Peer: []byte(id), Seq: seq, Expires: uint64(now.Add(time.Hour).Unix()), Name: "p"}
	for _, a := range addrs {
		rec.Addrs = append(rec.Addrs, a.Bytes())
	}
	raw, err := record.Sign(c, key, rec)
	if err != nil {
		f.Fatal(err)
	}
	return raw
}

// checkReasons fails on a rejection counted without a kind.
func checkReasons(t *testing.T, m *Metrics) {
	for k, v := range m.Snapshot() {
		if v > 0 && strings.HasSuffix(k, "_other") {
			t.Fatalf("bad input counted without a reason: %s", k)
		}
	}
}

// FuzzIndexerHeartbeat feeds arbitrary frame bodies to an indexer's
// heartbeat session as one of two peers sends them: what decodes as a
// heartbeat is processed (record, gossip, PendingContact) by a real
// indexer. Its answer must encode within a frame and decode again; the
// record book holds only records that verify and belong to their sender;
// gossip keeps its bounds; every rejection is counted with its reason.
func FuzzIndexerHeartbeat(f *testing.F) {
	tn := newTestNet(f)
	// The host of a master: an indexer's asks for identify, which a nodht
	// build lacks, and processing a heartbeat needs neither it nor the DHT.
	x := tn.peerOf("indexer", RoleMaster)
	x.opts.Roles = RoleIndexer
	n := builtNode(f, tn, x)
	c := tn.codec
	now := time.Now()
	alice, bob := testkeys.SoftKey(f), testkeys.SoftKey(f)
	aliceID, _ := peer.IDFromPrivateKey(alice)
	bobID, _ := peer.IDFromPrivateKey(bob)
	senders := []peer.ID{aliceID, bobID}
	addr := ma.StringCast("/ip4/127.0.0.1/tcp/4001")
	for _, hb := range []*Heartbeat{
		{Time: uint64(now.Unix()), Name: "alice", Record: signedFor(f, c, alice, 1, now, addr), PendingContact: [][]byte{[]byte(bobID)},
			Events: []swim.Event{{Kind: swim.Suspect, Peer: []byte(bobID), Incarnation: 2, HopsLeft: 3}}},
		{Time: uint64(now.Unix()), Record: signedFor(f, c, bob, 2, now), Indexers: [][]byte{[]byte(x.host.ID())}, SuspectedIncarnation: 1 << 62,
			Events: []swim.Event{{Kind: swim.Dead, Peer: []byte(x.host.ID()), Incarnation: 1 << 62, HopsLeft: 200}, {Kind: 7, Peer: []byte("x")}}},
		{Time: 1, PendingContact: [][]byte{{0x00}, []byte(aliceID)}, Events: []swim.Event{{Kind: swim.Alive, Peer: []byte(bobID), Incarnation: 9, HopsLeft: 200}}},
	} {
		b, err := c.EncodeMessage(hb)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, byte(0))
		f.Add(b, byte(1))
	}
	f.Fuzz(func(t *testing.T, body []byte, who byte) {
		m, _, err := c.DecodeMessage(ProtoHeartbeat, body)
		if err != nil {
			return
		}
		hb, ok := m.(*Heartbeat)
		if !ok {
			return
		}
		// A fresh indexer each time: a finding reproduces from its input alone.
		n.Metrics = NewMetrics()
		n.members = swim.New(n.id, now)
		n.idx = newIndexer(n)
		from := senders[int(who)%len(senders)]
		// The other sender waits for this one: the answer names it.
		n.idx.pending[from] = map[peer.ID]time.Time{senders[(int(who)+1)%len(senders)]: now.Add(time.Minute)}
		resp := n.idx.process(from, hb, now)
		out, err := c.EncodeMessage(resp)
		if err != nil {
			t.Fatalf("answer does not encode: %v", err)
		}
		if _, _, err := c.DecodeMessage(ProtoHeartbeat, out); err != nil {
			t.Fatalf("answer does not decode: %v", err)
		}
		if len(resp.Events) > swim.EventsPerBeat {
			t.Fatalf("answer carries %d events", len(resp.Events))
		}
		for _, ev := range resp.Events {
			if ev.HopsLeft > swim.MaxHops {
				t.Fatalf("answer passes on %+v with more hops than gossip gives", ev)
			}
		}
		for p, v := range n.idx.book.Held() {
			got, err := record.Verify(c, v.Raw, now)
			if err != nil || got.Peer != p || p != from {
				t.Fatalf("book holds %x under %s from %s: %v", v.Raw, p, from, err)
			}
		}
		if len(hb.Record) > 0 && resp.RecordError == "" && n.idx.book.Len() != 1 {
			t.Fatal("record neither refused nor kept")
		}
		if err := n.members.Sound(); err != nil {
			t.Fatal(err)
		}
		checkReasons(t, n.Metrics)
	})
}

// FuzzHeartbeatResponse feeds arbitrary frame bodies to a peer's side of
// the heartbeat stream: what decodes as an indexer's answer is taken in
// by a real node (gossip, record refusal, pending callers). The callers it
// would wake have valid IDs, never its own, and addresses that re-encode
// to the bytes they came from; gossip keeps its bounds.
func FuzzHeartbeatResponse(f *testing.F) {
	tn := newTestNet(f)
	x := tn.peerOf("peer", RoleMaster)
	n := builtNode(f, tn, x)
	c := tn.codec
	now := time.Now()
	other := testkeys.SoftKey(f)
	otherID, _ := peer.IDFromPrivateKey(other)
	indexer := peer.ID(mustID(f, testkeys.SoftKey(f)))
	addr := ma.StringCast("/ip4/10.0.0.1/tcp/4001").Bytes()
	for _, r := range []*HeartbeatResponse{
		{FillRate: 0.5, PeerCount: 3, MaxNodes: 10, BornAt: uint64(now.Unix()), Incarnation: 7,
			PendingCallers: []PeerAddrs{{Peer: []byte(otherID), Addrs: [][]byte{addr, {0x04, 1}}}, {Peer: []byte(x.host.ID())}},
			Events:         []swim.Event{{Kind: swim.Alive, Peer: []byte(otherID), Incarnation: 3, HopsLeft: 2}}},
		{RecordError: "record expired", NeedRecord: true, Suggestions: []PeerAddrs{{Peer: []byte(indexer), Addrs: [][]byte{addr}}},
			Events: []swim.Event{{Kind: swim.Suspect, Peer: []byte(x.host.ID()), Incarnation: 1 << 40, HopsLeft: 255}}},
	} {
		b, err := c.EncodeMessage(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, _, err := c.DecodeMessage(ProtoHeartbeat, body)
		if err != nil {
			return
		}
		resp, ok := m.(*HeartbeatResponse)
		if !ok {
			return
		}
		n.Metrics = NewMetrics()
		n.members = swim.New(n.id, now)
		var st recordSent
		callers := n.takeResponse(indexer, resp, &st, now)
		if resp.RecordError != "" && !st.indexerNeedsOne {
			t.Fatal("a refused record is not sent again")
		}
		for _, cl := range callers {
			if cl.peer == n.id || cl.peer.Validate() != nil {
				t.Fatalf("would wake %q", cl.peer)
			}
			for _, a := range cl.addrs {
				again, err := ma.NewMultiaddrBytes(a.Bytes())
				if err != nil || !again.Equal(a) {
					t.Fatalf("address %x does not round-trip: %v", a.Bytes(), err)
				}
				_ = a.String()
			}
		}
		for _, pa := range resp.PendingCallers {
			for _, b := range pa.Addrs {
				if a, err := ma.NewMultiaddrBytes(b); err == nil && !bytes.Equal(a.Bytes(), b) {
					t.Fatalf("address %x reads as %x", b, a.Bytes())
				}
			}
		}
		if err := n.members.Sound(); err != nil {
			t.Fatal(err)
		}
		checkReasons(t, n.Metrics)
	})
}

// FuzzPrepareRelayed feeds arbitrary payloads, as a resource mutation or
// a booking, to the receivers' judge (the one a direct delivery goes
// through too) on a real nano and its real master, and applies what they
// accept to their stores: a *Refusal or a durable apply, never a panic;
// and whatever gets in, a nano's catalogue holds only its own resources
// and bookings for itself, a master's only what its nano owns.
func FuzzPrepareRelayed(f *testing.F) {
	tn := newTestNet(f)
	mx, nx := tn.peerOf("master", RoleMaster), tn.peerOf("nano", RoleNano)
	mx.opts.Nanos = []peer.AddrInfo{nx.info()}
	nx.opts.Master = mx.info()
	master, nano := builtNode(f, tn, mx), builtNode(f, tn, nx)
	c := tn.codec
	nanoID := nx.host.ID()
	for _, m := range []any{
		&Mutation{Op: uint8(dtn.OpCreate), Resource: "r", Owner: []byte(nanoID), Body: []byte("doc")},
		&Mutation{Op: uint8(dtn.OpDelete), Resource: "r"},
		&Booking{Op: uint8(dtn.OpCreate), Booking: "b", Resource: "r", Dest: []byte(nanoID), Start: 10, End: 20},
		&Booking{Op: uint8(dtn.OpDelete), Booking: "b", Dest: []byte(nanoID)},
	} {
		b, err := c.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		_, booking := m.(*Booking)
		for _, atMaster := range []bool{false, true} {
			f.Add(b, booking, atMaster, uint64(1))
		}
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, payload []byte, booking, atMaster bool, id uint64) {
		n, from, dest := nano, mx.host.ID(), nanoID
		if atMaster {
			n, from, dest = master, nanoID, mx.host.ID()
		}
		proto := ProtoResource
		if booking {
			proto = ProtoBooking
		}
		n.Metrics = NewMetrics()
		e := dtn.Entry{Ref: dtn.Ref{ID: id}, Dest: string(dest), Protocol: proto, Payload: payload}
		w, err := n.PrepareRelayed(from, e)
		if err != nil {
			var r *Refusal
			if !errors.As(err, &r) {
				t.Fatalf("untyped refusal %T: %v", err, err)
			}
			var probe any = &Mutation{}
			if booking {
				probe = &Booking{}
			}
			if c.Unmarshal(payload, probe) != nil && n.Metrics.Get("relayed_undecodable") == 0 {
				t.Fatal("undecodable payload not counted")
			}
			return
		}
		if err := n.store.Update(ctx, w.Apply); err != nil {
			t.Fatalf("apply: %v", err)
		}
		w.Applied()
		cat, err := n.Catalogue()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range cat {
			if peer.ID(r.Owner) != nanoID {
				t.Fatalf("catalogue holds %q owned by %x", r.ID, r.Owner)
			}
		}
		bs, err := n.Bookings()
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range bs {
			if peer.ID(b.Booking.Dest) != nanoID {
				t.Fatalf("booking %q for %x", b.Booking.Booking, b.Booking.Dest)
			}
		}
	})
}

// FuzzControl feeds arbitrary lines to the control socket's reader and
// what it reads to a real master node: a typed error or an answer the
// client can decode; and a put that answers without an error left the
// catalogue as its items say (the last change of an ID wins).
func FuzzControl(f *testing.F) {
	tn := newTestNet(f)
	x := tn.peerOf("master", RoleMaster)
	n := builtNode(f, tn, x)
	other := mustID(f, testkeys.SoftKey(f))
	for _, req := range []ControlRequest{
		{Op: "put", Kind: "create", ID: "r1", Body: "doc"},
		{Op: "put", Items: []ControlPut{{Kind: "create", ID: "a", Owner: other, Body: "x"}, {Kind: "update", ID: "a", Body: "y"}, {Kind: "delete", ID: "r1"}}},
		{Op: "put", Kind: "create", ID: "b", Owner: "not-a-peer"},
		{Op: "catalogue"}, {Op: "fleet.ls", Args: json.RawMessage(`{"nano":"n"}`)},
	} {
		b, err := json.Marshal(req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b) + "\n")
	}
	f.Add("status\n")
	f.Add("{\"op\":\"put\",\"items\":[{\"kind\":\"delete\",\"id\":\"\"}]")
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, line string) {
		req, err := ParseControlRequest(line)
		if err != nil {
			if !errors.Is(err, ErrControlRequest) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			return
		}
		if req.Op == "status" {
			return // costly and reads nothing of the request but its op
		}
		resp := n.Control(ctx, req)
		b, err := json.Marshal(resp)
		if err != nil {
			t.Fatalf("answer does not encode: %v", err)
		}
		var back ControlResponse
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("answer %s does not decode: %v", b, err)
		}
		if req.Op != "put" || resp.Error != "" {
			return
		}
		items := req.Items
		if len(items) == 0 {
			items = []ControlPut{{Kind: req.Kind, ID: req.ID, Owner: req.Owner, Body: req.Body}}
		}
		want := map[string]*ControlPut{}
		for i := range items {
			if items[i].Kind == "delete" {
				want[items[i].ID] = nil
			} else {
				want[items[i].ID] = &items[i]
			}
		}
		for id, it := range want {
			r, err := n.GetResource(id)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case it == nil && r != nil:
				t.Fatalf("%q deleted, still held", id)
			case it != nil && (r == nil || string(r.Body) != it.Body):
				t.Fatalf("%q put as %q, holds %+v", id, it.Body, r)
			}
		}
	})
}
