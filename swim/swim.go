// Package swim is SWIM-style membership gossip, piggybacked on heartbeats
// (no protocol of its own, so it costs nothing while nothing happens). A peer that cannot
// heartbeat an indexer inside a contact window suspects it and says so to
// its other indexers; an indexer told it is suspected refutes by raising
// its incarnation; indexers pass events on to the peers that heartbeat
// them, within a hop budget. Orbital gaps never cause suspicion: nobody
// heartbeats out of contact.
//
// Here lives one node's view of its peers' liveness, SWIM's precedence of
// events and the queue of events still to pass on; package node carries
// the events on its heartbeats and their answers.
package swim

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Membership gossip constants.
const (
	MaxHops         = 3  // hops an event may still travel when it is made
	EventsPerBeat   = 5  // events piggybacked on one heartbeat or response
	eventQueueLimit = 64 // events waiting to be sent; the oldest go first
)

// State is what this node believes of a peer.
type State struct {
	Kind        uint8 // Alive, Suspect, Dead
	Incarnation uint64
	Since       time.Time
}

// KindName names an event kind for logs and status.
func KindName(k uint8) string {
	switch k {
	case Alive:
		return "alive"
	case Suspect:
		return "suspect"
	case Dead:
		return "dead"
	}
	return "unknown"
}

// Membership is a node's view of its peers' liveness and the events it
// still has to pass on. Its own incarnation starts at the start time in
// Unix seconds, so it keeps growing across restarts without being stored.
type Membership struct {
	self peer.ID

	mu          sync.Mutex
	incarnation uint64
	view        map[peer.ID]State
	queue       []queuedEvent
}

type queuedEvent struct {
	ev   Event
	sent int
}

func New(self peer.ID, start time.Time) *Membership {
	return &Membership{self: self, incarnation: uint64(max(start.Unix(), 1)), view: map[peer.ID]State{}}
}

// Incarnation is this node's own incarnation.
func (m *Membership) Incarnation() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.incarnation
}

// overrides reports whether an event about a peer replaces what is known,
// by SWIM's precedence: dead is final for an incarnation and below; a
// suspicion beats an alive of the same incarnation; alive needs a higher
// incarnation to clear a suspicion.
func overrides(ev Event, known State, ok bool) bool {
	if !ok {
		return true
	}
	switch ev.Kind {
	case Alive:
		return ev.Incarnation > known.Incarnation
	case Suspect:
		return ev.Incarnation > known.Incarnation ||
			ev.Incarnation == known.Incarnation && known.Kind == Alive
	case Dead:
		return ev.Incarnation > known.Incarnation ||
			ev.Incarnation == known.Incarnation && known.Kind != Dead
	}
	return false
}

// ErrEvent is a gossiped event that cannot be used: an unknown kind
// or a peer ID that does not parse.
var ErrEvent = errors.New("member event malformed")

// Check reads the peer an event is about, or says why it cannot.
func Check(ev Event) (peer.ID, error) {
	if ev.Kind < Alive || ev.Kind > Dead {
		return "", fmt.Errorf("%w: kind %d", ErrEvent, ev.Kind)
	}
	p, err := peer.IDFromBytes(ev.Peer)
	if err != nil {
		return "", fmt.Errorf("%w: peer: %v", ErrEvent, err)
	}
	return p, nil
}

