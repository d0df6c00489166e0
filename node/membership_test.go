package node

import (
	"fmt"
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

// simMembers is the membership part of the network (one master,
// two indexers, three nanos, everyone heartbeating both indexers) played
// on a simulated clock: each round every peer beats every indexer through
// the real message paths (heartbeatTo, the indexer's process, heardFrom),
// or, across a cut link, records a failure as its heartbeat loop would.
// Nothing waits on real time, so the outcome cannot depend on the machine.
type simMembers struct {
	t       *testing.T
	clock   *simClock
	peers   []*tnode // master, then nanos
	idx     []*tnode
	cuts    map[[2]peer.ID]bool
	health  map[[2]peer.ID]*indexerHealth
	records map[[2]peer.ID]*recordSent
}

func newSimMembers(t *testing.T) (sm *simMembers, master *tnode, idx, nanos []*tnode) {
	tn := newTestNet(t)
	clock := &simClock{t: time.Unix(1_800_000_000, 0)}
	master = tn.peerOf("master", RoleMaster)
	idx = []*tnode{tn.peerOf("idx-a", RoleIndexer), tn.peerOf("idx-b", RoleIndexer)}
	for i := range 3 {
		nanos = append(nanos, tn.peerOf(fmt.Sprint("nano-", i), RoleNano))
	}
	indexers := []peer.AddrInfo{idx[0].info(), idx[1].info()}
	master.opts.Indexers = indexers
	for _, nn := range nanos {
		master.opts.Nanos = append(master.opts.Nanos, nn.info())
		nn.opts.Master = master.info()
		nn.opts.Indexers = indexers
	}
	for _, x := range tn.nodes {
		x.opts.Now = clock.Now
		x.opts.HeartbeatInterval = 20 * time.Second
		n, err := New(x.opts)
		if err != nil {
			t.Fatal(err)
		}
		x.Node = n // built, not started: the simulation drives it
	}
	for _, x := range idx {
		x.idx = newIndexer(x.Node)
	}
	sm = &simMembers{t: t, clock: clock, peers: append([]*tnode{master}, nanos...), idx: idx,
		cuts: map[[2]peer.ID]bool{}, health: map[[2]peer.ID]*indexerHealth{}, records: map[[2]peer.ID]*recordSent{}}
	for _, p := range sm.peers {
		for _, x := range idx {
			k := [2]peer.ID{p.ID(), x.ID()}
			sm.health[k], sm.records[k] = &indexerHealth{}, &recordSent{}
			x.idx.sessions[p.ID()] = &session{window: clock.Now()}
		}
	}
	return sm, master, idx, nanos
}

func (sm *simMembers) cut(p, x *tnode, down bool) { sm.cuts[[2]peer.ID{p.ID(), x.ID()}] = down }

// round plays one heartbeat interval.
func (sm *simMembers) round() {
	now := sm.clock.Now()
	for _, p := range sm.peers {
		for _, x := range sm.idx {
			k := [2]peer.ID{p.ID(), x.ID()}
			if sm.cuts[k] {
				p.heartbeatFailed(x.ID(), sm.health[k], now)
				continue
			}
			hb, commit, err := p.heartbeatTo(x.ID(), sm.records[k], now)
			if err != nil {
				sm.t.Fatal(err)
			}
			resp := x.idx.process(p.ID(), hb, now)
			commit()
			p.heardFrom(x.ID(), resp, sm.records[k], now)
			*sm.health[k] = indexerHealth{}
		}
	}
	sm.clock.Set(now.Add(20 * time.Second))
}

// until plays rounds until cond holds, at most rounds of them.
func (sm *simMembers) until(what string, rounds int, cond func() bool) {
	sm.t.Helper()
	for range rounds {
		if cond() {
			return
		}
		sm.round()
	}
	if !cond() {
		sm.t.Fatalf("%s: not after %d heartbeat rounds", what, rounds)
	}
}

// TestIndexerSuspicionTravelsAndIsRefuted: nano-0 loses its link to idx-a
// only. It suspects idx-a at its second failure in a row, then declares it
// dead three intervals later; idx-b hears it from nano-0's heartbeats and
// nano-1 from idx-b's answers. When the link comes back idx-a refutes, and
// the alive event clears it everywhere.
func TestIndexerSuspicionTravelsAndIsRefuted(t *testing.T) {
	sm, master, idx, nanos := newSimMembers(t)
	a := idx[0].ID()
	state := func(x *tnode) MemberState { s, _ := x.members.State(a); return s }
	sm.round()
	before := idx[0].members.Incarnation()

	sm.cut(nanos[0], idx[0], true)
	sm.round() // the first failure is forgiven
	if state(nanos[0]).Kind != EventAlive {
		t.Fatal("nano-0 suspected idx-a at its first failure")
	}
	sm.round()
	if state(nanos[0]).Kind != EventSuspect {
		t.Fatalf("nano-0 after two failures in a row: %s", KindName(state(nanos[0]).Kind))
	}
	sm.until("idx-b hears it", 2, func() bool { return state(idx[1]).Kind != EventAlive })
	sm.until("nano-1 hears it through idx-b", 2, func() bool { return state(nanos[1]).Kind != EventAlive })
	sm.until("nano-0 declares idx-a dead", 4, func() bool { return state(nanos[0]).Kind == EventDead })
	for _, x := range []*tnode{master, nanos[1], nanos[2]} {
		if x.Metrics.Get("indexers_suspected") != 0 {
			t.Fatalf("%s, whose link is fine, suspected an indexer itself", x.name)
		}
	}
	st := nanos[0].Status()
	if len(st.Members) != 1 || st.Members[0].Peer != a.String() || st.Members[0].State != "dead" {
		t.Fatalf("status members: %+v", st.Members)
	}

	sm.cut(nanos[0], idx[0], false)
	sm.until("idx-a refutes", 2, func() bool { return idx[0].members.Incarnation() > before })
	for _, x := range []*tnode{nanos[0], idx[1], nanos[1], master} {
		sm.until(x.name+" sees idx-a alive again", 4, func() bool {
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
