package node

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/plan"
)

// TestKeptPhaseFollowsThePlan: a kept session sleeps from the end of a
// window plus its guard to the next planned AOS, and is awake from AOS to
// the end of the trailing guard (simulated clock: only the plan's times).
func TestKeptPhaseFollowsThePlan(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	prof := ProfileFor(ProfileOrbital) // guard 30 s
	w1 := plan.Window{Start: t0.Add(10 * time.Minute), End: t0.Add(18 * time.Minute)}
	w2 := plan.Window{Start: t0.Add(100 * time.Minute), End: t0.Add(108 * time.Minute)}
	p, err := plan.New([]plan.Window{w1, w2})
	if err != nil {
		t.Fatal(err)
	}
	c := Contact{Profile: prof, Plan: p}
	g := prof.Guard
	for _, tc := range []struct {
		name      string
		at        time.Time
		asleep    bool
		next      time.Time
		pastLOS   bool
		beforeAOS bool
	}{
		{"before the first window", t0, true, w1.Start, false, false},
		{"leading guard", w1.Start.Add(-g / 2), true, w1.Start, false, true},
		{"AOS (the link settling)", w1.Start, false, w1.End.Add(g), false, true},
		{"AOS, link settled", w1.Start.Add(linkSettle), false, w1.End.Add(g), false, false},
		{"in the window", w1.Start.Add(time.Minute), false, w1.End.Add(g), false, false},
		{"LOS", w1.End, false, w1.End.Add(g), true, false},
		{"trailing guard", w1.End.Add(g / 2), false, w1.End.Add(g), true, false},
		{"end of the trailing guard", w1.End.Add(g), true, w2.Start, false, false},
		{"gap", w1.End.Add(time.Hour), true, w2.Start, false, false},
		{"after the last window", w2.End.Add(g), true, time.Time{}, false, false},
	} {
		asleep, next := keptPhase(c, tc.at)
		if asleep != tc.asleep || !next.Equal(tc.next) {
			t.Errorf("%s: asleep=%v next=%v, want %v %v", tc.name, asleep, next, tc.asleep, tc.next)
		}
		if got := pastLOS(c, tc.at); got != tc.pastLOS {
			t.Errorf("%s: pastLOS=%v, want %v", tc.name, got, tc.pastLOS)
		}
		aos, before := beforeAOS(c, tc.at)
		if before != tc.beforeAOS || (before && !aos.Equal(w1.Start.Add(linkSettle))) {
			t.Errorf("%s: beforeAOS=%v %v, want %v", tc.name, before, aos, tc.beforeAOS)
		}
	}
	// Without a plan, or for a continuous profile, a session never sleeps.
	for _, c := range []Contact{{Profile: prof}, {Profile: ProfileFor(ProfileContinuous), Plan: p}} {
		if asleep, next := keptPhase(c, w1.End.Add(time.Hour)); asleep || !next.IsZero() {
			t.Errorf("contact %+v: asleep=%v next=%v", c.Profile.Kind, asleep, next)
		}
	}
}

// A peer is kept only while its contact keeps to windows: a plan that turns
// continuous gives its next connection keepalives again, on either end.
func TestKeptFollowsTheProfile(t *testing.T) {
	tn := newTestNet(t)
	master, nano := tn.peerOf("master", RoleMaster), tn.peerOf("nano", RoleNano)
	master.opts.Nanos = []peer.AddrInfo{nano.info()}
	nano.opts.Master = master.info()
	nano.opts.Contact = Contact{Profile: ProfileFor(ProfileOrbital)}
	master.start(t)
	nano.start(t)
	m, n := master.host.ID(), nano.host.ID()
	if !nano.host.Kept(m) {
		t.Fatal("an orbital nano does not keep its master")
	}
	if master.host.Kept(n) {
		t.Fatal("the master keeps a nano it has no contact for")
	}
	master.SetNanoContact(n, Contact{Profile: ProfileFor(ProfileOrbital)})
	if !master.host.Kept(n) {
		t.Fatal("the master does not keep an orbital nano")
	}
	master.SetNanoContact(n, Contact{Profile: ProfileFor(ProfileContinuous)})
	if master.host.Kept(n) {
		t.Fatal("the master still keeps a nano whose contact turned continuous")
	}
	nano.SetContact(Contact{Profile: ProfileFor(ProfileContinuous)})
	if nano.host.Kept(m) {
		t.Fatal("the nano still keeps its master under a continuous profile")
	}
	nano.SetContact(Contact{Profile: ProfileFor(ProfileOrbital)})
	if !nano.host.Kept(m) {
		t.Fatal("the nano does not keep its master once orbital again")
	}
}

