package node

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestMembershipPrecedence(t *testing.T) {
	for _, c := range []struct {
		ev    MemberEvent
		known MemberState
		want  bool
	}{
		{MemberEvent{Kind: EventAlive, Incarnation: 5}, MemberState{Kind: EventAlive, Incarnation: 5}, false},
		{MemberEvent{Kind: EventAlive, Incarnation: 6}, MemberState{Kind: EventSuspect, Incarnation: 5}, true},
		{MemberEvent{Kind: EventAlive, Incarnation: 5}, MemberState{Kind: EventSuspect, Incarnation: 5}, false},
		{MemberEvent{Kind: EventSuspect, Incarnation: 5}, MemberState{Kind: EventAlive, Incarnation: 5}, true},
		{MemberEvent{Kind: EventSuspect, Incarnation: 4}, MemberState{Kind: EventAlive, Incarnation: 5}, false},
		{MemberEvent{Kind: EventSuspect, Incarnation: 5}, MemberState{Kind: EventSuspect, Incarnation: 5}, false},
		{MemberEvent{Kind: EventDead, Incarnation: 5}, MemberState{Kind: EventSuspect, Incarnation: 5}, true},
		{MemberEvent{Kind: EventSuspect, Incarnation: 5}, MemberState{Kind: EventDead, Incarnation: 5}, false},
		{MemberEvent{Kind: EventAlive, Incarnation: 6}, MemberState{Kind: EventDead, Incarnation: 5}, true},
	} {
		if got := overrides(c.ev, c.known, true); got != c.want {
			t.Errorf("%s@%d over %s@%d: %v, want %v", KindName(c.ev.Kind), c.ev.Incarnation,
				KindName(c.known.Kind), c.known.Incarnation, got, c.want)
		}
	}
}

func TestMembershipGossipAndRefutation(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	self, _ := testPeer(t, 1)
	other, _ := testPeer(t, 2)
	m := newMembership(self, now)

	// Plain liveness is not news.
	if m.seen(other, 7, now) || len(m.next(2)) != 0 {
		t.Fatal("a heartbeat answered as usual produced gossip")
	}
	// A suspicion is queued with the full hop budget and sent twice (fanout 2).
	if !m.local(other, EventSuspect, 7, now) {
		t.Fatal("suspicion not news")
	}
	for i := range 2 {
		evs := m.next(2)
		if len(evs) != 1 || evs[0].Kind != EventSuspect || evs[0].HopsLeft != eventHops || evs[0].Incarnation != 7 {
			t.Fatalf("send %d: %+v", i, evs)
		}
	}
	if evs := m.next(2); len(evs) != 0 {
		t.Fatalf("event still queued after its fanout: %+v", evs)
	}
	// A relayed event loses a hop; one with no hops left is applied, not relayed.
	third, _ := testPeer(t, 3)
	m.observe(MemberEvent{Kind: EventDead, Peer: []byte(third), Incarnation: 3, HopsLeft: 1}, now)
	if evs := m.next(2); len(evs) != 1 || evs[0].HopsLeft != 0 {
		t.Fatalf("relayed: %+v", evs)
	}
	m.next(2)
	fourth, _ := testPeer(t, 4)
	if !m.observe(MemberEvent{Kind: EventSuspect, Peer: []byte(fourth), Incarnation: 1, HopsLeft: 0}, now) {
		t.Fatal("last-hop event not applied")
	}
	if evs := m.next(2); len(evs) != 0 {
		t.Fatalf("an event with no hops left travelled on: %+v", evs)
	}
	// The suspected peer answering at a higher incarnation clears it, and that is news.
	if !m.seen(other, 8, now) {
		t.Fatal("a refutation was not news")
	}
	if st, _ := m.State(other); st.Kind != EventAlive || st.Incarnation != 8 {
		t.Fatalf("after refutation: %+v", st)
	}
	// Being suspected at the current incarnation raises it and announces alive.
	inc := m.Incarnation()
	m.observe(MemberEvent{Kind: EventSuspect, Peer: []byte(self), Incarnation: inc, HopsLeft: 2}, now)
	if m.Incarnation() != inc+1 {
		t.Fatalf("incarnation %d after refuting %d", m.Incarnation(), inc)
	}
	var announced bool
	for _, ev := range m.next(2) {
		if peer.ID(ev.Peer) == self && ev.Kind == EventAlive && ev.Incarnation == inc+1 {
			announced = true
		}
	}
	if !announced {
		t.Fatal("refutation not announced")
	}
	// An old suspicion of this node changes nothing.
	m.refute(inc - 1)
	if m.Incarnation() != inc+1 {
		t.Fatal("a stale suspicion raised the incarnation")
	}
	// Garbage is ignored.
	if m.observe(MemberEvent{Kind: 9, Peer: []byte(other)}, now) || m.observe(MemberEvent{Kind: EventDead, Peer: []byte("nope")}, now) {
		t.Fatal("garbage event applied")
	}
}

