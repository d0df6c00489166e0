package node

import (
	"container/heap"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/codec"
	"gardend/record"
)

// indexer is the indexer role's state: heartbeat sessions, the record book
// and the PendingContact inverted index (target → caller → expiry).
type indexer struct {
	n      *Node
	bornAt time.Time
	book   *record.Book

	mu       sync.Mutex
	sessions map[peer.ID]*session
	pending  map[peer.ID]map[peer.ID]time.Time
	// claimExpiries holds every claim made, by expiry: the GC pops what
	// expired instead of scanning every claim.
	claimExpiries claimExpiries
}

// claimExpiry is one PendingContact claim (caller waits for target) made
// to last until at.
type claimExpiry struct {
	at             time.Time
	target, caller peer.ID
}

type claimExpiries []claimExpiry

func (h claimExpiries) Len() int           { return len(h) }
func (h claimExpiries) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h claimExpiries) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *claimExpiries) Push(x any)        { *h = append(*h, x.(claimExpiry)) }
func (h *claimExpiries) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

type session struct {
	lastSeen time.Time
	window   time.Time // start of the rate-limit minute
	count    int       // heartbeats in that minute
}

func newIndexer(n *Node) *indexer {
	return &indexer{n: n, bornAt: n.o.Now(), book: record.NewBook(n.c),
		sessions: map[peer.ID]*session{}, pending: map[peer.ID]map[peer.ID]time.Time{}}
}

// slowestHeartbeat is the longest heartbeat interval of any profile.
func slowestHeartbeat() time.Duration {
	var d time.Duration
	for _, k := range []ProfileKind{ProfileContinuous, ProfileIntermittent, ProfileOrbital} {
		d = max(d, ProfileFor(k).HeartbeatInterval)
	}
	return d
}

// pendingTTL is how long a PendingContact claim lasts without being
// repeated: three heartbeats.
func (x *indexer) pendingTTL() time.Duration { return 3 * x.n.o.HeartbeatInterval }

// serveHeartbeat runs one long-lived heartbeat session. The sender is the
// authenticated connection's peer, never a field of the message.
func (x *indexer) serveHeartbeat(s network.Stream, r *codec.FrameReader) error {
	n := x.n
	from := s.Conn().RemotePeer()
	x.mu.Lock()
	old, ok := x.sessions[from]
	// Capacity limits new sessions only: established ones carry on (the
	// seed cut existing sessions once full).
	if !ok && len(x.sessions) >= n.o.MaxSessions {
		x.mu.Unlock()
		n.Metrics.Inc("heartbeat_refused_capacity")
		return &Refusal{Reason: "indexer full"}
	}
	// A peer's newest stream takes its session over, rate count and all: a
	// sender opens a new one when it gave up the last (a reset lost on the
	// link leaves the old one here until it idles out), and the old
	// stream's end must not take the new one's session with it.
	ss := &session{window: n.o.Now()}
	if ok {
		*ss = *old
	}
	x.sessions[from] = ss
	x.mu.Unlock()
	defer func() {
		x.mu.Lock()
		if x.sessions[from] == ss {
			delete(x.sessions, from)
		}
		x.mu.Unlock()
	}()
	// A session may stay quiet for three beats of the slowest profile
	// (intermittent: 1 min), not the ten minutes it once could: an idle
	// session holds a stream, and a peer may hold only two (limits.go).
	idle := 3 * max(slowestHeartbeat(), n.o.HeartbeatInterval)
	for {
		m, err := n.read(s, r, ProtoHeartbeat, idle)
		if err != nil {
			return err
		}
		hb, ok := m.(*Heartbeat)
		if !ok {
			return codec.ErrWrongProtocol
		}
		now := n.o.Now()
		if !x.allow(from, now) {
			n.Metrics.Inc("heartbeat_refused_rate")
			return &Refusal{Reason: "heartbeat rate limit"}
		}
		n.Metrics.Inc("heartbeats_received")
		resp := x.process(from, hb, now)
		if err := n.write(s, resp); err != nil {
			return err
		}
	}
}

// allow applies the per-peer rate limit.
func (x *indexer) allow(p peer.ID, now time.Time) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	ss := x.sessions[p]
	if ss == nil {
		return false
	}
	ss.lastSeen = now
	if now.Sub(ss.window) >= time.Minute || now.Before(ss.window) {
		ss.window, ss.count = now, 0
	}
	ss.count++
	return ss.count <= x.n.o.MaxHeartbeatsPerMinute
}

