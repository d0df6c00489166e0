package node

// The node's side of kept sessions (the host keeps the connections,
// host/session.go): when a kept session with a peer sleeps and wakes, which
// follows the contact plan's windows and guards, and the quiet time before
// LOS in which nothing new starts on it.

import (
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// keptPhase says where now stands for a kept session under contact c:
// asleep (from the end of a window, guard included, to the next planned
// start) or not, and when that next changes (zero: never).
func keptPhase(c Contact, now time.Time) (asleep bool, next time.Time) {
	if c.Plan == nil || !c.Profile.WindowsOnly {
		return false, time.Time{}
	}
	if w, ok := c.Plan.Current(now, 0); ok {
		return false, w.End.Add(c.Profile.Guard)
	}
	if w, ok := c.Plan.Current(now, c.Profile.Guard); ok && !now.Before(w.End) {
		return false, w.End.Add(c.Profile.Guard) // trailing guard: not yet asleep
	}
	if w, ok := c.Plan.NextStart(now); ok {
		return true, w.Start
	}
	return true, time.Time{}
}

// pastLOS reports whether now is in the guard after a window's planned end:
// nothing is written to a kept peer then, as the link may be gone and bytes
// it does not carry would stay unacknowledged through the gap.
func pastLOS(c Contact, now time.Time) bool {
	if c.Plan == nil || !c.Profile.WindowsOnly {
		return false
	}
	w, ok := c.Plan.Current(now, c.Profile.Guard)
	return ok && !now.Before(w.End)
}

// quietRTTs is how many round trips before a planned LOS nothing new starts
// on a kept session: one for a request, one for its answer, one spare, so
// the session goes into the gap with everything acknowledged.
const quietRTTs = 3

// keptQuiet reports whether p's kept session is in its quiet time: from
// quietRTTs round trips before the planned LOS to the end
// of the guard.
func (n *Node) keptQuiet(p peer.ID, now time.Time) bool {
	from, ok := n.keptQuietFrom(p, now)
	return ok && !now.Before(from)
}

// keptQuietFrom is when the quiet time of p's kept session begins in the
// current window, if now is in one.
func (n *Node) keptQuietFrom(p peer.ID, now time.Time) (time.Time, bool) {
	c := n.keptContact(p)
	if !n.h.Kept(p) || c.Plan == nil || !c.Profile.WindowsOnly {
		return time.Time{}, false
	}
	w, ok := c.Plan.Current(now, c.Profile.Guard)
	return w.End.Add(-quietRTTs * n.h.SessionRTT(p)), ok
}

// linkSettle is how long after a planned AOS a kept session is woken. A
// radio link takes a moment to come up; a first segment written the very
// instant the plan says AOS may meet a link still down, and its loss holds
// every byte behind it for a retransmission (≥ 1 RTT). On the flight bench
// the link comes up 1–2 ms after the planned start.
const linkSettle = 30 * time.Millisecond

// beforeAOS reports whether now is in the guard before a window's planned
// start (or in the link's settling time after it), and when the kept
// session wakes.
func beforeAOS(c Contact, now time.Time) (time.Time, bool) {
	if c.Plan == nil || !c.Profile.WindowsOnly {
		return time.Time{}, false
	}
	w, ok := c.Plan.Current(now, c.Profile.Guard)
	wake := w.Start.Add(linkSettle)
	return wake, ok && now.Before(wake)
}

// keepsToWindows says whether a master keeps its sessions with a nano of
// contact c across gaps: the nano keeps to windows (a profile left unset is
// orbital, see nanoContact).
func keepsToWindows(c Contact) bool {
	return c.Profile.Kind == 0 || c.Profile.WindowsOnly
}

// keptContact is the contact that governs a kept session with p.
func (n *Node) keptContact(p peer.ID) Contact {
	if _, nano := n.nanos[p]; nano {
		return n.nanoContact(p)
	}
	return n.contact()
}

// awaitingResume reports whether p has a dormant session that the planned
// AOS will wake: until then nothing waits on a fresh dial to p (a drain or
// a heartbeat blocked in one would hold the pass's first messages until
// that dial completes, seconds after the kept session is back).
func (n *Node) awaitingResume(p peer.ID, now time.Time) (aos time.Time, ok bool) {
	if !n.o.Roles.Has(RoleNano) || !n.h.Kept(p) {
		return time.Time{}, false
	}
	aos, ok = beforeAOS(n.contact(), now)
	return aos, ok && len(n.h.DormantSessions(p)) > 0
}

// sessionLoop runs on a nano whose master is kept: at each planned AOS it
// wakes the dormant session and sends the pass's first messages on it, on
// its own timer, whatever the contact loop is busy with (a fresh dial into
// a link not up yet blocks it for seconds).
func (n *Node) sessionLoop() {
	master := n.o.Master.ID
	wasAsleep := false
	for {
		now := n.o.Now()
		asleep, next := keptPhase(n.contact(), now)
		if wasAsleep && !asleep {
			t := time.NewTimer(linkSettle)
			select {
			case <-n.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			n.resumeSession(master)
		}
		wasAsleep = asleep
		wait := time.Minute
		if !next.IsZero() {
			wait = min(wait, next.Sub(now))
		}
		t := time.NewTimer(max(wait, time.Millisecond))
		select {
		case <-n.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// resumeSession wakes the dormant session to master at AOS, says so to the
// master and starts delivering on it.
func (n *Node) resumeSession(master peer.ID) {
	start := time.Now()
	defer func() { n.log.Debug("kept session: resumed", "peer", master, "took", time.Since(start)) }()
	found, alive := n.h.ResumeSessions(n.ctx, master, func() {
		n.loop(func() { n.wakePeer(master) }) // the master waits to hear from this nano
		if n.store.Len(string(master)) > 0 {
			n.store.Nudge(n.ctx, string(master))
		}
	})
	switch {
	case alive:
		n.Metrics.Inc("sessions_resumed")
	case found:
		n.Metrics.Inc("sessions_lost")
		n.log.Info("kept session to the master did not answer at AOS: a fresh connection carries the pass")
	}
}

// probationBytes is what a drain may send to p on a woken kept session
// before the other end answers: one round trip of the current window's
// planned rate (0 if either is unknown: one entry).
func (n *Node) probationBytes(p peer.ID) int {
	return int(float64(n.plannedRate(p, n.o.Now())) / 8 * n.h.SessionRTT(p).Seconds())
}

// sleepOrClose ends a window with p, once per window: a kept peer's quiet
// connection goes dormant, all others close (see contactLoop: a dead link
// only stalls TCP).
func (n *Node) sleepOrClose(p peer.ID) {
	if !n.h.Kept(p) {
		n.h.Network().ClosePeer(p)
		return
	}
	slept, unacked, why := n.h.SleepSessions(p)
	if slept > 0 {
		n.Metrics.Inc("sessions_slept")
	}
	if unacked > 0 {
		n.Metrics.Inc("sessions_dropped_unacked")
		n.log.Debug("session not kept across the gap: bytes unacknowledged or a stream open at LOS", "peer", p, "why", why)
	}
}
