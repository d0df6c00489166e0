package node

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"gardend/codec"
	"gardend/dtn"
	"gardend/plan"
	"gardend/swim"
)

// A nano whose master is also its indexer does not ask the master, in the
// heartbeats it sends it, to call the master: the claim would cost the
// link 42 bytes a beat during every drain and the master nothing to do. A
// heartbeat to another indexer still names the master, and an indexer
// named in a claim it receives does not keep it.
func TestAHeartbeatDoesNotAskItsIndexerToCallItself(t *testing.T) {
	tn := newTestNet(t)
	master := tn.peerOf("master", RoleMaster|RoleIndexer)
	other := tn.peerOf("other", RoleIndexer)
	nano := tn.peerOf("nano", RoleNano)
	master.start(t)
	nano.opts.Master = master.info()
	nano.start(t)
	cut(nano, master) // the entry stays pending
	if err := nano.PutResource(context.Background(), dtn.OpCreate, "pending", nano.ID(), nil); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	toMaster, _, err := nano.heartbeatTo(master.ID(), &recordSent{}, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(toMaster.PendingContact) != 0 {
		t.Errorf("the heartbeat to the master asks it to call %d peers, want none", len(toMaster.PendingContact))
	}
	toOther, _, err := nano.heartbeatTo(other.host.ID(), &recordSent{}, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(toOther.PendingContact) != 1 || string(toOther.PendingContact[0]) != string(master.ID()) {
		t.Errorf("the heartbeat to another indexer asks it to call %v, want the master", toOther.PendingContact)
	}
	// A sender that still names the indexer leaves no claim there.
	master.idx.process(nano.ID(), toOther, now)
	master.idx.mu.Lock()
	claims := len(master.idx.pending)
	master.idx.mu.Unlock()
	if claims != 0 {
		t.Errorf("the master keeps %d claims naming itself, want none", claims)
	}
}

// A heartbeat that says nothing but "alive" waits while its indexer
// acknowledges this node's deliveries, and only then: one that carries
// anything, one in the last call before LOS, one on a stream not yet
// answered, one when the last ack is older than an interval, and one when
// the last beat is a slowest interval old all go.
func TestABeatWaitsOnlyWhileAcksSayAlive(t *testing.T) {
	tn := newTestNet(t)
	master := tn.peerOf("master", RoleMaster|RoleIndexer)
	nano := tn.peerOf("nano", RoleNano)
	master.opts.Nanos = []peer.AddrInfo{nano.info()}
	master.start(t)
	nano.opts.Master = master.info()
	nano.start(t)
	m := master.ID()
	interval := nano.HeartbeatInterval()
	now := time.Now()
	aliveOnly := func() *Heartbeat { return &Heartbeat{Time: uint64(now.Unix()), Name: "nano"} }
	if nano.beatCanWait(m, aliveOnly(), now.Add(-interval), now) {
		t.Error("a beat waits with no ack ever heard")
	}
	// The master's acks of a delivery are what is heard.
	if err := nano.PutResource(context.Background(), dtn.OpCreate, "acked", nano.ID(), nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the master's ack heard", time.Minute, func() bool {
		nano.acks.mu.Lock()
		defer nano.acks.mu.Unlock()
		_, ok := nano.acks.at[m]
		return ok
	})
	nano.acks.mu.Lock()
	nano.acks.at = nil // what follows sets them by hand
	nano.acks.mu.Unlock()
	nano.acks.heard(tn.peerOf("other", RoleIndexer).host.ID(), now)
	if nano.beatCanWait(m, aliveOnly(), now.Add(-interval), now) {
		t.Error("a beat to the master waits on another peer's acks")
	}
	nano.acks.heard(m, now.Add(-interval/2))
	if !nano.beatCanWait(m, aliveOnly(), now.Add(-interval), now) {
		t.Error("a liveness-only beat is sent while the master acks deliveries")
	}
	if nano.beatCanWait(m, aliveOnly(), time.Time{}, now) {
		t.Error("the first beat of a stream waits")
	}
	if nano.beatCanWait(m, aliveOnly(), now.Add(-max(slowestHeartbeat(), interval)), now) {
		t.Error("a beat waits a slowest interval after the last one went")
	}
	if nano.beatCanWait(m, aliveOnly(), now.Add(-interval), now.Add(interval)) {
		t.Error("a beat waits on an ack older than an interval")
	}
	for name, add := range map[string]func(*Heartbeat){
		"a record":           func(hb *Heartbeat) { hb.Record = []byte{1} },
		"gossip":             func(hb *Heartbeat) { hb.Events = make([]swim.Event, 1) },
		"a claim":            func(hb *Heartbeat) { hb.PendingContact = [][]byte{[]byte("p")} },
		"a refutation asked": func(hb *Heartbeat) { hb.SuspectedIncarnation = 3 },
		"its indexers":       func(hb *Heartbeat) { hb.Indexers = [][]byte{[]byte(m)} },
	} {
		hb := aliveOnly()
		add(hb)
		if nano.beatCanWait(m, hb, now.Add(-interval), now) {
			t.Errorf("a beat carrying %s waits", name)
		}
	}
	// In the last call before LOS the beat goes whatever the acks say.
	p, err := plan.New([]plan.Window{{Start: now.Add(-time.Minute), End: now.Add(time.Second)}})
	if err != nil {
		t.Fatal(err)
	}
	nano.SetContact(Contact{Profile: ProfileFor(ProfileOrbital), Plan: p})
	if !nano.contact().LastCall(now) {
		t.Fatal("the plan does not put now in the last call")
	}
	if nano.beatCanWait(m, aliveOnly(), now.Add(-interval), now) {
		t.Error("the last call's beat waits")
	}
}

// The heartbeat loop leaves out the beats the master's acks stand in for,
// and sends again once they stop or once a slowest interval has passed
// since the last beat went. Time is the test's clock; acks are recorded
// by hand, as the delivery's ack reader records them.
func TestHeartbeatLoopLeavesBeatsToAcks(t *testing.T) {
	clock := &simClock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	advance := func(d time.Duration) { clock.Set(clock.Now().Add(d)) }
	tn := newTestNet(t)
	master := tn.peerOf("master", RoleMaster|RoleIndexer)
	nano := tn.peerOf("nano", RoleNano)
	master.opts.Now = clock.Now
	master.start(t)
	nano.opts.Now = clock.Now
	nano.opts.Master = master.info()
	nano.opts.Indexers = []peer.AddrInfo{master.info()}
	nano.start(t)
	m := master.ID()
	interval := nano.HeartbeatInterval()
	received := func() uint64 { return master.Metrics.Get("heartbeats_received") }
	skipped := func() uint64 { return nano.Metrics.Get("heartbeats_skipped_for_acks") }
	// Beats go until the stream's first ones have told the master all it
	// needs (record, indexers, gossip); then, with acks, one is left out.
	for i := 0; skipped() == 0; i++ {
		if i == 5 {
			t.Fatalf("%d heartbeats sent while the acks came, none left out", received())
		}
		nano.acks.heard(m, clock.Now())
		advance(interval)
		before := received() + skipped()
		eventually(t, "a heartbeat sent or left out", time.Minute, func() bool { return received()+skipped() > before })
	}
	got := received()
	for range 3 {
		nano.acks.heard(m, clock.Now())
		advance(interval)
		before := skipped()
		eventually(t, "a heartbeat left to the acks", time.Minute, func() bool { return skipped() > before })
	}
	if received() != got {
		t.Fatalf("the master got %d heartbeats while the acks stood in for them", received()-got)
	}
	// Acks still come, but the last beat that went is a slowest interval old.
	advance(max(slowestHeartbeat(), interval))
	nano.acks.heard(m, clock.Now())
	eventually(t, "a beat after a slowest interval", time.Minute, func() bool { return received() > got })
	// No ack since: once the last is more than an interval old, beats go.
	got = received()
	advance(2 * interval)
	eventually(t, "a beat once the acks stop", time.Minute, func() bool { return received() > got })
}

// A second heartbeat stream from a peer takes its session over at the
// indexer, and the first one's end leaves it in place: the beats on the
// second are still answered (they were refused as over the rate limit,
// the session gone with the first stream).
func TestAnIndexerKeepsTheSessionOfAPeersNewestStream(t *testing.T) {
	tn := newTestNet(t)
	idx := tn.peerOf("idx", RoleIndexer)
	idx.start(t)
	client := tn.peerOf("client", RoleNano) // its host only: no node of its own
	client.host.Peerstore().AddAddrs(idx.ID(), idx.info().Addrs, time.Hour)
	open := func() (network.Stream, *codec.FrameReader) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s, err := client.host.NewStream(ctx, idx.ID(), protocol.ID(ProtoHeartbeat))
		if err != nil {
			t.Fatal(err)
		}
		return s, tn.codec.NewReader(s)
	}
	beat := func(s network.Stream, r *codec.FrameReader, what string) {
		t.Helper()
		s.SetDeadline(time.Now().Add(time.Minute))
		if err := tn.codec.WriteMessage(s, &Heartbeat{Time: uint64(time.Now().Unix()), Name: "client"}); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		m, _, err := tn.codec.ReadMessage(r, ProtoHeartbeat)
		if _, ok := m.(*HeartbeatResponse); err != nil || !ok {
			t.Fatalf("%s: %T, %v", what, m, err)
		}
	}
	inbound := func() (n int) {
		idx.host.Network().ResourceManager().ViewPeer(client.host.ID(), func(ps network.PeerScope) error {
			n = ps.Stat().NumStreamsInbound
			return nil
		})
		return n
	}
	s1, r1 := open()
	beat(s1, r1, "first stream")
	s2, r2 := open()
	beat(s2, r2, "second stream")
	s1.Reset()
	// The indexer frees the stream's slot once its handler has returned.
	eventually(t, "the first stream's end at the indexer", time.Minute, func() bool { return inbound() == 1 })
	beat(s2, r2, "second stream, after the first ended")
	s2.Reset()
}
