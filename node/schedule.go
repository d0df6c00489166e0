package node

import (
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
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
// fresher TLE). The profile kind stays the one the node started with.
func (n *Node) SetContact(c Contact) {
	n.contactMu.Lock()
	n.ownContact.Plan = c.Plan
	n.contactMu.Unlock()
}

// SetNanoContact replaces what a master knows of a nano's passes.
func (n *Node) SetNanoContact(p peer.ID, c Contact) {
	n.contactMu.Lock()
	n.nanoContacts[p] = c
	n.contactMu.Unlock()
	n.liveness.Watch(p, n.nanoContact(p), n.o.Now())
}

// inContact reports whether this node may talk to p now: a nano only inside
// its windows (with guard); a master to a nano only inside the nano's.
func (n *Node) inContact(p peer.ID) bool {
	now := n.o.Now()
	if n.o.Roles.Has(RoleNano) && !n.contact().Open(now) {
		return false
	}
	if _, ok := n.nanos[p]; ok {
		return n.nanoContact(p).Open(now)
	}
	return true
}

// watchNanos runs on a master: when a nano's window opens, its backoff is
// cleared and its queue nudged, so delivery starts with the pass; and each
// nano is judged present, absent as planned, or suspect.
func (n *Node) watchNanos() {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	open := map[peer.ID]bool{}
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-tick.C:
		}
		now := n.o.Now()
		for p := range n.nanos {
			isOpen := n.nanoContact(p).Open(now)
			if isOpen && !open[p] {
				n.Metrics.Inc("nano_windows_opened")
				n.h.ClearBackoff(p)
				if n.store.Len(string(p)) > 0 {
					n.store.Nudge(n.ctx, string(p))
				}
			}
			if open[p] && !isOpen {
				n.h.Network().ClosePeer(p) // see contactLoop: a dead link only stalls TCP
			}
			open[p] = isOpen
			if n.Connected(p) {
				n.liveness.Seen(p, now)
			}
		}
		suspected, recovered := n.liveness.Check(now)
		for _, p := range suspected {
			n.Metrics.Inc("nano_suspected")
			n.log.Warn("nano silent through a planned window: suspected", "nano", p)
		}
		for _, p := range recovered {
			n.Metrics.Inc("nano_recovered")
			n.log.Info("nano heard again", "nano", p)
		}
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
