package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"gardend/codec"
	"gardend/dtn"
)

// send opens proto from a to b, writes msgs and returns the replies read
// until the stream ends.
func send(t *testing.T, c *codec.Codec, a *tnode, b peer.AddrInfo, proto string, msgs ...any) ([]any, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a.host.Peerstore().AddAddrs(b.ID, b.Addrs, time.Hour)
	s, err := a.host.NewStream(ctx, b.ID, protocol.ID(proto))
	if err != nil {
		return nil, err
	}
	defer s.Close()
	for _, m := range msgs {
		if err := c.WriteMessage(s, m); err != nil {
			return nil, err
		}
	}
	s.CloseWrite()
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	r := c.NewReader(s)
	var out []any
	for range msgs {
		m, _, err := c.ReadMessage(r, proto)
		if err != nil {
			return out, err
		}
		out = append(out, m)
	}
	return out, nil
}

func TestNanoRefusesEveryoneButItsMaster(t *testing.T) {
	tn, master, idx, nanos := groundAndNanos(t)
	rogue := tn.peerOf("rogue", RoleMaster) // has the PSK, is not the master
	rogue.start(t)
	m := &Mutation{ID: 1, Op: uint8(dtn.OpCreate), Resource: "evil", Owner: []byte(nanos[0].ID()), Body: []byte("x")}
	if _, err := send(t, tn.codec, rogue, nanos[0].info(), ProtoResource, m); err == nil {
		t.Fatal("the rogue's mutation was acknowledged")
	}
	// Another nano is not the master either, whatever the message says.
	if _, err := send(t, tn.codec, nanos[1], nanos[0].info(), ProtoResource, m); err == nil {
		t.Fatal("another nano's mutation was acknowledged")
	}
	// An indexer may connect to the nano, but not change it.
	if _, err := send(t, tn.codec, idx[0], nanos[0].info(), ProtoResource, m); err == nil {
		t.Fatal("an indexer's mutation was acknowledged")
	}
	if hasResource(nanos[0], "evil") {
		t.Fatal("the nano applied a mutation from a peer that is not its master")
	}
	// The rogue got no stream: the nano's gater admits only its master and
	// indexers and refused the connection after the handshake. The other
	// nano's own gater would not even dial a stranger.
	if got := nanos[0].Status().Metrics["refused_conn_stranger"]; got < 1 {
		t.Fatalf("nano-0 refused_conn_stranger = %d", got)
	}
	if got := nanos[1].Status().Metrics["refused_conn_stranger"]; got < 1 {
		t.Fatalf("nano-1 refused_conn_stranger = %d", got)
	}
	if got := nanos[0].Metrics.Get("refused_not_master"); got != 1 {
		t.Fatalf("refused_not_master = %d, want 1 (the indexer's)", got)
	}
	// The master itself is heard.
	replies, err := send(t, tn.codec, master, nanos[0].info(), ProtoResource, m)
	if err != nil || replies[0].(*Ack).Status != AckApplied || !hasResource(nanos[0], "evil") {
		t.Fatalf("master's mutation: %v %+v", err, replies)
	}
}

func TestRedeliveryIsAppliedOnce(t *testing.T) {
	tn, master, _, nanos := groundAndNanos(t)
	first := &Mutation{ID: 77, Op: uint8(dtn.OpCreate), Resource: "r", Owner: []byte(nanos[0].ID()), Body: []byte("v1")}
	again := &Mutation{ID: 77, Op: uint8(dtn.OpUpdate), Resource: "r", Owner: []byte(nanos[0].ID()), Body: []byte("tampered")}
	replies, err := send(t, tn.codec, master, nanos[0].info(), ProtoResource, first, again)
	if err != nil || len(replies) != 2 {
		t.Fatalf("%v %v", err, replies)
	}
	for _, r := range replies {
		if a := r.(*Ack); a.ID != 77 || a.Status != AckApplied {
			t.Fatalf("ack %+v", a)
		}
	}
	res, _ := nanos[0].GetResource("r")
	if res == nil || string(res.Body) != "v1" || nanos[0].Metrics.Get("deliveries_duplicate") != 1 {
		t.Fatalf("a redelivered entry was applied twice: %+v", res)
	}
	// A mutation for a resource the nano does not own is refused for good.
	foreign := &Mutation{ID: 78, Op: uint8(dtn.OpCreate), Resource: "x", Owner: []byte(nanos[1].ID())}
	replies, err = send(t, tn.codec, master, nanos[0].info(), ProtoResource, foreign)
	if err != nil || replies[0].(*Ack).Status != AckRefused {
		t.Fatalf("foreign resource: %v %+v", err, replies)
	}
}

