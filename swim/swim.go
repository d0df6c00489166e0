package node

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// SWIM-style membership gossip, piggybacked on heartbeats (no protocol of
// its own, so it costs nothing while nothing happens). A peer that cannot
// heartbeat an indexer inside a contact window suspects it and says so to
// its other indexers; an indexer told it is suspected refutes by raising
// its incarnation; indexers pass events on to the peers that heartbeat
// them, within a hop budget. Orbital gaps never cause suspicion: nobody
// heartbeats out of contact.

// Membership gossip constants.
const (
	eventHops       = 3  // hops an event may still travel when it is made
	eventsPerBeat   = 5  // events piggybacked on one heartbeat or response
	eventQueueLimit = 64 // events waiting to be sent; the oldest go first
)

// MemberState is what this node believes of a peer.
type MemberState struct {
	Kind        uint8 // EventAlive, EventSuspect, EventDead
	Incarnation uint64
	Since       time.Time
}

// KindName names an event kind for logs and status.
func KindName(k uint8) string {
	switch k {
	case EventAlive:
		return "alive"
	case EventSuspect:
		return "suspect"
	case EventDead:
		return "dead"
	}
	return "unknown"
}

// membership is a node's view of its peers' liveness and the events it
// still has to pass on. Its own incarnation starts at the start time in
// Unix seconds, so it keeps growing across restarts without being stored.
type membership struct {
	self peer.ID

	mu          sync.Mutex
	incarnation uint64
	view        map[peer.ID]MemberState
	queue       []queuedEvent
}

type queuedEvent struct {
	ev   MemberEvent
	sent int
}

func newMembership(self peer.ID, start time.Time) *membership {
	return &membership{self: self, incarnation: uint64(max(start.Unix(), 1)), view: map[peer.ID]MemberState{}}
}

// Incarnation is this node's own incarnation.
func (m *membership) Incarnation() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.incarnation
}

// overrides reports whether an event about a peer replaces what is known,
// by SWIM's precedence: dead is final for an incarnation and below; a
// suspicion beats an alive of the same incarnation; alive needs a higher
// incarnation to clear a suspicion.
func overrides(ev MemberEvent, known MemberState, ok bool) bool {
	if !ok {
		return true
	}
	switch ev.Kind {
	case EventAlive:
		return ev.Incarnation > known.Incarnation
	case EventSuspect:
		return ev.Incarnation > known.Incarnation ||
			ev.Incarnation == known.Incarnation && known.Kind == EventAlive
	case EventDead:
		return ev.Incarnation > known.Incarnation ||
			ev.Incarnation == known.Incarnation && known.Kind != EventDead
	}
	return false
}

// ErrMemberEvent is a gossiped event that cannot be used: an unknown kind
// or a peer ID that does not parse.
var ErrMemberEvent = errors.New("member event malformed")

// checkEvent reads the peer an event is about, or says why it cannot.
func checkEvent(ev MemberEvent) (peer.ID, error) {
	if ev.Kind < EventAlive || ev.Kind > EventDead {
		return "", fmt.Errorf("%w: kind %d", ErrMemberEvent, ev.Kind)
	}
	p, err := peer.IDFromBytes(ev.Peer)
	if err != nil {
		return "", fmt.Errorf("%w: peer: %v", ErrMemberEvent, err)
	}
	return p, nil
}

// observeEvents takes the events a heartbeat or its response carried,
// counting news and malformed ones. A peer's hop budget is capped at what
// any honest sender can give (eventHops): a larger one would make the
// event travel further than gossip allows.
func (n *Node) observeEvents(evs []MemberEvent, now time.Time) {
	for _, ev := range evs {
		if _, err := checkEvent(ev); err != nil {
			n.Metrics.Inc("member_events_malformed")
			continue
		}
		ev.HopsLeft = min(ev.HopsLeft, eventHops)
		if n.members.observe(ev, now) {
			n.Metrics.Inc("member_events_news")
		}
	}
}

