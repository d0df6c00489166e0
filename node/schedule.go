package node

import (
	"container/heap"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/plan"
)

// nanoContact is what a master knows of a nano's connectivity: its plan if
// configured, else the continuous profile.
func (n *Node) nanoContact(p peer.ID) Contact {
	n.contactMu.RLock()
	c, ok := n.nanoContacts[p]
	n.contactMu.RUnlock()
	if ok {
		if c.Profile.Kind == 0 {
			c.Profile = ProfileFor(ProfileOrbital)
		}
		return c
	}
	return Contact{Profile: ProfileFor(ProfileContinuous)}
}

// contact is this node's own profile and plan.
func (n *Node) contact() Contact {
	n.contactMu.RLock()
	defer n.contactMu.RUnlock()
	return n.ownContact
}

// SetContact replaces this node's plan (e.g. passes predicted anew from a
// fresher TLE) and, when c has a profile, its timings (guard, grace,
// retries, silence). The profile kind stays the one the node started with.
func (n *Node) SetContact(c Contact) {
	n.contactMu.Lock()
	n.ownContact.Plan = c.Plan
	if c.Profile.Kind != 0 {
		kind, was := n.ownContact.Profile.Kind, n.ownContact.Profile.HeartbeatInterval
		n.ownContact.Profile = c.Profile
		n.ownContact.Profile.Kind = kind
		// Only a change of the profile's interval moves the running one: a
		// plan re-predicted with the same profile keeps an interval set by
		// option (tests, the demo).
		if v := c.Profile.HeartbeatInterval; v > 0 && v != was {
			n.heartbeatEvery.Store(int64(v))
		}
	}
	n.contactMu.Unlock()
	if c.Profile.Kind == 0 || n.o.Master.ID == "" {
		return
	}
	if keepsMaster(n.o, c.Profile) { // for its next connection (keep.go)
		n.h.KeepAcrossGaps(n.o.Master.ID)
	} else {
		n.h.StopKeeping(n.o.Master.ID)
	}
}

// HeartbeatInterval is the interval between heartbeats in force.
func (n *Node) HeartbeatInterval() time.Duration { return time.Duration(n.heartbeatEvery.Load()) }

// SetNanoContact replaces what a master knows of a nano's passes.
func (n *Node) SetNanoContact(p peer.ID, c Contact) {
	n.contactMu.Lock()
	n.nanoContacts[p] = c
	n.contactMu.Unlock()
	if keepsToWindows(c) { // for its next connection (keep.go)
		n.h.KeepAcrossGaps(p)
	} else {
		n.h.StopKeeping(p)
	}
	n.liveness.Watch(p, n.nanoContact(p), n.o.Now())
	n.nanoChanged(p)
}

// inContact reports whether this node may talk to p now: a nano only inside
// its windows (with guard); a master to a nano only inside the nano's.
func (n *Node) inContact(p peer.ID) bool {
	now := n.o.Now()
	if n.h.Kept(p) && n.keptQuiet(p, now) {
		return false // nothing new on a kept session near LOS (keep.go)
	}
	if n.o.Roles.Has(RoleNano) && !n.peerOpen(p, now) {
		return false
	}
	if _, ok := n.nanos[p]; ok {
		return n.nanoContact(p).Open(now)
	}
	return true
}

// peerPlans are a nano's plans per peer (Options.PeerPlans, or as last set).
func (n *Node) peerPlans() map[peer.ID]*plan.Plan {
	n.contactMu.RLock()
	defer n.contactMu.RUnlock()
	return n.o.PeerPlans
}

// SetPeerPlans replaces a nano's plans per peer (see Options.PeerPlans),
// e.g. passes over each station predicted anew.
func (n *Node) SetPeerPlans(pp map[peer.ID]*plan.Plan) {
	n.contactMu.Lock()
	n.o.PeerPlans = pp
	n.contactMu.Unlock()
	signal(n.kick)
}

// peerOpen says whether a nano's plan lets it reach p at now: its own plan
// open, and p's own windows (PeerPlans) open if p has any.
func (n *Node) peerOpen(p peer.ID, now time.Time) bool {
	c := n.contact()
	if !c.Open(now) {
		return false
	}
	pp, ok := n.peerPlans()[p]
	if !ok || !c.Profile.WindowsOnly {
		return true
	}
	_, open := pp.Current(now, c.Profile.Guard)
	return open
}