func (x *indexer) process(from peer.ID, hb *Heartbeat, now time.Time) *HeartbeatResponse {
	n := x.n
	resp := &HeartbeatResponse{MaxNodes: uint32(n.o.MaxSessions), BornAt: uint64(x.bornAt.Unix())}
	if hb.SuspectedIncarnation != 0 {
		n.members.Refute(hb.SuspectedIncarnation)
	}
	n.observeEvents(hb.Events, now)
	if len(hb.Record) > 0 {
		if v, err := x.book.Put(hb.Record, from, now); err != nil {
			resp.RecordError = err.Error()
			n.Metrics.Inc("records_rejected_" + record.Reason(err))
		} else {
			n.Metrics.Inc("records_accepted")
			x.publishDHT(v)
		}
	}
	if len(hb.Record) == 0 {
		if v, ok := x.book.Get(from, now); !ok || v.Record == nil {
			resp.NeedRecord = true
		}
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, t := range hb.PendingContact {
		target, err := peer.IDFromBytes(t)
		if err != nil {
			n.Metrics.Inc("pending_contact_malformed")
			continue
		}
		if target == from || target == n.id {
			continue // nobody to tell: this indexer never heartbeats to itself
		}
		if x.pending[target] == nil {
			x.pending[target] = map[peer.ID]time.Time{}
		}
		exp := now.Add(x.pendingTTL())
		x.pending[target][from] = exp
		heap.Push(&x.claimExpiries, claimExpiry{at: exp, target: target, caller: from})
	}
	// Tell the sender who is waiting for it; it will contact them.
	for caller, exp := range x.pending[from] {
		if !exp.After(now) {
			delete(x.pending[from], caller)
			continue
		}
		resp.PendingCallers = append(resp.PendingCallers, x.whereIs(caller, now))
	}
	if len(x.pending[from]) == 0 {
		delete(x.pending, from)
	}
	// Suggest the other indexers this one knows, so a peer can widen its pool.
	seen := map[peer.ID]bool{from: true, n.id: true}
	for _, ai := range append(append([]peer.AddrInfo(nil), n.o.Indexers...), n.o.DHTBootstrap...) {
		if seen[ai.ID] || len(resp.Suggestions) >= 3 {
			continue
		}
		seen[ai.ID] = true
		pa := PeerAddrs{Peer: []byte(ai.ID)}
		for _, a := range ai.Addrs {
			pa.Addrs = append(pa.Addrs, a.Bytes())
		}
		resp.Suggestions = append(resp.Suggestions, pa)
	}
	resp.Incarnation = n.members.Incarnation()
	resp.Events = n.members.Next(len(x.sessions))
	resp.PeerCount = uint32(len(x.sessions))
	resp.FillRate = float32(len(x.sessions)) / float32(max(n.o.MaxSessions, 1))
	return resp
}

// whereIs gives p's addresses from its signed record (what p says of
// itself), or else from what this host has seen.
func (x *indexer) whereIs(p peer.ID, now time.Time) PeerAddrs {
	pa := PeerAddrs{Peer: []byte(p)}
	if v, ok := x.book.Get(p, now); ok && v.Record != nil && len(v.Record.Addrs) > 0 {
		pa.Addrs = v.Record.Addrs
		return pa
	}
	for _, a := range x.n.h.Peerstore().Addrs(p) {
		pa.Addrs = append(pa.Addrs, a.Bytes())
	}
	return pa
}

// servePublish stores a record or tombstone sent by its owner.
func (x *indexer) servePublish(s network.Stream, r *codec.FrameReader) error {
	n := x.n
	proto := string(s.Protocol())
	m, err := n.read(s, r, proto, 0)
	if err != nil {
		return err
	}
	pub, ok := m.(*RecordPublish)
	if !ok {
		return codec.ErrWrongProtocol
	}
	now := n.o.Now()
	v, err := record.Verify(n.c, pub.Signed, now)
	if err == nil && (proto == ProtoRecordDelete) != (v.Tombstone != nil) {
		err = fmt.Errorf("%w: records go on %s, tombstones on %s", record.ErrMalformed, ProtoRecordPublish, ProtoRecordDelete)
	}
	if err == nil {
		v, err = x.book.Put(pub.Signed, s.Conn().RemotePeer(), now)
	}
	if err != nil {
		n.Metrics.Inc("records_rejected_" + record.Reason(err))
		return n.write(s, &RecordResult{Error: err.Error()})
	}
	n.Metrics.Inc("records_accepted")
	x.publishDHT(v)
	return n.write(s, &RecordResult{OK: true})
}

// serveGet answers a record lookup from the book, then the DHT.
func (x *indexer) serveGet(s network.Stream, r *codec.FrameReader) error {
	n := x.n
	m, err := n.read(s, r, ProtoRecordGet, 0)
	if err != nil {
		return err
	}
	get, ok := m.(*RecordGet)
	if !ok {
		return codec.ErrWrongProtocol
	}
	p, err := peer.IDFromBytes(get.Peer)
	if err != nil {
		n.Metrics.Inc("record_get_malformed")
		return n.write(s, &RecordResult{Error: "bad peer ID"})
	}
	if v, ok := x.book.Get(p, n.o.Now()); ok {
		return n.write(s, &RecordResult{OK: true, Signed: v.Raw})
	}
	if raw, ok := x.lookupDHT(p); ok {
		return n.write(s, &RecordResult{OK: true, Signed: raw})
	}
	return n.write(s, &RecordResult{Error: "not found"})
}

// gcLoop prunes expired records and PendingContact claims.
func (x *indexer) gcLoop() {
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-x.n.ctx.Done():
			return
		case <-tick.C:
		}
		now := x.n.o.Now()
		x.book.Prune(now)
		x.mu.Lock()
		x.pruneClaims(now)
		x.mu.Unlock()
	}
}

// pruneClaims forgets expired PendingContact claims: only those whose
// expiry came (a claim renewed since has a later one and stays). x.mu is
// held.
func (x *indexer) pruneClaims(now time.Time) {
	for len(x.claimExpiries) > 0 && !x.claimExpiries[0].at.After(now) {
		c := heap.Pop(&x.claimExpiries).(claimExpiry)
		callers := x.pending[c.target]
		if exp, ok := callers[c.caller]; ok && !exp.After(now) {
			delete(callers, c.caller)
			if len(callers) == 0 {
				delete(x.pending, c.target)
			}
		}
	}
}

// Sessions is the number of live heartbeat sessions (indexer role).
func (n *Node) Sessions() int {
	if n.idx == nil {
		return 0
	}
	n.idx.mu.Lock()
	defer n.idx.mu.Unlock()
	return len(n.idx.sessions)
}