// observe takes an event heard from a peer. It reports whether the event
// was news; news with hops left is queued to travel on. An event about this
// node that says suspect or dead is refuted at once with a higher
// incarnation.
func (m *membership) observe(ev MemberEvent, now time.Time) bool {
	p, err := checkEvent(ev)
	if err != nil {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if p == m.self {
		if ev.Kind != EventAlive && ev.Incarnation >= m.incarnation {
			m.refuteLocked(ev.Incarnation)
			return true
		}
		return false
	}
	known, ok := m.view[p]
	if !overrides(ev, known, ok) {
		return false
	}
	m.view[p] = MemberState{Kind: ev.Kind, Incarnation: ev.Incarnation, Since: now}
	if ev.HopsLeft > 0 {
		ev.HopsLeft--
		m.enqueueLocked(ev)
	}
	return true
}

// local records what this node itself found about p and queues it with a
// full hop budget. It returns false when that was already known.
func (m *membership) local(p peer.ID, kind uint8, incarnation uint64, now time.Time) bool {
	ev := MemberEvent{Kind: kind, Peer: []byte(p), Incarnation: incarnation, HopsLeft: eventHops + 1}
	return m.observe(ev, now)
}

// seen records a heartbeat answered by p at incarnation inc. It is news,
// gossiped, only when it clears a suspicion or death; plain liveness stays
// local, so a quiet network sends no events at all.
func (m *membership) seen(p peer.ID, inc uint64, now time.Time) bool {
	if inc == 0 {
		return false // a peer that does not gossip
	}
	m.mu.Lock()
	known, ok := m.view[p]
	if !ok || known.Kind == EventAlive {
		if !ok || inc > known.Incarnation {
			m.view[p] = MemberState{Kind: EventAlive, Incarnation: inc, Since: now}
		}
		m.mu.Unlock()
		return false
	}
	m.mu.Unlock()
	return m.local(p, EventAlive, inc, now)
}

// refute answers a suspicion of this node at incarnation inc: when it is
// the current one, raise it and announce alive.
func (m *membership) refute(inc uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if inc >= m.incarnation {
		m.refuteLocked(inc)
	}
}

func (m *membership) refuteLocked(inc uint64) {
	m.incarnation = max(m.incarnation, inc) + 1
	m.enqueueLocked(MemberEvent{Kind: EventAlive, Peer: []byte(m.self), Incarnation: m.incarnation, HopsLeft: eventHops})
}

func (m *membership) enqueueLocked(ev MemberEvent) {
	// A newer event about the same peer makes the queued one pointless.
	q := m.queue[:0]
	for _, e := range m.queue {
		if string(e.ev.Peer) != string(ev.Peer) {
			q = append(q, e)
		}
	}
	m.queue = append(q, queuedEvent{ev: ev})
	if len(m.queue) > eventQueueLimit {
		m.queue = m.queue[len(m.queue)-eventQueueLimit:]
	}
}

// next picks up to eventsPerBeat events for one heartbeat or response, the
// least sent first. An event leaves the queue once sent fanout times: a
// peer passes the number of its indexers, an indexer the number of its
// heartbeat sessions (they beat at the same interval, so each gets it).
func (m *membership) next(fanout int) []MemberEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.queue) == 0 {
		return nil
	}
	sort.SliceStable(m.queue, func(i, j int) bool { return m.queue[i].sent < m.queue[j].sent })
	n := min(len(m.queue), eventsPerBeat)
	out := make([]MemberEvent, n)
	for i := range n {
		out[i] = m.queue[i].ev
		m.queue[i].sent++
	}
	q := m.queue[:0]
	for _, e := range m.queue {
		if e.sent < max(fanout, 1) {
			q = append(q, e)
		}
	}
	m.queue = q
	return out
}

// State is what this node believes of p.
func (m *membership) State(p peer.ID) (MemberState, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.view[p]
	return s, ok
}

// notAlive lists the peers currently believed suspect or dead.
func (m *membership) notAlive() map[peer.ID]MemberState {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[peer.ID]MemberState{}
	for p, s := range m.view {
		if s.Kind != EventAlive {
			out[p] = s
		}
	}
	return out
}
