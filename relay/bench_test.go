package relay

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/dtn"
	"gardend/internal/testnet"
	"gardend/node"
	"gardend/plan"
)

// agePolarTLE is a made-up sun-synchronous nano (97.5°, 15.2 rev/day,
// about 560 km), epoch 2026-11-21 12:00 UTC: the one plan/ predicts from.
const agePolarTLE = "POLAR NANO\n" +
	"1 99901U 26001A   26325.50000000  .00001000  00000-0  50000-4 0  9990\n" +
	"2 99901  97.5000 330.0000 0010000  90.0000 270.0000 15.20000000 10005"

var (
	ageSvalbard = plan.Station{Name: "svalbard", Lat: 78.23, Lon: 15.39, AltM: 450, MinElevation: 10}
	ageKiruna   = plan.Station{Name: "kiruna", Lat: 67.86, Lon: 20.96, AltM: 400, MinElevation: 10}
	ageToulouse = plan.Station{Name: "toulouse", Lat: 43.6, Lon: 1.44, AltM: 150, MinElevation: 10}
)

const (
	ageDay      = 24 * time.Hour   // work is made over this much simulated time
	ageSpan     = 36 * time.Hour   // windows are predicted (and played) over this much
	ageEvery    = 15 * time.Minute // one resource each way this often
	ageStepIn   = 10 * time.Second // clock step inside a window
	ageStepOut  = 30 * time.Second // clock step between windows
	ageQuiet    = 1500 * time.Millisecond
	ageSettleAt = 60 * time.Second // real-time bound on one step's settling
)

// BenchmarkDeliveryAge plays a day of a polar nano's orbits, predicted from
// one TLE, through one ground station (Toulouse) and through three
// (Svalbard, Kiruna, Toulouse), side by side in one run. The master is not
// a station: it reaches the nano only through stations. Every 15 simulated
// minutes the nano makes one resource for its master and the master one for
// the nano; the figures are the time from an entry's creation to its apply
// at the other end, on the simulated clock, uplink and downlink together.
//
// The clock steps 30 s between windows and 10 s inside them, and also
// stops at each creation, each AOS and just after each LOS; at each step
// the real hosts are left to settle (inside a window: until everything
// made so far is applied; outside: until the master has handed its
// entries to a station and no station holds anything for the master; or,
// either way, until nothing has moved for 1.5 s of real time). An apply is
// stamped with the simulated time of its step: entries waiting for a
// window are stamped with its AOS (exact), entries made while a window is
// open with their own creation time (age 0; the seconds a real link takes
// are not simulated). The radio is emulated by the hosts' gaters: the nano
// and a station can connect only inside that station's windows, the
// master and the nano never (the master has no antenna).
//
// Every entry made before the last window must be applied exactly once at
// its destination, with its body, and every store must be empty at the
// end, or the benchmark fails. Switches for investigation: AGE_ONLY=name
// runs one configuration, AGE_DUMP=1 logs every entry's ages,
// AGE_NO_RADIO=1 leaves the loopback links open at all times (links made
// outside a window are then logged), RELAY_TEST_LOG=1 logs the nodes.
func BenchmarkDeliveryAge(b *testing.B) {
	o, err := plan.ParseTLE(agePolarTLE)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	configs := []struct {
		name     string
		stations []plan.Station
	}{
		{"1station", []plan.Station{ageToulouse}},
		{"3stations", []plan.Station{ageSvalbard, ageKiruna, ageToulouse}},
	}
	results := make([]ageResult, len(configs))
	for i := 0; i < b.N; i++ {
		for k, cfg := range configs {
			if only := os.Getenv("AGE_ONLY"); only != "" && only != cfg.name {
				continue
			}
			c, err := o.Contacts(cfg.stations, start, ageSpan, 0)
			if err != nil {
				b.Fatal(err)
			}
			results[k] = runAgeDay(b, c, start)
		}
	}
	b.ReportMetric(0, "ns/op")
	for k, cfg := range configs {
		r := results[k]
		b.Logf("%s: %d windows, %d entries applied once, p50 %.0f s, p95 %.0f s, max %.0f s (uplink %d: p50 %.0f s, p95 %.0f s; downlink %d: p50 %.0f s, p95 %.0f s); %d steps, %d left to settle by quiet, %d duplicates dropped, %s real",
			cfg.name, r.windows, len(r.ages), quantile(r.ages, 0.5), quantile(r.ages, 0.95), quantile(r.ages, 1),
			len(r.up), quantile(r.up, 0.5), quantile(r.up, 0.95), len(r.down), quantile(r.down, 0.5), quantile(r.down, 0.95),
			r.steps, r.quietSteps, r.duplicates, r.real.Round(time.Millisecond))
		b.ReportMetric(quantile(r.ages, 0.5), "delivery_age_p50_s_"+cfg.name)
		b.ReportMetric(quantile(r.ages, 0.95), "delivery_age_p95_s_"+cfg.name)
		b.ReportMetric(float64(len(r.ages)), "delivered_"+cfg.name)
	}
}