func TestMasterRefusesNanosChangingOthersResources(t *testing.T) {
	tn, master, _, nanos := groundAndNanos(t)
	m := &Mutation{ID: 5, Op: uint8(dtn.OpCreate), Resource: "not-mine", Owner: []byte(nanos[1].ID())}
	replies, err := send(t, tn.codec, nanos[0], master.info(), ProtoResource, m)
	if err != nil || replies[0].(*Ack).Status != AckRefused || hasResource(master, "not-mine") {
		t.Fatalf("master accepted a nano changing another's resource: %v %+v", err, replies)
	}
	stranger := tn.peerOf("stranger", RoleNano)
	stranger.opts.Master = master.info()
	stranger.start(t)
	m.Owner = []byte(stranger.ID())
	if _, err := send(t, tn.codec, stranger, master.info(), ProtoResource, m); err == nil || master.Metrics.Get("refused_not_nano") != 1 {
		t.Fatalf("master accepted a peer that is not one of its nanos: %v", err)
	}
}

func TestBookingsProxyAndMasterWins(t *testing.T) {
	ctx := context.Background()
	_, master, _, nanos := groundAndNanos(t)
	n0 := nanos[0]
	cut(master, n0)
	// In the gap, both sides book the same slot of the nano's antenna.
	local := Booking{Booking: "b-local", Resource: "antenna", Dest: []byte(n0.ID()), Start: 1000, End: 2000}
	if err := n0.Book(ctx, local); err != nil {
		t.Fatal(err)
	}
	proxy := Booking{Booking: "b-master", Resource: "antenna", Dest: []byte(n0.ID()), Start: 1500, End: 2500, Op: uint8(dtn.OpCreate)}
	if err := master.Book(ctx, proxy); err != nil {
		t.Fatal(err)
	}
	restore(master, n0)
	eventually(t, "master's booking delivered, local one cancelled and reported", 10*time.Second, func() bool {
		bs, _ := n0.Bookings()
		return len(bs) == 1 && bs[0].Booking.Booking == "b-master" && master.Metrics.Get("bookings_cancelled_reported") == 1
	})
	if n0.Metrics.Get("bookings_cancelled_master_wins") != 1 {
		t.Fatal("conflict not counted")
	}
	bs, _ := master.Bookings()
	names := map[string]bool{}
	for _, b := range bs {
		names[b.Booking.Booking] = true
	}
	if !names["b-master"] || names["b-local"] {
		t.Fatalf("master's view after reconciliation: %v", names)
	}
}