// A nano's kept session sleeps when its window closes (end plus guard),
// not at the contact loop's next heartbeat tick: with heartbeats slower
// than the rest of the window, or than the gap, the session went into the
// gap awake (and anything written there was lost to a dead link). The
// nano heartbeats once an hour here; its window closes seconds after the
// start on the simulated clock.
func TestAKeptSessionSleepsWhenItsWindowCloses(t *testing.T) {
	t0 := time.Now()
	clock := &simClock{t: t0}
	prof := ProfileFor(ProfileOrbital)
	prof.Guard = time.Second
	end := t0.Add(2 * time.Second)
	p, err := plan.New([]plan.Window{{Start: t0.Add(-time.Hour), End: end}, {Start: t0.Add(time.Hour), End: t0.Add(2 * time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	tn := newTestNet(t)
	master := tn.peerOf("master", RoleMaster)
	nano := tn.peerOf("nano", RoleNano)
	master.opts.Now = clock.Now
	master.opts.Nanos = []peer.AddrInfo{nano.info()}
	master.opts.NanoContacts = map[peer.ID]Contact{nano.host.ID(): {Profile: prof, Plan: p}}
	nano.opts.Now = clock.Now
	nano.opts.Contact = Contact{Profile: prof, Plan: p}
	nano.opts.Master = master.info()
	nano.opts.HeartbeatInterval = time.Hour
	master.start(t)
	nano.start(t)
	m := master.ID()
	if !nano.host.Kept(m) {
		t.Fatal("the nano does not keep its session to the master: the test sets nothing up")
	}
	eventually(t, "the nano connected in its window", time.Minute, func() bool { return nano.Connected(m) })
	if nano.host.SessionRTT(m) == 0 {
		// Its unacked bytes unknown, a session is never kept (host.needTCPInfo).
		t.Skip("TCP_INFO cannot be read on this platform (qemu-user): sessions are not kept here")
	}

	clock.Set(end.Add(prof.Guard)) // the window and its guard are over
	eventually(t, "the nano's session asleep after its window", time.Minute, func() bool {
		return nano.Metrics.Get("sessions_slept") == 1
	})
	if d := nano.host.DormantSessions(m); len(d) != 1 {
		t.Fatalf("%d dormant sessions to the master after the window, want 1", len(d))
	}
	if n := nano.Metrics.Get("sessions_dropped_unacked"); n != 0 {
		t.Fatalf("%d sessions dropped at LOS for bytes unacknowledged: the session was not quiet", n)
	}
}

// A nano closes its connection to a ground station when the station's
// window (plan of its own, PeerPlans) closes, not at the contact loop's
// next heartbeat tick, while its own contact plan is still open.
func TestANanoLeavesAStationWhenItsWindowCloses(t *testing.T) {
	t0 := time.Now()
	clock := &simClock{t: t0}
	prof := ProfileFor(ProfileOrbital)
	prof.Guard = time.Second
	end := t0.Add(2 * time.Second)
	own, err := plan.New([]plan.Window{{Start: t0.Add(-time.Hour), End: t0.Add(time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	overStation, err := plan.New([]plan.Window{{Start: t0.Add(-time.Hour), End: end}, {Start: t0.Add(2 * time.Hour), End: t0.Add(3 * time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	tn := newTestNet(t)
	master := tn.peerOf("master", RoleMaster)
	station := tn.peerOf("station", RoleStation)
	nano := tn.peerOf("nano", RoleNano)
	master.opts.Now = clock.Now
	master.opts.Nanos = []peer.AddrInfo{nano.info()}
	station.opts.Now = clock.Now
	nano.opts.Now = clock.Now
	nano.opts.Contact = Contact{Profile: prof, Plan: own}
	nano.opts.Master = master.info()
	nano.opts.Stations = []peer.AddrInfo{station.info()}
	nano.opts.PeerPlans = map[peer.ID]*plan.Plan{station.host.ID(): overStation}
	nano.opts.HeartbeatInterval = time.Hour
	master.start(t)
	station.start(t)
	nano.start(t)
	s := station.ID()
	eventually(t, "the nano connected to the station in view", time.Minute, func() bool { return nano.Connected(s) })

	clock.Set(end.Add(prof.Guard)) // the station's window and its guard are over
	eventually(t, "the nano's connection to the station closed", time.Minute, func() bool { return !nano.Connected(s) })
	if !nano.Connected(master.ID()) {
		t.Fatal("the nano left its master too: its own window is still open")
	}
}
