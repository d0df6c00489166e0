package node

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/dtn"
	"gardend/plan"
)

// rssBytes is the process's resident set (Linux).
func rssBytes(b *testing.B) uint64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Skip("no /proc/self/status")
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	b.Skip("no VmRSS")
	return 0
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// orbitPlan is a day of passes for nano i of a fleet: six 10-minute
// windows, one every 4 hours, the fleet's phases spread over the day.
func orbitPlan(b *testing.B, i, fleet int, day time.Time) Contact {
	phase := time.Duration(int64(4*time.Hour) * int64(i) / int64(fleet))
	var ws []plan.Window
	for k := -1; k < 7; k++ {
		s := day.Add(phase + time.Duration(k)*4*time.Hour)
		ws = append(ws, plan.Window{Start: s, End: s.Add(10 * time.Minute)})
	}
	p, err := plan.New(ws)
	if err != nil {
		b.Fatal(err)
	}
	return Contact{Profile: ProfileFor(ProfileOrbital), Plan: p}
}

// BenchmarkGroundFleet measures a master governing 10 000 nanos: 10 000
// simulated at the store and scheduling level (configured nanos with
// orbital plans spread over the day, a backlog queued for each, watched
// and scheduled by the master, but no host: they never connect) plus
// GARDEND_FLEET_REAL (default 100) real nanos, each its own libp2p host
// connected over loopback, all in this process.
//
//   - ground_rss_mib_per_1k_nanos: resident memory the master gained by
//     taking the fleet on (its store with a backlog for every nano, its
//     scheduling state, the real nanos' connections), per 1000 nanos;
//   - ground_cpu_ms_per_s_per_1k_nanos: CPU of the whole process over 10 s
//     of steady state, with resources put for random nanos at 100 per nano
//     per day, per second and per 1000 nanos;
//   - ground_restart_drain_s: after the master restarts (node and store
//     closed and reopened, host kept) with 50 entries owed to every real
//     nano, the time until all are applied; the drain pool (MaxDrains) is
//     checked to hold.
func BenchmarkGroundFleet(b *testing.B) {
	const simulated = 10_000
	realN := 100
	if v, err := strconv.Atoi(os.Getenv("GARDEND_FLEET_REAL")); err == nil && v > 0 {
		realN = v
	}
	ctx := context.Background()
	tn := newTestNet(b)
	master := tn.peerOf("master", RoleMaster, func(o *dtn.Options) { o.QuotaBytes = 512 << 20 })
	reals := make([]*tnode, realN)
	for i := range reals {
		reals[i] = tn.peerOf(fmt.Sprint("real-", i), RoleNano)
		reals[i].opts.HeartbeatInterval = time.Minute
	}
	sims := make([]peer.ID, simulated)
	for i := range sims {
		_, pub, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			b.Fatal(err)
		}
		sims[i], _ = peer.IDFromPublicKey(pub)
	}
	runtime.GC()
	debug.FreeOSMemory()
	rss0 := rssBytes(b)

	day := time.Now().Truncate(24 * time.Hour)
	master.opts.NanoContacts = map[peer.ID]Contact{}
	for i, p := range sims {
		master.opts.Nanos = append(master.opts.Nanos, peer.AddrInfo{ID: p})
		master.opts.NanoContacts[p] = orbitPlan(b, i, simulated, day)
	}
	for _, r := range reals {
		master.opts.Nanos = append(master.opts.Nanos, r.info())
		r.opts.Master = master.info()
	}
	master.opts.HeartbeatInterval = time.Minute
	master.start(b)
	for _, r := range reals {
		r.start(b)
	}
	for _, r := range reals {
		eventually(b, "real nanos connected", time.Minute, func() bool { return r.Connected(master.ID()) })
	}
	// A backlog for every simulated nano: 10 resources each.
	body := make([]byte, 300)
	for i := 0; i < simulated; i += 50 {
		var changes []ResourceChange
		for _, p := range sims[i:min(i+50, simulated)] {
			for k := range 10 {
				changes = append(changes, ResourceChange{Op: dtn.OpCreate, ID: fmt.Sprint("s", k), Owner: p, Body: body})
			}
		}
		if err := master.PutResources(ctx, changes); err != nil {
			b.Fatal(err)
		}
	}
	nanos := float64(simulated + realN)
	rng := rand.New(rand.NewPCG(1, 2))
	// Steady state: 100 resources per nano per day, to random nanos.
	perSecond := nanos * 100 / 86400
	steady := 10 * time.Second
	cpu0, t0 := cpuTime(), time.Now()
	sent := 0
	for time.Since(t0) < steady {
		for float64(sent) < time.Since(t0).Seconds()*perSecond {
			k := rng.IntN(int(nanos))
			owner := reals[k%realN].ID()
			if k < simulated {
				owner = sims[k]
			}
			if err := master.PutResource(ctx, dtn.OpUpdate, fmt.Sprint("u", sent), owner, body); err != nil {
				b.Fatal(err)
			}
			sent++
		}
		time.Sleep(10 * time.Millisecond)
	}
	cpu := cpuTime() - cpu0
	wall := time.Since(t0)
	runtime.GC()
	debug.FreeOSMemory()
	rss1 := rssBytes(b)

	// Restart: the master goes down, work for every real nano is queued,
	// the master comes back and drains through its pool.
	master.Node.Close()
	const owed = 50
	applied0 := uint64(0)
	for _, r := range reals {
		applied0 += r.Metrics.Get("deliveries_applied")
		var changes []ResourceChange
		for k := range owed {
			changes = append(changes, ResourceChange{Op: dtn.OpCreate, ID: fmt.Sprint("after-restart-", k), Owner: r.ID(), Body: body})
		}
		err := master.store.Update(ctx, func(tx *dtn.Tx) error {
			for _, c := range changes {
				m := Mutation{Op: uint8(c.Op), Resource: c.ID, Owner: []byte(c.Owner), Body: c.Body}
				payload, err := tn.codec.Marshal(&m)
				if err != nil {
					return err
				}
				if _, _, err := tx.Enqueue(dtn.Entry{Dest: string(r.ID()), Protocol: ProtoResource, ResourceID: c.ID,
					Op: c.Op, Payload: payload, Level: dtn.Critical}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	path := master.store.Path()
	master.store.Close()
	restart := time.Now()
	st, err := dtn.Open(path, master.ks, master.storeOpts)
	if err != nil {
		b.Fatal(err)
	}
	master.store = st
	master.opts.Store = st
	master.start(b)
	eventually(b, "every real nano drained", 5*time.Minute, func() bool {
		var got uint64
		for _, r := range reals {
			got += r.Metrics.Get("deliveries_applied")
		}
		return got >= applied0+uint64(realN*owed)
	})
	drain := time.Since(restart)
	master.deliveryMu.Lock()
	peak := master.peakDrains
	master.deliveryMu.Unlock()
	if peak > master.o.MaxDrains {
		b.Fatalf("%d drains at once, pool bound %d", peak, master.o.MaxDrains)
	}
	for b.Loop() {
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(rss1-rss0)/(1<<20)/(nanos/1000), "ground_rss_mib_per_1k_nanos")
	b.ReportMetric(float64(cpu.Milliseconds())/wall.Seconds()/(nanos/1000), "ground_cpu_ms_per_s_per_1k_nanos")
	b.ReportMetric(drain.Seconds(), "ground_restart_drain_s")
	b.ReportMetric(float64(realN), "ground_real_nanos")
	b.ReportMetric(float64(peak), "ground_peak_drains")
}