func TestWakeGoesToTheWaitingSide(t *testing.T) {
	ctx := context.Background()
	tn := newTestNet(t)
	idx := tn.peerOf("idx", RoleIndexer)
	master := tn.peerOf("master", RoleMaster)
	// The nano's own retries are an hour apart: only a wake can make it
	// deliver within the test.
	nano := tn.peerOf("nano", RoleNano, func(o *dtn.Options) { o.RetryBase, o.RetryCeiling = time.Hour, time.Hour })
	idx.start(t)
	// The master is down; the nano (which seldom heartbeats: one beat at
	// start) owes it a resource and says so to the indexer.
	master.host.Gater.Block(nano.host.ID(), "master down")
	nano.opts.Master = master.info()
	nano.opts.Indexers = []peer.AddrInfo{idx.info()}
	nano.opts.HeartbeatInterval = time.Hour
	nn, err := New(nano.opts)
	if err != nil {
		t.Fatal(err)
	}
	nano.Node = nn
	if err := nn.PutResource(ctx, dtn.OpCreate, "made-offline", nano.host.ID(), nil); err != nil {
		t.Fatal(err)
	}
	if err := nn.Start(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the nano's claim reaches the indexer", 5*time.Second, func() bool { return idx.Metrics.Get("heartbeats_received") >= 1 })
	// The master comes back and heartbeats: the indexer tells the master who
	// waits for it, and the master contacts the nano.
	master.host.Gater.Unblock(nano.host.ID())
	master.opts.Nanos = []peer.AddrInfo{{ID: nano.host.ID()}} // no address: only the wake can tell it
	master.opts.Indexers = []peer.AddrInfo{idx.info()}
	master.start(t)
	eventually(t, "the master wakes the nano", 10*time.Second, func() bool {
		return master.Metrics.Get("wakes_sent") > 0 && nano.Metrics.Get("wakes_received") > 0
	})
	eventually(t, "delivery after the wake", 10*time.Second, func() bool { return hasResource(master, "made-offline") })
	if nano.Metrics.Get("wakes_sent") != 0 {
		t.Fatal("the waiting side was told to wake the returning one (the seed's defect)")
	}
}

func TestGarbageOnEveryProtocolLeavesTheNodeServing(t *testing.T) {
	tn, master, idx, nanos := groundAndNanos(t)
	protos := map[string]*tnode{ProtoHeartbeat: idx[0], ProtoRecordPublish: idx[0], ProtoRecordGet: idx[0],
		ProtoRecordDelete: idx[0], ProtoResource: nanos[0], ProtoBooking: nanos[0], ProtoWake: nanos[0]}
	junk := make([]byte, 300)
	rand.Read(junk)
	inputs := map[string][]byte{
		"oversize frame":   codec.AppendFrame(nil, make([]byte, 70_000))[:64],
		"random bytes":     junk,
		"truncated frame":  {0x20, 0x82, 0x01},
		"huge array":       codec.AppendFrame(nil, []byte{0x82, 0x06, 0x9b, 0, 0, 0, 1, 0, 0, 0, 0}),
		"wrong type":       mustFrame(t, tn.codec, &Wake{Time: 1}),
		"deep nesting":     codec.AppendFrame(nil, bytes.Repeat([]byte{0x81}, 5000)),
		"zero-length body": {0x00},
	}
	for proto, target := range protos {
		for name, in := range inputs {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			s, err := master.host.NewStream(ctx, target.ID(), protocol.ID(proto))
			cancel()
			if err != nil {
				t.Fatalf("%s: %v", proto, err)
			}
			s.Write(in)
			s.CloseWrite()
			s.SetReadDeadline(time.Now().Add(5 * time.Second))
			io.Copy(io.Discard, s)
			s.Close()
			_ = name
		}
	}
	// Still serving: a real delivery and a heartbeat go through.
	if err := master.PutResource(context.Background(), dtn.OpCreate, "after-garbage", nanos[0].ID(), nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "delivery after garbage", 10*time.Second, func() bool { return hasResource(nanos[0], "after-garbage") })
	before := idx[0].Metrics.Get("heartbeats_received")
	eventually(t, "heartbeats after garbage", 5*time.Second, func() bool { return idx[0].Metrics.Get("heartbeats_received") > before })
	var rejected uint64
	for _, x := range []*tnode{idx[0], nanos[0]} {
		for name, v := range x.Metrics.Snapshot() {
			if len(name) > 9 && name[:9] == "rejected_" {
				rejected += v
			}
		}
	}
	if rejected < uint64(len(protos)*(len(inputs)-1)) {
		t.Fatalf("only %d rejections counted", rejected)
	}
}

func mustFrame(t *testing.T, c *codec.Codec, m any) []byte {
	body, err := c.EncodeMessage(m)
	if err != nil {
		t.Fatal(err)
	}
	return codec.AppendFrame(nil, body)
}

var _ = network.DirOutbound
var _ = fmt.Sprint

// Inside a window a nano whose dial to its master failed (its SYNs went
// into a link not yet up) tries again within a second, not a heartbeat
// interval later.
func TestNanoRedialsPromptlyWhileAcquiring(t *testing.T) {
	tn := newTestNet(t)
	master := tn.peerOf("master", RoleMaster)
	nano := tn.peerOf("nano", RoleNano)
	nano.opts.Master = master.info()
	nano.opts.HeartbeatInterval = time.Hour
	master.host.Close() // nothing listens: every dial fails at once
	nano.start(t)
	eventually(t, "three dial attempts", 10*time.Second, func() bool { return nano.Metrics.Get("master_dial_failures") >= 3 })
}

// Stopping does not wait for a stream that will never be answered (a
// heartbeat sent as the link went down): the node's own streams are reset
// when it closes, instead of running out their I/O timeout.
func TestCloseDoesNotWaitForAnUnansweredHeartbeat(t *testing.T) {
	tn := newTestNet(t)
	idx := tn.peerOf("idx", RoleIndexer) // never started: a handler that never answers
	asked := make(chan struct{}, 1)
	idx.host.SetStreamHandler(protocol.ID(ProtoHeartbeat), func(s network.Stream) {
		select {
		case asked <- struct{}{}:
		default:
		}
		io.Copy(io.Discard, s)
	})
	master := tn.peerOf("master", RoleMaster)
	nano := tn.peerOf("nano", RoleNano)
	nano.opts.Master = master.info()
	nano.opts.Indexers = []peer.AddrInfo{idx.info()}
	nano.opts.IOTimeout = time.Hour
	nano.start(t)
	select {
	case <-asked:
	case <-time.After(10 * time.Second):
		t.Fatal("no heartbeat reached the indexer")
	}
	time.Sleep(100 * time.Millisecond) // the heartbeat is now waiting for its answer
	closed := make(chan struct{})
	go func() { nano.Node.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		idx.host.Close() // unblock it, so the failure does not hang the run
		<-closed
		t.Fatal("Close was still waiting for the unanswered heartbeat (I/O timeout 1 h)")
	}
}