// watchNanos runs on a master: when a nano's window opens, its backoff is
// cleared and its queue nudged, so delivery starts with the pass; when it
// closes, the connection is closed; and each nano is judged present,
// absent as planned, or suspect. Each nano is looked at only when
// something can change for it (a window opens or closes, its grace ends, a
// suspicion timeout could expire, it connects, its plan is replaced): a
// timer heap, not a scan of every nano every second.
func (n *Node) watchNanos() {
	tick := time.NewTicker(time.Second) // reads the (injectable) clock; pops only what is due
	defer tick.Stop()
	open := map[peer.ID]bool{}
	var timers nanoTimers
	now := n.o.Now()
	for p := range n.nanos {
		heap.Push(&timers, nanoTimer{at: now, nano: p})
	}
	next := map[peer.ID]time.Time{} // the live timer of each nano; others in the heap are stale
	for p := range n.nanos {
		next[p] = now
	}
	for {
		select {
		case <-n.ctx.Done():
			return
		case p := <-n.nanoEvents:
			if _, ok := n.nanos[p]; ok {
				now := n.o.Now()
				next[p] = now
				heap.Push(&timers, nanoTimer{at: now, nano: p})
			}
		case <-tick.C:
		}
		now := n.o.Now()
		for len(timers) > 0 && !timers[0].at.After(now) {
			t := heap.Pop(&timers).(nanoTimer)
			if !next[t.nano].Equal(t.at) {
				continue // superseded
			}
			p := t.nano
			c := n.nanoContact(p)
			isOpen := c.Open(now)
			if isOpen && !open[p] {
				n.Metrics.Inc("nano_windows_opened")
				n.h.ClearBackoff(p)
				if n.store.Len(string(p)) > 0 {
					n.store.Nudge(n.ctx, string(p))
				}
			}
			if open[p] && !isOpen {
				n.sleepOrClose(p) // see contactLoop: a dead link only stalls TCP
			}
			open[p] = isOpen
			if n.Connected(p) {
				n.liveness.Seen(p, now)
			}
			switch n.liveness.CheckPeer(p, now) {
			case 1:
				n.Metrics.Inc("nano_suspected")
				n.log.Warn("nano silent through a planned window: suspected", "nano", p)
			case -1:
				n.Metrics.Inc("nano_recovered")
				n.log.Info("nano heard again", "nano", p)
			}
			at := nextNanoCheck(c, isOpen, n.Connected(p), now)
			next[p] = at
			heap.Push(&timers, nanoTimer{at: at, nano: p})
		}
	}
}

// nextNanoCheck is when something can next change for a nano: its window
// opens or closes, the grace after it ends, or (without a plan, or while
// connected) a fraction of the suspicion timeout, so a silent nano is
// suspected in time and a connected one kept fresh.
func nextNanoCheck(c Contact, isOpen, connected bool, now time.Time) time.Time {
	poll := now.Add(max(c.Profile.SuspicionTimeout/4, time.Second))
	if c.Plan == nil || !c.Profile.WindowsOnly {
		return poll
	}
	at := poll
	earliest := func(t time.Time) {
		if t.After(now) && t.Before(at) {
			at = t
		}
	}
	if w, ok := c.Plan.Current(now, c.Profile.Guard); ok && isOpen {
		earliest(w.End.Add(c.Profile.Guard).Add(time.Millisecond))
	}
	if w, ok := c.Plan.NextStart(now); ok {
		earliest(w.Start.Add(-c.Profile.Guard))
	}
	if w, ok := c.Plan.Last(now); ok {
		earliest(w.End.Add(c.Profile.Grace).Add(time.Millisecond))
	}
	if w, ok := c.Plan.Next(now); ok {
		earliest(w.End.Add(c.Profile.Grace).Add(time.Millisecond))
	}
	if connected {
		earliest(now.Add(time.Minute))
	}
	return at
}

// nanoTimer is a nano to look at again at a given time.
type nanoTimer struct {
	at   time.Time
	nano peer.ID
}

type nanoTimers []nanoTimer

func (h nanoTimers) Len() int           { return len(h) }
func (h nanoTimers) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h nanoTimers) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *nanoTimers) Push(x any)        { *h = append(*h, x.(nanoTimer)) }
func (h *nanoTimers) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// nanoChanged asks watchNanos to look at p now (it connected, or its plan
// was replaced). It never blocks: if the queue is full the nano's own
// timer comes soon enough.
func (n *Node) nanoChanged(p peer.ID) {
	select {
	case n.nanoEvents <- p:
	default:
	}
}

// Suspected returns the nanos a master currently suspects.
func (n *Node) Suspected() []peer.ID { return n.liveness.Suspected() }

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Contact is this node's own profile and plan as they stand.
func (n *Node) Contact() Contact { return n.contact() }

// NanoContact is what this master knows of nano p's profile and plan.
func (n *Node) NanoContact(p peer.ID) Contact { return n.nanoContact(p) }

// Nanos are the peers this master governs.
func (n *Node) Nanos() []peer.ID {
	out := make([]peer.ID, 0, len(n.nanos))
	for p := range n.nanos {
		out = append(out, p)
	}
	return out
}

// IsNano says whether p is one of the nanos this node serves (a master's
// fleet, or the nanos a station relays for).
func (n *Node) IsNano(p peer.ID) bool { _, ok := n.nanos[p]; return ok }

// Master is this nano's master (empty on the ground).
func (n *Node) Master() peer.ID { return n.o.Master.ID }

// LastSeen is when the master last heard from nano p (zero: never).
func (n *Node) LastSeen(p peer.ID) time.Time { return n.liveness.LastSeen(p) }
