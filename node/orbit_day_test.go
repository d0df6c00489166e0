package node

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/dtn"
	"gardend/plan"
	"gardend/record"
)

// simClock is the test's clock: the whole day is played by setting it.
type simClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *simClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *simClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

const dayTLE = "ISS (ZARYA)\n1 25544U 98067A   25247.10182809  .00011777  00000-0  21333-3 0  9997\n2 25544  51.6327 275.9345 0004179 299.5263  60.5309 15.50088696528307"

func predicted(t *testing.T, st plan.Station, from time.Time) *plan.Plan {
	t.Helper()
	o, err := plan.ParseTLE(dayTLE)
	if err != nil {
		t.Fatal(err)
	}
	passes, err := o.Passes(st, from.Add(-2*time.Hour), 28*time.Hour)
	if err != nil || len(passes) < 3 {
		t.Fatalf("%d passes: %v", len(passes), err)
	}
	p, err := plan.New(plan.Windows(passes, 64000))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestADayOfOrbits plays 24 hours of passes on a simulated clock: one master,
// three orbital nanos (two with passes predicted from a TLE over two ground
// stations, one on a static 95-minute plan). Every half hour both sides
// create resources. The link is up only during passes; deliveries use the
// real stores and apply paths. It checks: no nano is suspected during
// planned gaps; every resource arrives in the first window after it was
// made, from the window's first step; records signed before loss of signal
// reach past the next acquisition; and a nano silent through a whole window
// is suspected after it, then cleared when heard again.
func TestADayOfOrbits(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2025, 9, 11, 0, 0, 0, 0, time.UTC)
	clock := &simClock{t: t0}
	const step = 10 * time.Second
	orbital := ProfileFor(ProfileOrbital)

	var static []plan.Window
	for s := t0.Add(20 * time.Minute); s.Before(t0.Add(26 * time.Hour)); s = s.Add(95 * time.Minute) {
		static = append(static, plan.Window{Start: s, End: s.Add(8 * time.Minute)})
	}
	staticPlan, _ := plan.New(static)
	plans := []*plan.Plan{
		predicted(t, plan.Station{Lat: 43.6, Lon: 1.44, AltM: 150, MinElevation: 10}, t0),   // Toulouse
		predicted(t, plan.Station{Lat: -33.4, Lon: -70.6, AltM: 500, MinElevation: 10}, t0), // Santiago
		staticPlan,
	}

	tn := newTestNet(t)
	storeClock := func(o *dtn.Options) { o.Now = clock.Now }
	master := tn.peerOf("master", RoleMaster, storeClock)
	master.opts.Now = clock.Now
	master.opts.NanoContacts = map[peer.ID]Contact{}
	var nanos []*tnode
	for i, p := range plans {
		nn := tn.peerOf(fmt.Sprint("nano-", i), RoleNano, storeClock)
		nn.opts.Now = clock.Now
		nn.opts.Contact = Contact{Profile: orbital, Plan: p}
		nn.opts.Master = peer.AddrInfo{ID: master.host.ID()}
		master.opts.Nanos = append(master.opts.Nanos, peer.AddrInfo{ID: nn.host.ID()})
		master.opts.NanoContacts[nn.host.ID()] = Contact{Profile: orbital, Plan: p}
		nanos = append(nanos, nn)
	}
	for _, x := range append([]*tnode{master}, nanos...) {
		n, err := New(x.opts)
		if err != nil {
			t.Fatal(err)
		}
		x.Node = n // built, not started: the simulation drives it
	}

	// The third nano says nothing during its fifth window.
	silent := plans[2].Windows()[4]
	type made struct {
		at     time.Time
		holder *tnode
		plan   *plan.Plan
	}
	resources := map[string]made{}
	deliveredAt := map[string]time.Time{}
	deliver := func(from, to *tnode, now time.Time) {
		es, err := from.store.Peek(string(to.ID()), 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			m, err := from.deliveryMessage(e)
			if err != nil {
				t.Fatal(err)
			}
			mu := m.(*Mutation)
			if _, err := to.receiveMutation(ctx, from.ID(), mu); err != nil {
				t.Fatalf("apply %s: %v", mu.Resource, err)
			}
			if err := from.store.Ack(ctx, string(to.ID()), e.Ref); err != nil {
				t.Fatal(err)
			}
			deliveredAt[mu.Resource] = now
		}
	}
	// An indexer's view: every record a nano sends in contact goes into a
	// record book, which must keep it through planned gaps.
	book := record.NewBook(tn.codec)
	forgotten := map[int]time.Time{}
	var falseSuspicions []string
	suspectedC, recoveredC := time.Time{}, time.Time{}
	renewals := 0
	for now := t0; now.Before(t0.Add(24 * time.Hour)); now = now.Add(step) {
		clock.Set(now)
		if now.Sub(t0)%(30*time.Minute) == 0 {
			for i, nn := range nanos {
				g, b := fmt.Sprintf("g-%d-%d", i, now.Unix()), fmt.Sprintf("b-%d-%d", i, now.Unix())
				if err := master.PutResource(ctx, dtn.OpCreate, g, nn.ID(), []byte("ground")); err != nil {
					t.Fatal(err)
				}
				if err := nn.PutResource(ctx, dtn.OpCreate, b, nn.ID(), []byte("board")); err != nil {
					t.Fatal(err)
				}
				resources[g] = made{now, nn, plans[i]}
				resources[b] = made{now, master, plans[i]}
			}
		}
		for i, nn := range nanos {
			_, up := plans[i].Current(now, 0) // the radio link itself
			if !up || (i == 2 && !now.Before(silent.Start) && now.Before(silent.End)) {
				continue
			}
			if !nn.inContact(master.ID()) || !master.inContact(nn.ID()) {
				t.Fatalf("%s: link up at %s but a side thinks it is out of contact", nn.name, now)
			}
			master.liveness.Seen(nn.ID(), now)
			if now.Sub(t0)%(30*time.Second) == 0 || nn.o.Contact.LastCall(now) {
				raw, err := nn.signedRecord()
				if err != nil {
					t.Fatal(err)
				}
				if _, err := book.Put(raw, nn.ID(), now); err != nil {
					t.Fatalf("%s: record refused: %v", nn.name, err)
				}
				nn.Metrics.Inc("sim_records")
			}
			deliver(master, nn, now)
			deliver(nn, master, now)
			if nn.o.Contact.LastCall(now) {
				raw, err := nn.signedRecord()
				if err != nil {
					t.Fatal(err)
				}
				v, err := record.Verify(tn.codec, raw, now)
				if err != nil {
					t.Fatal(err)
				}
				cur, _ := plans[i].Current(now, 0)
				if next, ok := plans[i].NextStart(cur.End); ok && !v.Expires.After(next.Start) {
					t.Fatalf("%s: record signed before LOS expires %s, before the next AOS %s", nn.name, v.Expires, next.Start)
				}
				renewals++
			}
		}
		// Outside its windows a nano stays quiet.
		for i, nn := range nanos {
			if _, up := plans[i].Current(now, orbital.Guard); !up && nn.inContact(master.ID()) {
				t.Fatalf("%s would talk outside its windows at %s", nn.name, now)
			}
		}
		book.Prune(now)
		for i, nn := range nanos {
			_, planned := plans[i].NextStart(now)
			if _, ok := book.Get(nn.ID(), now); !ok && planned && nn.Metrics.Get("sim_records") > 0 {
				if i != 2 || now.Before(silent.Start) {
					t.Fatalf("%s: the indexer forgot its record in a planned gap at %s", nn.name, now)
				}
				if forgotten[i].IsZero() {
					forgotten[i] = now
				}
			}
		}
		sus, rec := master.liveness.Check(now)
		for _, p := range sus {
			if p == nanos[2].ID() && now.After(silent.End) && suspectedC.IsZero() {
				suspectedC = now
				continue
			}
			falseSuspicions = append(falseSuspicions, fmt.Sprintf("%s at %s", p, now.Format(time.TimeOnly)))
		}
		for _, p := range rec {
			if p == nanos[2].ID() {
				recoveredC = now
			}
		}
	}
	if len(falseSuspicions) > 0 {
		t.Fatalf("false suspicions: %v", falseSuspicions)
	}
	if suspectedC.IsZero() || suspectedC.Sub(silent.End) > orbital.Grace+step {
		t.Fatalf("the silent nano was suspected at %v (window ended %v)", suspectedC, silent.End)
	}
	if next, _ := plans[2].NextStart(silent.End); recoveredC.Before(next.Start) || recoveredC.Sub(next.Start) > step {
		t.Fatalf("recovery at %v, next window at %v", recoveredC, next.Start)
	}
	// The silent nano's record outlived the silent window only by its margin.
	if f := forgotten[2]; f.IsZero() || f.Before(silent.Start.Add(orbital.TTLMargin)) || f.After(silent.Start.Add(orbital.TTLMargin+step)) {
		t.Fatalf("silent nano's record forgotten at %v; its window opened at %v", f, silent.Start)
	}
	late, lost := 0, 0
	for id, m := range resources {
		d, ok := deliveredAt[id]
		w, has := m.plan.Next(m.at)
		if !has || !w.Start.Before(t0.Add(24*time.Hour)) {
			continue // made after the last pass of the day
		}
		if m.plan == plans[2] && w.Start.Equal(silent.Start) {
			w, _ = m.plan.NextStart(silent.End) // the silent window delivers nothing
		}
		if !w.Start.Before(t0.Add(24 * time.Hour)) {
			continue
		}
		switch {
		case !ok:
			lost++
		case d.After(w.End):
			late++
			t.Logf("%s made %s, window %s–%s, delivered %s", id, m.at.Format(time.TimeOnly), w.Start.Format(time.TimeOnly), w.End.Format(time.TimeOnly), d.Format(time.TimeOnly))
		case d.Sub(maxTime(w.Start, m.at)) > step:
			late++
			t.Logf("%s: delivered %s after the window opened", id, d.Sub(w.Start))
		}
		if ok && m.holder.GetResourceOrNil(id) == nil {
			t.Fatalf("%s acknowledged but not in the receiver's catalogue", id)
		}
	}
	if lost > 0 || late > 0 {
		t.Fatalf("%d resources lost, %d late, of %d", lost, late, len(resources))
	}
	if renewals == 0 {
		t.Fatal("no record renewal before LOS was exercised")
	}
	t.Logf("%d resources, %d delivered, %d record renewals before LOS; silent nano suspected %s after its window, cleared at the next",
		len(resources), len(deliveredAt), renewals, suspectedC.Sub(silent.End))
}

// GetResourceOrNil is GetResource for tests.
func (n *Node) GetResourceOrNil(id string) *Resource {
	r, _ := n.GetResource(id)
	return r
}
