package node

import (
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/plan"
	"gardend/record"
)

// ProfileKind is a connectivity profile, declared in a peer's record.
type ProfileKind uint8

const (
	ProfileContinuous   ProfileKind = 1 // always reachable: a ground station, a fibre site
	ProfileIntermittent ProfileKind = 2 // reachable at irregular times, no plan
	ProfileOrbital      ProfileKind = 3 // reachable in planned windows (passes)
)

func (k ProfileKind) String() string {
	switch k {
	case ProfileContinuous:
		return "continuous"
	case ProfileIntermittent:
		return "intermittent"
	case ProfileOrbital:
		return "orbital"
	}
	return fmt.Sprintf("profile(%d)", uint8(k))
}

// ParseProfileKind reads a profile name.
func ParseProfileKind(s string) (ProfileKind, error) {
	for _, k := range []ProfileKind{ProfileContinuous, ProfileIntermittent, ProfileOrbital} {
		if k.String() == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("unknown profile %q (want continuous, intermittent or orbital)", s)
}

// Profile is how often and when a peer talks, and how long others wait
// before they suspect it. One constructor per kind holds the defaults, as
// memberlist does for LAN and WAN.
type Profile struct {
	Kind              ProfileKind
	HeartbeatInterval time.Duration // between heartbeats while in contact
	WindowsOnly       bool          // dial and heartbeat only inside planned windows
	RecordTTL         time.Duration // record lifetime without a plan
	SuspicionTimeout  time.Duration // silence before suspicion, for peers without a plan
	RetryBase         time.Duration // DTN backoff: first retry
	RetryCeiling      time.Duration // DTN backoff: ceiling
	Guard             time.Duration // act this long before AOS and after LOS
	TTLMargin         time.Duration // orbital: records last until the next AOS plus this
	Grace             time.Duration // orbital: after a window ends, wait this long before judging it silent
}

// ProfileFor returns the defaults of a kind.
func ProfileFor(k ProfileKind) Profile {
	switch k {
	case ProfileIntermittent:
		return Profile{Kind: k, HeartbeatInterval: time.Minute, RecordTTL: 2 * time.Hour,
			SuspicionTimeout: 3 * time.Hour, RetryBase: time.Minute, RetryCeiling: 30 * time.Minute}
	case ProfileOrbital:
		return Profile{Kind: k, HeartbeatInterval: 30 * time.Second, WindowsOnly: true, RecordTTL: 2 * time.Hour,
			SuspicionTimeout: 3 * time.Hour, RetryBase: 5 * time.Second, RetryCeiling: time.Minute,
			Guard: 30 * time.Second, TTLMargin: 15 * time.Minute, Grace: 2 * time.Minute}
	}
	return Profile{Kind: ProfileContinuous, HeartbeatInterval: 20 * time.Second, RecordTTL: 10 * time.Minute,
		SuspicionTimeout: 90 * time.Second, RetryBase: 15 * time.Second, RetryCeiling: 10 * time.Minute}
}

// Contact combines a peer's profile with its contact plan (nil: no plan).
type Contact struct {
	Profile Profile
	Plan    *plan.Plan
}

// Open reports whether the peer may be talked to at now: always, unless the
// profile keeps to windows and now is outside every window (with guard).
func (c Contact) Open(now time.Time) bool {
	if !c.Profile.WindowsOnly || c.Plan == nil {
		return true
	}
	_, ok := c.Plan.Current(now, c.Profile.Guard)
	return ok
}

// Describe says where now stands in the plan, for people.
func (c Contact) Describe(now time.Time) string {
	if c.Plan == nil {
		return "no plan"
	}
	if w, ok := c.Plan.Current(now, 0); ok {
		return "in a window until " + w.End.UTC().Format(time.RFC3339)
	}
	if w, ok := c.Plan.NextStart(now); ok {
		return "planned gap; next window " + w.Start.UTC().Format(time.RFC3339)
	}
	return "no window left in the plan"
}

// ClosesAt is when the window open at now (with guard) ends: its end plus
// the guard, when Open turns false unless the next window's guard has
// begun by then. A loop that acts when a window closes wakes then, not at
// its next tick.
func (c Contact) ClosesAt(now time.Time) (time.Time, bool) {
	if c.Plan == nil || !c.Profile.WindowsOnly {
		return time.Time{}, false
	}
	w, ok := c.Plan.Current(now, c.Profile.Guard)
	return w.End.Add(c.Profile.Guard), ok
}

// LastCall reports whether now is in the last guard interval of the current
// window: the moment to renew the record before loss of signal.
func (c Contact) LastCall(now time.Time) bool {
	from, ok := c.LastCallFrom(now)
	return ok && !now.Before(from)
}

// LastCallFrom is when the current window's last call begins, if now is in
// a window: a loop that acts in the last call wakes then, not a tick later.
func (c Contact) LastCallFrom(now time.Time) (time.Time, bool) {
	if c.Plan == nil || !c.Profile.WindowsOnly {
		return time.Time{}, false
	}
	w, ok := c.Plan.Current(now, 0)
	return w.End.Add(-max(c.Profile.Guard, c.Profile.HeartbeatInterval)), ok
}

// RecordExpiry is when a record signed at now should expire. With a plan,
// it reaches past the next acquisition of signal plus a margin, so a peer in
// a planned gap stays known; without one, now plus the profile's TTL.
// Never beyond MaxRecordTTL.
func (c Contact) RecordExpiry(now time.Time) time.Time {
	exp := now.Add(c.Profile.RecordTTL)
	if c.Plan != nil && c.Profile.WindowsOnly {
		from := now
		if w, ok := c.Plan.Current(now, 0); ok {
			from = w.End
		}
		if next, ok := c.Plan.NextStart(from); ok {
			exp = next.Start.Add(c.Profile.TTLMargin)
		} else {
			exp = from.Add(c.Profile.RecordTTL) // past the plan's horizon: no promise
		}
	}
	if exp.Sub(now) > record.MaxTTL {
		exp = now.Add(record.MaxTTL)
	}
	return exp
}

// Liveness tells planned absence from failure. A peer with a plan is never
// suspected in a planned gap; it is suspected when a window it should have
// used has ended (plus grace) without a word from it. A peer without a plan
// is suspected after its profile's silence timeout. Safe for concurrent use.
type Liveness struct {
	mu    sync.Mutex
	peers map[peer.ID]*liveness
}

type liveness struct {
	contact   Contact
	lastSeen  time.Time
	since     time.Time // when watching started
	suspected bool
}

// NewLiveness returns an empty tracker.
func NewLiveness() *Liveness { return &Liveness{peers: map[peer.ID]*liveness{}} }

// Watch starts tracking p from now with its contact (profile and plan).
func (l *Liveness) Watch(p peer.ID, c Contact, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if st, ok := l.peers[p]; ok {
		st.contact = c
		return
	}
	l.peers[p] = &liveness{contact: c, since: now}
}

// Seen records a sign of life from p (a heartbeat, a delivery, a
// connection).
func (l *Liveness) Seen(p peer.ID, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if st, ok := l.peers[p]; ok && now.After(st.lastSeen) {
		st.lastSeen = now
	}
}

// Suspect reports whether p should be suspected at now.
func (l *Liveness) Suspect(p peer.ID, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	st, ok := l.peers[p]
	return ok && st.suspect(now)
}

func (st *liveness) suspect(now time.Time) bool {
	heard := st.lastSeen
	if heard.IsZero() {
		heard = st.since // give a new peer the same chance as one just heard
	}
	c := st.contact
	if c.Plan == nil || !c.Profile.WindowsOnly {
		return now.Sub(heard) > c.Profile.SuspicionTimeout
	}
	// The last window that has fully passed, grace included.
	w, ok := c.Plan.Last(now.Add(-c.Profile.Grace))
	if !ok || w.End.Before(st.since) {
		return false // no window has passed since we started watching
	}
	return heard.Before(w.Start.Add(-c.Profile.Guard))
}

// Check returns the peers whose suspicion changed since the last Check:
// newly suspected and recovered.
func (l *Liveness) Check(now time.Time) (suspected, recovered []peer.ID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for p, st := range l.peers {
		s := st.suspect(now)
		if s && !st.suspected {
			suspected = append(suspected, p)
		} else if !s && st.suspected {
			recovered = append(recovered, p)
		}
		st.suspected = s
	}
	return suspected, recovered
}

// CheckPeer judges one peer at now: 1 if it became suspected, -1 if it
// recovered, 0 if nothing changed.
func (l *Liveness) CheckPeer(p peer.ID, now time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	st, ok := l.peers[p]
	if !ok {
		return 0
	}
	s, was := st.suspect(now), st.suspected
	st.suspected = s
	switch {
	case s && !was:
		return 1
	case !s && was:
		return -1
	}
	return 0
}

// Suspected lists the peers suspected at the last Check.
func (l *Liveness) Suspected() []peer.ID {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []peer.ID
	for p, st := range l.peers {
		if st.suspected {
			out = append(out, p)
		}
	}
	return out
}

// LastSeen is when p last gave a sign of life (zero: never, or not watched).
func (l *Liveness) LastSeen(p peer.ID) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if st, ok := l.peers[p]; ok {
		return st.lastSeen
	}
	return time.Time{}
}