type ageResult struct {
	ages       []float64 // seconds, sorted
	up, down   []float64 // seconds, by direction
	windows    int
	steps      int
	quietSteps int
	duplicates uint64
	real       time.Duration
}

// quantile is the nearest-rank q-quantile of sorted values.
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// appliedLog records, on the simulated clock, each apply at either end.
type appliedLog struct {
	mu    sync.Mutex
	clock *testnet.Clock
	at    map[string]time.Time
	count map[string]int
}

func (l *appliedLog) record(_ peer.ID, kind, id string) {
	if kind != "resource" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.count[id] == 0 {
		l.at[id] = l.clock.Now()
	}
	l.count[id]++
}

func (l *appliedLog) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.at)
}

// runAgeDay builds a master, one process per station and the nano, plays
// the contacts c from start on and returns the ages of what crossed.
func runAgeDay(b *testing.B, c *plan.Contacts, start time.Time) ageResult {
	began := time.Now()
	f := newFleet(b, start)
	log := &appliedLog{clock: f.clock, at: map[string]time.Time{}, count: map[string]int{}}
	var closers []func()
	master := f.closing(&closers, "master", node.RoleMaster)
	nano := f.closing(&closers, "nano", node.RoleNano)
	names := c.Stations()
	var stations []*member
	ids := map[string]peer.ID{}
	var infos []peer.AddrInfo
	for _, name := range names {
		s := f.closing(&closers, name, node.RoleStation)
		stations = append(stations, s)
		ids[name] = s.id()
		infos = append(infos, s.info())
	}
	nanoID := nano.id()
	if os.Getenv("RELAY_TEST_LOG") != "" {
		for _, m := range append([]*member{master, nano}, stations...) {
			fmt.Fprintln(os.Stderr, "=== member", m.name, m.id())
		}
	}
	// A link between the nano and a station outside that station's windows
	// is one no radio could carry: log it, with who dialled.
	var outside []string
	var outsideMu sync.Mutex
	stationName := map[peer.ID]string{}
	for _, s := range stations {
		stationName[s.id()] = s.name
	}
	nano.Host.Network().Notify(&network.NotifyBundle{ConnectedF: func(_ network.Network, conn network.Conn) {
		name, ok := stationName[conn.RemotePeer()]
		if !ok {
			return
		}
		now := f.clock.Now()
		if _, open := c.StationPlan(name).Current(now, orbital().Guard); !open {
			outsideMu.Lock()
			outside = append(outside, fmt.Sprintf("%s %s (%s)", now.Format(time.RFC3339), name, conn.Stat().Direction))
			outsideMu.Unlock()
		}
	}})
	never := new(plan.Plan)
	peerPlans := map[peer.ID]*plan.Plan{master.id(): never}
	for _, s := range stations {
		peerPlans[s.id()] = c.StationPlan(s.name)
	}
	f.start(master, node.Options{Roles: node.RoleMaster, Nanos: []peer.AddrInfo{nano.info()},
		NanoContacts: map[peer.ID]node.Contact{nanoID: {Profile: orbital(), Plan: never}},
		Stations:     infos, OnApplied: log.record},
		Options{Stations: ids, Contacts: map[peer.ID]*plan.Contacts{nanoID: c}})
	for _, s := range stations {
		f.start(s, node.Options{Roles: node.RoleStation, Master: master.info(), Nanos: []peer.AddrInfo{nano.info()},
			NanoContacts: map[peer.ID]node.Contact{nanoID: {Profile: orbital(), Plan: c.StationPlan(s.name)}}},
			Options{Stations: ids})
	}
	f.start(nano, node.Options{Roles: node.RoleNano, Master: master.info(),
		Contact:  node.Contact{Profile: orbital(), Plan: c.Union()},
		Stations: infos, PeerPlans: peerPlans, OnApplied: log.record},
		Options{Stations: ids, Contacts: map[peer.ID]*plan.Contacts{nanoID: c}})

	// The events: a creation each way every ageEvery over the day; inside
	// each window its AOS, then every ageStepIn, and just after its LOS
	// (when a station gives back what the window did not carry).
	windows := c.Windows()
	last := windows[len(windows)-1].Start
	created := map[string]time.Time{}
	var makeAt []time.Time
	for t := start.Add(ageEvery / 2); t.Before(start.Add(ageDay)); t = t.Add(ageEvery) {
		makeAt = append(makeAt, t)
	}
	events := slices.Clone(makeAt)
	for t := start; !t.After(windows[len(windows)-1].End); t = t.Add(ageStepOut) {
		events = append(events, t)
	}
	for _, w := range windows {
		for t := w.Start; t.Before(w.End); t = t.Add(ageStepIn) {
			events = append(events, t)
		}
		events = append(events, w.End.Add(2*time.Second))
	}
	slices.SortFunc(events, func(a, b time.Time) int { return a.Compare(b) })
	events = slices.CompactFunc(events, func(a, b time.Time) bool { return a.Equal(b) })

	union := c.Union()
	var r ageResult
	r.windows = len(windows)
	made := 0
	put := func(m *member, id string) {
		err := m.node.PutResources(context.Background(), []node.ResourceChange{{Op: dtn.OpCreate, ID: id, Owner: nanoID, Body: []byte("body of " + id)}})
		if err != nil {
			b.Fatal(err)
		}
		created[id] = f.clock.Now()
	}
	// The radio: a station and the nano can reach each other only inside
	// that station's windows (loopback would carry them at any time).
	radio := os.Getenv("AGE_NO_RADIO") == ""
	linked := map[string]bool{}
	setRadio := func(t time.Time) {
		for _, s := range stations {
			_, up := c.StationPlan(s.name).Current(t, 0)
			if linked[s.name] == up {
				continue
			}
			linked[s.name] = up
			if up {
				nano.Host.Gater.Unblock(s.id())
				s.Host.Gater.Unblock(nano.id())
				continue
			}
			nano.Host.Gater.Block(s.id(), "out of view")
			s.Host.Gater.Block(nano.id(), "out of view")
			nano.Host.Network().ClosePeer(s.id())
			s.Host.Network().ClosePeer(nano.id())
		}
	}
	for _, s := range stations {
		linked[s.name] = true // blocked below, before the first step
	}
	nano.Host.Gater.Block(master.id(), "no antenna")
	master.Host.Gater.Block(nanoID, "no antenna")
	for _, t := range events {
		f.clock.Set(t)
		if radio {
			setRadio(t)
		}
		if os.Getenv("RELAY_TEST_LOG") != "" {
			fmt.Fprintln(os.Stderr, "=== step", t.Format(time.RFC3339))
		}
		if made < len(makeAt) && t.Equal(makeAt[made]) {
			put(nano, fmt.Sprintf("up-%03d", made))
			put(master, fmt.Sprintf("down-%03d", made))
			made++
		}
		_, open := union.Current(t, 0)
		var done func() bool
		if open {
			// A window is open: everything made so far can be applied.
			done = func() bool { return log.total() == len(created) }
		} else {
			// No window: the master has handed everything to a station,
			// and no station still holds anything for the master.
			done = func() bool {
				if master.Store.Len("") != 0 {
					return false
				}
				for _, s := range stations {
					if s.Store.Len(string(master.id())) != 0 {
						return false
					}
				}
				return true
			}
		}
		r.steps++
		if !settle(done, func() string { return fleetState(log, master, nano, stations) }) {
			r.quietSteps++
		}
	}
	// When the last window has passed, nothing stays anywhere.
	members := append([]*member{master, nano}, stations...)
	empty := func() bool {
		for _, m := range members {
			if m.Store.Len("") != 0 {
				return false
			}
		}
		return true
	}
	if !settle(empty, func() string { return fleetState(log, master, nano, stations) }) {
		for _, m := range members {
			held, _ := m.relay.Status()
			b.Logf("%s holds %d entries: %+v; counts %v", m.name, m.Store.Len(""), held, m.relay.Counts())
		}
		b.Fatalf("%d windows over %v: entries left in the stores after the last window", len(windows), names)
	}

	outsideMu.Lock()
	for _, o := range outside {
		b.Logf("nano linked to a station outside its windows: %s", o)
	}
	outsideMu.Unlock()
	log.mu.Lock()
	defer log.mu.Unlock()
	for id, at := range created {
		n := log.count[id]
		if at.Before(last) && n != 1 {
			b.Fatalf("%d windows over %v: %s made at %s was applied %d times, want once (applied so far: %d of %d)",
				len(windows), names, id, at.Format(time.RFC3339), n, len(log.at), len(created))
		}
		if n > 1 {
			b.Fatalf("%s applied %d times", id, n)
		}
		if n == 0 {
			continue // made after the last window opened
		}
		age := log.at[id].Sub(at)
		if os.Getenv("AGE_DUMP") != "" {
			b.Logf("%s made %s applied %s age %v", id, at.Format("01-02 15:04:05"), log.at[id].Format("01-02 15:04:05"), age)
		}
		if age < 0 {
			b.Fatalf("%s applied at %s, before it was made at %s", id, log.at[id], at)
		}
		r.ages = append(r.ages, age.Seconds())
		if id[:2] == "up" {
			r.up = append(r.up, age.Seconds())
		} else {
			r.down = append(r.down, age.Seconds())
		}
	}
	for _, pair := range []struct {
		m      *member
		prefix string
	}{{master, "up"}, {nano, "down"}} {
		rs, err := pair.m.node.Catalogue()
		if err != nil {
			b.Fatal(err)
		}
		got := map[string]string{}
		for _, r := range rs {
			got[r.ID] = string(r.Body)
		}
		for id := range created {
			if id[:len(pair.prefix)] == pair.prefix && log.count[id] == 1 && got[id] != "body of "+id {
				b.Fatalf("%s holds %q for %s, want its body", pair.m.name, got[id], id)
			}
		}
	}
	r.duplicates = metric(master, "deliveries_duplicate") + metric(nano, "deliveries_duplicate")
	sort.Float64s(r.ages)
	sort.Float64s(r.up)
	sort.Float64s(r.down)
	r.real = time.Since(began)
	for _, close := range closers {
		close()
	}
	return r
}

// fleetState is what moves while real hosts work: applies, and every queue.
func fleetState(log *appliedLog, master, nano *member, stations []*member) string {
	s := fmt.Sprint(log.total(), master.Store.Len(""), nano.Store.Len(""))
	for _, st := range stations {
		s += fmt.Sprint(" ", st.Store.Len(""), st.relay.Counts()["relay_moved"])
	}
	return s + fmt.Sprint(" ", master.relay.Counts()["relay_moved"], nano.relay.Counts()["relay_moved"])
}

// settle waits, on real time, until done holds, or the fleet's state has
// not changed for ageQuiet (what is left waits for a later step: a retry
// backoff or a window on the simulated clock), or ageSettleAt passed. It
// says whether done held.
func settle(done func() bool, state func() string) bool {
	deadline := time.Now().Add(ageSettleAt)
	last, since := state(), time.Now()
	for !done() {
		now := time.Now()
		if now.After(deadline) {
			return false
		}
		if s := state(); s != last {
			last, since = s, now
		} else if now.Sub(since) >= ageQuiet {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}