// Observe takes an event heard from a peer. It reports whether the event
// was news; news with hops left is queued to travel on. An event about this
// node that says suspect or dead is refuted at once with a higher
// incarnation.
func (m *Membership) Observe(ev Event, now time.Time) bool {
	p, err := Check(ev)
	if err != nil {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if p == m.self {
		if ev.Kind != Alive && ev.Incarnation >= m.incarnation {
			m.refuteLocked(ev.Incarnation)
			return true
		}
		return false
	}
	known, ok := m.view[p]
	if !overrides(ev, known, ok) {
		return false
	}
	m.view[p] = State{Kind: ev.Kind, Incarnation: ev.Incarnation, Since: now}
	if ev.HopsLeft > 0 {
		ev.HopsLeft--
		m.enqueueLocked(ev)
	}
	return true
}

// Local records what this node itself found about p and queues it with a
// full hop budget. It returns false when that was already known.
func (m *Membership) Local(p peer.ID, kind uint8, incarnation uint64, now time.Time) bool {
	ev := Event{Kind: kind, Peer: []byte(p), Incarnation: incarnation, HopsLeft: MaxHops + 1}
	return m.Observe(ev, now)
}

// Seen records a heartbeat answered by p at incarnation inc. It is news,
// gossiped, only when it clears a suspicion or death; plain liveness stays
// local, so a quiet network sends no events at all.
func (m *Membership) Seen(p peer.ID, inc uint64, now time.Time) bool {
	if inc == 0 {
		return false // a peer that does not gossip
	}
	m.mu.Lock()
	known, ok := m.view[p]
	if !ok || known.Kind == Alive {
		if !ok || inc > known.Incarnation {
			m.view[p] = State{Kind: Alive, Incarnation: inc, Since: now}
		}
		m.mu.Unlock()
		return false
	}
	m.mu.Unlock()
	return m.Local(p, Alive, inc, now)
}

// Refute answers a suspicion of this node at incarnation inc: when it is
// the current one, raise it and announce alive.
func (m *Membership) Refute(inc uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if inc >= m.incarnation {
		m.refuteLocked(inc)
	}
}

func (m *Membership) refuteLocked(inc uint64) {
	m.incarnation = max(m.incarnation, inc) + 1
	m.enqueueLocked(Event{Kind: Alive, Peer: []byte(m.self), Incarnation: m.incarnation, HopsLeft: MaxHops})
}

func (m *Membership) enqueueLocked(ev Event) {
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

// Next picks up to EventsPerBeat events for one heartbeat or response, the
// least sent first. An event leaves the queue once sent fanout times: a
// peer passes the number of its indexers, an indexer the number of its
// heartbeat sessions (they beat at the same interval, so each gets it).
func (m *Membership) Next(fanout int) []Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.queue) == 0 {
		return nil
	}
	sort.SliceStable(m.queue, func(i, j int) bool { return m.queue[i].sent < m.queue[j].sent })
	n := min(len(m.queue), EventsPerBeat)
	out := make([]Event, n)
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
func (m *Membership) State(p peer.ID) (State, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.view[p]
	return s, ok
}

// NotAlive lists the peers currently believed suspect or dead.
func (m *Membership) NotAlive() map[peer.ID]State {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[peer.ID]State{}
	for p, s := range m.view {
		if s.Kind != Alive {
			out[p] = s
		}
	}
	return out
}

// Event is a SWIM membership event piggybacked on heartbeats.
type Event struct {
	_           struct{} `cbor:",toarray"`
	Kind        uint8    // Alive, Suspect, Dead
	Peer        []byte   // binary peer ID
	Incarnation uint64
	HopsLeft    uint8
}

// SWIM event kinds.
const (
	Alive   uint8 = 1
	Suspect uint8 = 2
	Dead    uint8 = 3
)

// Sound reports the first thing gossip must never hold, whatever it was
// told: a view of this node itself or of an unknown kind, more events
// queued than the limit, an event with more hops than MaxHops.
func (m *Membership) Sound() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for p, s := range m.view {
		if p == m.self || s.Kind < Alive || s.Kind > Dead {
			return fmt.Errorf("view holds %s as %d", p, s.Kind)
		}
	}
	if len(m.queue) > eventQueueLimit {
		return fmt.Errorf("%d events queued, over %d", len(m.queue), eventQueueLimit)
	}
	for _, q := range m.queue {
		if q.ev.HopsLeft > MaxHops {
			return fmt.Errorf("queued %+v with more hops than gossip gives", q.ev)
		}
	}
	return nil
}
