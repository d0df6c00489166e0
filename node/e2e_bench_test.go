package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/sys/unix"

	"gardend/dtn"
)

// connectedPair starts a master and one nano on loopback and waits for
// the warm-up delivery, so the path is open.
func connectedPair(b *testing.B) (master, nano *tnode) {
	tn := newTestNet(b)
	master = tn.peerOf("master", RoleMaster)
	nano = tn.peerOf("nano", RoleNano)
	master.opts.Nanos = []peer.AddrInfo{nano.info()}
	nano.opts.Master = master.info()
	master.start(b)
	nano.start(b)
	eventually(b, "nano connected", 10*time.Second, func() bool { return nano.Connected(master.ID()) })
	if err := nano.PutResource(context.Background(), dtn.OpCreate, "warm-up", nano.ID(), make([]byte, 300)); err != nil {
		b.Fatal(err)
	}
	eventually(b, "warm-up delivered", 10*time.Second, func() bool { return master.Metrics.Get("deliveries_applied") == 1 })
	return master, nano
}

func commits(xs ...*tnode) uint64 {
	var n uint64
	for _, x := range xs {
		n += x.store.Metrics.Commits.Load()
	}
	return n
}

// BenchmarkE2EDelivery measures a backlog as after a gap: resources put on
// a nano while its link is cut (durably, 100 to a transaction), then
// drained over loopback once the link is back: pipelined delivery, durable
// apply with the once-only records, durable deletion of the acked
// entries. Only the drain is timed. e2e_fsyncs_per_entry counts both
// ends' commits during the drain, each two fdatasyncs in bbolt (pages,
// then meta page).
func BenchmarkE2EDelivery(b *testing.B) {
	master, nano := connectedPair(b)
	ctx := context.Background()
	const backlog = 5000
	body := make([]byte, 300)
	var elapsed time.Duration
	var drainCommits uint64
	done := uint64(1)
	for i := range b.N {
		cut(master, nano)
		for k := 0; k < backlog; k += 100 {
			changes := make([]ResourceChange, 0, 100)
			for j := k; j < k+100; j++ {
				changes = append(changes, ResourceChange{Op: dtn.OpCreate, ID: fmt.Sprint("r", i, "-", j), Owner: nano.ID(), Body: body})
			}
			if err := nano.PutResources(ctx, changes); err != nil {
				b.Fatal(err)
			}
		}
		done += backlog
		c0 := commits(master, nano)
		start := time.Now()
		restore(master, nano)
		if err := nano.store.Nudge(ctx, string(master.ID())); err != nil {
			b.Fatal(err)
		}
		eventually(b, "all applied at the master", 2*time.Minute, func() bool {
			return master.Metrics.Get("deliveries_applied") >= done && nano.store.Len("") == 0
		})
		elapsed += time.Since(start)
		drainCommits += commits(master, nano) - c0 - 1 // less the Nudge
	}
	n := float64(b.N * backlog)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(n/elapsed.Seconds(), "e2e_delivered_per_s")
	b.ReportMetric(float64(drainCommits)/n, "e2e_commits_per_entry")
	b.ReportMetric(2*float64(drainCommits)/n, "e2e_fsyncs_per_entry")
}

// BenchmarkE2EDeliveryConcurrent: 64 writers each put resources one at a
// time (each PutResource durable) on a connected nano; timed from the first
// put to the last applied at the master.
func BenchmarkE2EDeliveryConcurrent(b *testing.B) {
	master, nano := connectedPair(b)
	ctx := context.Background()
	const writers, each = 64, 80
	body := make([]byte, 300)
	var elapsed time.Duration
	var total, senderCommits uint64
	done := uint64(1)
	for i := range b.N {
		c0, s0 := commits(master, nano), commits(nano)
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := range each {
					if err := nano.PutResource(ctx, dtn.OpCreate, fmt.Sprint("c", i, "-", w, "-", k), nano.ID(), body); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		done += writers * each
		eventually(b, "all applied at the master", 2*time.Minute, func() bool {
			return master.Metrics.Get("deliveries_applied") >= done && nano.store.Len("") == 0
		})
		elapsed += time.Since(start)
		total += commits(master, nano) - c0
		senderCommits += commits(nano) - s0
	}
	n := float64(b.N * writers * each)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(n/elapsed.Seconds(), "e2e_delivered_per_s_concurrent")
	b.ReportMetric(2*float64(total)/n, "e2e_fsyncs_per_entry_concurrent")
	b.ReportMetric(float64(senderCommits)/n, "e2e_sender_commits_per_entry_concurrent")
}

// BenchmarkHeartbeatOnTheWire reports the bytes of the heartbeats a nano
// really sends (frame included), averaged over a few beats.
func BenchmarkHeartbeatOnTheWire(b *testing.B) {
	tn := newTestNet(b)
	idx := tn.peerOf("idx", RoleIndexer)
	master := tn.peerOf("master", RoleMaster)
	nano := tn.peerOf("nano", RoleNano)
	idx.start(b)
	nano.opts.Master = master.info()
	nano.opts.Indexers = []peer.AddrInfo{idx.info()}
	nano.opts.HeartbeatInterval = 20 * time.Millisecond
	master.start(b)
	// One critical entry pending, so PendingContact is carried.
	nano.start(b)
	nano.host.Gater.Block(master.ID(), "keep the entry pending")
	nano.host.Network().ClosePeer(master.ID())
	nano.PutResource(context.Background(), dtn.OpCreate, "pending", nano.ID(), nil)
	for b.Loop() {
		time.Sleep(time.Millisecond)
	}
	eventually(b, "heartbeats", 10*time.Second, func() bool { return nano.Metrics.Get("heartbeats_sent") >= 10 })
	sent, bytes := nano.Metrics.Get("heartbeats_sent"), nano.Metrics.Get("heartbeat_bytes_sent")
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(bytes)/float64(sent), "heartbeat_bytes_real")
}