// TestIndexerSuspicionTravelsAndIsRefuted: nano-0 loses its link to idx-a
// only. It suspects idx-a, then declares it dead; idx-b hears it from
// nano-0's heartbeats and nano-1 from idx-b's answers. When the link comes
// back idx-a refutes, and the alive event clears it everywhere.
func TestIndexerSuspicionTravelsAndIsRefuted(t *testing.T) {
	_, master, idx, nanos := groundAndNanos(t)
	a := idx[0].ID()
	state := func(x *tnode) MemberState { s, _ := x.members.State(a); return s }
	eventually(t, "first heartbeats", 10*time.Second, func() bool { return idx[0].Sessions() >= 4 && idx[1].Sessions() >= 4 })
	before := idx[0].members.Incarnation()

	cut(nanos[0], idx[0])
	eventually(t, "nano-0 suspects idx-a", 10*time.Second, func() bool { return state(nanos[0]).Kind != EventAlive })
	eventually(t, "idx-b hears it", 10*time.Second, func() bool { return state(idx[1]).Kind != EventAlive })
	eventually(t, "nano-1 hears it through idx-b", 10*time.Second, func() bool { return state(nanos[1]).Kind != EventAlive })
	eventually(t, "nano-0 declares idx-a dead", 10*time.Second, func() bool { return state(nanos[0]).Kind == EventDead })
	for _, x := range []*tnode{master, nanos[1], nanos[2]} {
		if x.Metrics.Get("indexers_suspected") != 0 {
			t.Fatalf("%s, whose link is fine, suspected an indexer itself", x.name)
		}
	}
	st := nanos[0].Status()
	if len(st.Members) != 1 || st.Members[0].Peer != a.String() || st.Members[0].State != "dead" {
		t.Fatalf("status members: %+v", st.Members)
	}

	restore(nanos[0], idx[0])
	eventually(t, "idx-a refutes", 10*time.Second, func() bool { return idx[0].members.Incarnation() > before })
	for _, x := range []*tnode{nanos[0], idx[1], nanos[1], master} {
		eventually(t, x.name+" sees idx-a alive again", 10*time.Second, func() bool {
			s := state(x)
			return s.Kind == EventAlive && s.Incarnation > before
		})
	}
	if n := nanos[0].Metrics.Get("indexers_suspected"); n != 1 {
		t.Fatalf("indexers_suspected = %d", n)
	}
}

func TestIndexerHealthNeedsTwoFailuresInOneWindow(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	const interval = 20 * time.Second
	var h indexerHealth
	if k := h.failed(now, interval); k != 0 {
		t.Fatalf("first failure: %s", KindName(k))
	}
	if k := h.failed(now.Add(interval), interval); k != EventSuspect {
		t.Fatalf("second failure in a row: %s", KindName(k))
	}
	if k := h.failed(now.Add(3*interval), interval); k != EventSuspect {
		t.Fatalf("suspected for two intervals: %s", KindName(k))
	}
	if k := h.failed(now.Add(4*interval), interval); k != EventDead {
		t.Fatalf("suspected for three intervals: %s", KindName(k))
	}
	// The heartbeat loop resets it out of contact: a failure in the last
	// call and one at the next AOS are one failure each.
	h = indexerHealth{}
	if k := h.failed(now.Add(time.Hour), interval); k != 0 {
		t.Fatalf("first failure of a new window: %s", KindName(k))
	}
}
