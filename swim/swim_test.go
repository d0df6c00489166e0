package swim

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/test"
)

func TestMembershipPrecedence(t *testing.T) {
	for _, c := range []struct {
		ev    Event
		known State
		want  bool
	}{
		{Event{Kind: Alive, Incarnation: 5}, State{Kind: Alive, Incarnation: 5}, false},
		{Event{Kind: Alive, Incarnation: 6}, State{Kind: Suspect, Incarnation: 5}, true},
		{Event{Kind: Alive, Incarnation: 5}, State{Kind: Suspect, Incarnation: 5}, false},
		{Event{Kind: Suspect, Incarnation: 5}, State{Kind: Alive, Incarnation: 5}, true},
		{Event{Kind: Suspect, Incarnation: 4}, State{Kind: Alive, Incarnation: 5}, false},
		{Event{Kind: Suspect, Incarnation: 5}, State{Kind: Suspect, Incarnation: 5}, false},
		{Event{Kind: Dead, Incarnation: 5}, State{Kind: Suspect, Incarnation: 5}, true},
		{Event{Kind: Suspect, Incarnation: 5}, State{Kind: Dead, Incarnation: 5}, false},
		{Event{Kind: Alive, Incarnation: 6}, State{Kind: Dead, Incarnation: 5}, true},
	} {
		if got := overrides(c.ev, c.known, true); got != c.want {
			t.Errorf("%s@%d over %s@%d: %v, want %v", KindName(c.ev.Kind), c.ev.Incarnation,
				KindName(c.known.Kind), c.known.Incarnation, got, c.want)
		}
	}
}

func TestMembershipGossipAndRefutation(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	self := test.RandPeerIDFatal(t)
	other := test.RandPeerIDFatal(t)
	m := New(self, now)

	// Plain liveness is not news.
	if m.Seen(other, 7, now) || len(m.Next(2)) != 0 {
		t.Fatal("a heartbeat answered as usual produced gossip")
	}
	// A suspicion is queued with the full hop budget and sent twice (fanout 2).
	if !m.Local(other, Suspect, 7, now) {
		t.Fatal("suspicion not news")
	}
	for i := range 2 {
		evs := m.Next(2)
		if len(evs) != 1 || evs[0].Kind != Suspect || evs[0].HopsLeft != MaxHops || evs[0].Incarnation != 7 {
			t.Fatalf("send %d: %+v", i, evs)
		}
	}
	if evs := m.Next(2); len(evs) != 0 {
		t.Fatalf("event still queued after its fanout: %+v", evs)
	}
	// A relayed event loses a hop; one with no hops left is applied, not relayed.
	third := test.RandPeerIDFatal(t)
	m.Observe(Event{Kind: Dead, Peer: []byte(third), Incarnation: 3, HopsLeft: 1}, now)
	if evs := m.Next(2); len(evs) != 1 || evs[0].HopsLeft != 0 {
		t.Fatalf("relayed: %+v", evs)
	}
	m.Next(2)
	fourth := test.RandPeerIDFatal(t)
	if !m.Observe(Event{Kind: Suspect, Peer: []byte(fourth), Incarnation: 1, HopsLeft: 0}, now) {
		t.Fatal("last-hop event not applied")
	}
	if evs := m.Next(2); len(evs) != 0 {
		t.Fatalf("an event with no hops left travelled on: %+v", evs)
	}
	// The suspected peer answering at a higher incarnation clears it, and that is news.
	if !m.Seen(other, 8, now) {
		t.Fatal("a refutation was not news")
	}
	if st, _ := m.State(other); st.Kind != Alive || st.Incarnation != 8 {
		t.Fatalf("after refutation: %+v", st)
	}
	// Being suspected at the current incarnation raises it and announces alive.
	inc := m.Incarnation()
	m.Observe(Event{Kind: Suspect, Peer: []byte(self), Incarnation: inc, HopsLeft: 2}, now)
	if m.Incarnation() != inc+1 {
		t.Fatalf("incarnation %d after refuting %d", m.Incarnation(), inc)
	}
	var announced bool
	for _, ev := range m.Next(2) {
		if peer.ID(ev.Peer) == self && ev.Kind == Alive && ev.Incarnation == inc+1 {
			announced = true
		}
	}
	if !announced {
		t.Fatal("refutation not announced")
	}
	// An old suspicion of this node changes nothing.
	m.Refute(inc - 1)
	if m.Incarnation() != inc+1 {
		t.Fatal("a stale suspicion raised the incarnation")
	}
	// Garbage is ignored.
	if m.Observe(Event{Kind: 9, Peer: []byte(other)}, now) || m.Observe(Event{Kind: Dead, Peer: []byte("nope")}, now) {
		t.Fatal("garbage event applied")
	}
}