// BenchmarkDeliveryLatency measures one resource at a time on an idle,
// connected pair: from the call of a durable PutResource on the nano to
// the mutation applied (durably) at the master. Each round measures twice:
// once as soon as the previous delivery is over (its ack deleted at the
// nano), once after a further 5 ms pause, which on this machine's virtual
// disk and CPUs makes each fdatasync slower (the disk probe below measures
// both ways, side by side).
func BenchmarkDeliveryLatency(b *testing.B) {
	tn := newTestNet(b)
	master := tn.peerOf("master", RoleMaster)
	nano := tn.peerOf("nano", RoleNano)
	type appliedAt struct {
		id string
		at time.Time
	}
	applied := make(chan appliedAt, 1)
	master.opts.OnApplied = func(_ peer.ID, _, id string) { applied <- appliedAt{id, time.Now()} }
	var acked atomic.Int64
	ackSaved := make(chan struct{}, 1)
	nano.opts.afterAckSave = func(n int) {
		acked.Add(int64(n))
		signal(ackSaved)
	}
	master.opts.Nanos = []peer.AddrInfo{nano.info()}
	nano.opts.Master = master.info()
	master.start(b)
	nano.start(b)
	ctx := context.Background()
	eventually(b, "nano connected", 10*time.Second, func() bool { return nano.Connected(master.ID()) })
	body := make([]byte, 300)
	var sent int64
	// deliver puts one resource once the previous one's ack is deleted and
	// returns how long the put took and how long until it was applied.
	deliver := func(id string, pause time.Duration) (put, lat time.Duration) {
		for acked.Load() < sent {
			select {
			case <-ackSaved:
			case <-time.After(30 * time.Second):
				b.Fatalf("ack %d never deleted", sent)
			}
		}
		time.Sleep(pause)
		start := time.Now()
		if err := nano.PutResource(ctx, dtn.OpCreate, id, nano.ID(), body); err != nil {
			b.Fatal(err)
		}
		put = time.Since(start)
		sent++
		select {
		case got := <-applied:
			if got.id != id {
				b.Fatalf("applied %s, want %s", got.id, id)
			}
			return put, got.at.Sub(start)
		case <-time.After(30 * time.Second):
			b.Fatalf("%s never applied", id)
		}
		return
	}
	deliver("warm-up", 0)
	const pause = 5 * time.Millisecond
	var lat, puts, latPaused []time.Duration
	i := 0
	for b.Loop() {
		put, l := deliver(fmt.Sprint("r", i), 0)
		puts, lat = append(puts, put), append(lat, l)
		_, l = deliver(fmt.Sprint("p", i), pause)
		latPaused = append(latPaused, l)
		i++
	}
	q := func(d []time.Duration, p float64) float64 {
		slices.Sort(d)
		return float64(d[min(len(d)-1, int(p*float64(len(d))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(q(lat, 0.50), "delivery_latency_p50_ms")
	b.ReportMetric(q(lat, 0.99), "delivery_latency_p99_ms")
	b.ReportMetric(q(latPaused, 0.50), "delivery_latency_after_pause_p50_ms")
	b.ReportMetric(q(latPaused, 0.99), "delivery_latency_after_pause_p99_ms")
	// The sender's own durable write, part of the above: one commit, what
	// the disk costs (the receiver's apply is another).
	b.ReportMetric(q(puts, 0.50), "delivery_latency_put_p50_ms")
	// Two bbolt commits lie on the path (the put, the apply), each two
	// fdatasyncs: the disk's own figure, measured in the same run, the same
	// two ways, says how much of the latency is the disk's.
	syncs, syncsPaused := diskSyncs(b, 200, pause)
	b.ReportMetric(q(syncs, 0.50), "disk_fdatasync_p50_ms")
	b.ReportMetric(q(syncsPaused, 0.50), "disk_fdatasync_after_pause_p50_ms")
	b.ReportMetric(q(lat, 0.50)/q(syncs, 0.50), "delivery_latency_p50_in_fdatasyncs")
	b.ReportMetric(q(latPaused, 0.50)/q(syncsPaused, 0.50), "delivery_latency_after_pause_p50_in_fdatasyncs")
	b.ReportMetric(float64(nano.Metrics.Get("delivery_streams_opened")), "delivery_streams_opened")
}

// diskSyncs times n 4 KiB writes, each followed by fdatasync, in a file
// beside the test's stores: back to back, and after pause each, interleaved.
func diskSyncs(b *testing.B, n int, pause time.Duration) (direct, paused []time.Duration) {
	f, err := os.Create(filepath.Join(b.TempDir(), "sync-probe"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(1 << 20); err != nil {
		b.Fatal(err)
	}
	page := make([]byte, 4096)
	timed := func(i int) time.Duration {
		start := time.Now()
		if _, err := f.WriteAt(page, int64(i%64)*4096); err != nil {
			b.Fatal(err)
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	for i := range n {
		direct = append(direct, timed(2*i))
		time.Sleep(pause)
		paused = append(paused, timed(2*i+1))
	}
	return direct, paused
}
