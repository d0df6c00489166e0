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
