package node

import (
	"fmt"
	"testing"
	"time"

	"gardend/swim"

	"github.com/libp2p/go-libp2p/core/peer"
)

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
	state := func(x *tnode) swim.State { s, _ := x.members.State(a); return s }
	sm.round()
	before := idx[0].members.Incarnation()

	sm.cut(nanos[0], idx[0], true)
	sm.round() // the first failure is forgiven
	if state(nanos[0]).Kind != swim.Alive {
		t.Fatal("nano-0 suspected idx-a at its first failure")
	}
	sm.round()
	if state(nanos[0]).Kind != swim.Suspect {
		t.Fatalf("nano-0 after two failures in a row: %s", swim.KindName(state(nanos[0]).Kind))
	}
	sm.until("idx-b hears it", 2, func() bool { return state(idx[1]).Kind != swim.Alive })
	sm.until("nano-1 hears it through idx-b", 2, func() bool { return state(nanos[1]).Kind != swim.Alive })
	sm.until("nano-0 declares idx-a dead", 4, func() bool { return state(nanos[0]).Kind == swim.Dead })
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
			return s.Kind == swim.Alive && s.Incarnation > before
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
		t.Fatalf("first failure: %s", swim.KindName(k))
	}
	if k := h.failed(now.Add(interval), interval); k != swim.Suspect {
		t.Fatalf("second failure in a row: %s", swim.KindName(k))
	}
	if k := h.failed(now.Add(3*interval), interval); k != swim.Suspect {
		t.Fatalf("suspected for two intervals: %s", swim.KindName(k))
	}
	if k := h.failed(now.Add(4*interval), interval); k != swim.Dead {
		t.Fatalf("suspected for three intervals: %s", swim.KindName(k))
	}
	// The heartbeat loop resets it out of contact: a failure in the last
	// call and one at the next AOS are one failure each.
	h = indexerHealth{}
	if k := h.failed(now.Add(time.Hour), interval); k != 0 {
		t.Fatalf("first failure of a new window: %s", swim.KindName(k))
	}
}
