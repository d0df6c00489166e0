package node

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/dtn"
)

// BenchmarkE2EDelivery measures resources enqueued on a nano and applied at
// its master, over loopback: durable enqueue, pipelined delivery, durable
// apply with its once-only record, durable ack.
func BenchmarkE2EDelivery(b *testing.B) {
	tn := newTestNet(b)
	master := tn.peerOf("master", RoleMaster)
	nano := tn.peerOf("nano", RoleNano)
	master.opts.Nanos = []peer.AddrInfo{nano.info()}
	nano.opts.Master = master.info()
	master.start(b)
	nano.start(b)
	ctx := context.Background()
	eventually(b, "nano connected", 10*time.Second, func() bool { return nano.Connected(master.ID()) })
	body := make([]byte, 300)
	// Warm up: one delivery opens the path.
	if err := nano.PutResource(ctx, dtn.OpCreate, "warm-up", nano.ID(), body); err != nil {
		b.Fatal(err)
	}
	eventually(b, "warm-up delivered", 10*time.Second, func() bool { return master.Metrics.Get("deliveries_applied") == 1 })
	const batch = 500 // per iteration: a backlog, as after a gap
	var elapsed time.Duration
	done := uint64(1)
	for i := range b.N {
		start := time.Now()
		for k := range batch {
			if err := nano.PutResource(ctx, dtn.OpCreate, fmt.Sprint("r", i, "-", k), nano.ID(), body); err != nil {
				b.Fatal(err)
			}
		}
		done += batch
		eventually(b, "all applied at the master", time.Minute, func() bool {
			return master.Metrics.Get("deliveries_applied") >= done
		})
		elapsed += time.Since(start)
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(b.N*batch)/elapsed.Seconds(), "e2e_delivered_per_s")
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
// the mutation applied (durably) at the master.
func BenchmarkDeliveryLatency(b *testing.B) {
	tn := newTestNet(b)
	master := tn.peerOf("master", RoleMaster)
	nano := tn.peerOf("nano", RoleNano)
	applied := make(chan string, 1)
	master.opts.OnApplied = func(_ peer.ID, _, id string) { applied <- id }
	master.opts.Nanos = []peer.AddrInfo{nano.info()}
	nano.opts.Master = master.info()
	master.start(b)
	nano.start(b)
	ctx := context.Background()
	eventually(b, "nano connected", 10*time.Second, func() bool { return nano.Connected(master.ID()) })
	wait := func(id string) {
		select {
		case got := <-applied:
			if got != id {
				b.Fatalf("applied %s, want %s", got, id)
			}
		case <-time.After(30 * time.Second):
			b.Fatalf("%s never applied", id)
		}
	}
	body := make([]byte, 300)
	if err := nano.PutResource(ctx, dtn.OpCreate, "warm-up", nano.ID(), body); err != nil {
		b.Fatal(err)
	}
	wait("warm-up")
	var lat []time.Duration
	i := 0
	for b.Loop() {
		id := fmt.Sprint("r", i)
		i++
		time.Sleep(5 * time.Millisecond) // idle: the previous delivery's acks are home
		start := time.Now()
		if err := nano.PutResource(ctx, dtn.OpCreate, id, nano.ID(), body); err != nil {
			b.Fatal(err)
		}
		wait(id)
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	q := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(q(0.50), "delivery_latency_p50_ms")
	b.ReportMetric(q(0.99), "delivery_latency_p99_ms")
}
