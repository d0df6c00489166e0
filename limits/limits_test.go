package limits

import (
	"sync/atomic"
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	ma "github.com/multiformats/go-multiaddr"
)

func TestRolesAndScaling(t *testing.T) {
	const proto = protocol.ID("/test/1")
	pp := PerProtocol{PerPeer: map[protocol.ID]rcmgr.ResourceLimits{proto: {StreamsInbound: 2}}}
	nano := Nano(pp)
	if nano.Ground || nano.ConnsHigh != 0 || nano.StreamsPerConn != 32 {
		t.Fatalf("nano: %+v", nano)
	}
	if got := nano.Resources.ToPartialLimitConfig().ProtocolPeer[proto].StreamsInbound; got != 2 {
		t.Fatalf("per-peer protocol cap not applied: %d", got)
	}
	small, big := Ground(10, pp), Ground(10000, pp)
	if !small.Ground || small.ConnsHigh == 0 || small.ConnsLow >= small.ConnsHigh {
		t.Fatalf("ground watermarks: %+v", small)
	}
	sc, bc := small.Resources.ToPartialLimitConfig(), big.Resources.ToPartialLimitConfig()
	if sc.System.ConnsInbound != 1024 || bc.System.ConnsInbound != 20000 {
		t.Fatalf("connections do not scale with the fleet: %d, %d", sc.System.ConnsInbound, bc.System.ConnsInbound)
	}
	if sc.System.Memory != bc.System.Memory {
		t.Fatalf("memory grew with the fleet: %d, %d", sc.System.Memory, bc.System.Memory)
	}
}

// countingManager is NewResourceManager over cfg, with its refusals.
func countingManager(t *testing.T, cfg rcmgr.PartialLimitConfig) (*Refusals, network.ResourceManager) {
	t.Helper()
	r := new(Refusals)
	rm, err := NewResourceManager(Config{Resources: cfg.Build(base())}, r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rm.Close() })
	return r, rm
}

// A real resource manager with room for one connection, one stream and
// 1 MiB: the second connection, the second stream and a larger
// reservation are refused and counted once each; what it allows is not
// counted.
func TestRefusalsCountWhatTheManagerRefuses(t *testing.T) {
	limit := rcmgr.ResourceLimits{ConnsInbound: 1, Conns: 1, FD: 1, StreamsOutbound: 1, Streams: 1, Memory: 1 << 20}
	r, rm := countingManager(t, rcmgr.PartialLimitConfig{System: limit, Transient: limit})

	addr := ma.StringCast("/ip4/127.0.0.1/tcp/4001")
	conn, err := rm.OpenConnection(network.DirInbound, true, addr)
	if err != nil {
		t.Fatal("the first connection:", err)
	}
	defer conn.Done()
	if _, err := rm.OpenConnection(network.DirInbound, true, addr); err == nil {
		t.Fatal("a second connection was allowed")
	}

	p := peer.ID("a peer")
	first, err := rm.OpenStream(p, network.DirOutbound)
	if err != nil {
		t.Fatal("the first stream:", err)
	}
	defer first.Done()
	if err := first.ReserveMemory(2<<20, network.ReservationPriorityAlways); err == nil {
		t.Fatal("a reservation past the limit was allowed")
	}
	// The system has room for one stream: the second is refused at open.
	if _, err := rm.OpenStream(p, network.DirOutbound); err == nil {
		t.Fatal("a second stream was allowed")
	}
	if got := [3]uint64{r.Conns.Load(), r.Streams.Load(), r.Memory.Load()}; got != [3]uint64{1, 1, 1} {
		t.Fatalf("conns, streams, memory refused = %v, want [1 1 1]", got)
	}
}

// A stream refused when it names its protocol counts as a refused stream.
func TestRefusalsCountAStreamRefusedItsProtocol(t *testing.T) {
	const proto = protocol.ID("/test/1")
	cfg := rcmgr.PartialLimitConfig{
		Protocol: map[protocol.ID]rcmgr.ResourceLimits{proto: {StreamsOutbound: 1, Streams: 1}},
	}
	r, rm := countingManager(t, cfg)
	p := peer.ID("a peer")
	var streams []network.StreamManagementScope
	for range 2 {
		s, err := rm.OpenStream(p, network.DirOutbound)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Done()
		streams = append(streams, s)
	}
	if err := streams[0].SetProtocol(proto); err != nil {
		t.Fatal(err)
	}
	if err := streams[1].SetProtocol(proto); err == nil {
		t.Fatal("a second stream of a one-stream protocol was allowed")
	}
	if got := r.Streams.Load(); got != 1 {
		t.Fatalf("streams refused = %d, want 1", got)
	}
}

// traceCounter is how refusals were counted before: a trace reporter,
// which turns go-libp2p's trace of every scope's every event on.
type traceCounter struct{ n atomic.Uint64 }

func (c *traceCounter) ConsumeEvent(ev rcmgr.TraceEvt) {
	if ev.Type == rcmgr.TraceBlockAddStreamEvt {
		c.n.Add(1)
	}
}

// BenchmarkStreamScope is one stream's life in the resource manager, as
// yamux and the host live it: opened, given its protocol, a 16 KiB buffer
// reserved and released, closed. "hooks" is NewResourceManager (refusals
// through the metrics hooks), "trace" the same limits counted through a
// trace reporter, as before.
func BenchmarkStreamScope(b *testing.B) {
	const proto = protocol.ID("/test/1")
	cfg := Ground(1000, PerProtocol{})
	for _, arm := range []string{"hooks", "trace"} {
		b.Run(arm, func(b *testing.B) {
			var rm network.ResourceManager
			var err error
			if arm == "hooks" {
				rm, err = NewResourceManager(cfg, new(Refusals))
			} else {
				rm, err = rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(cfg.Resources),
					rcmgr.WithMetricsDisabled(), rcmgr.WithTraceReporter(new(traceCounter)))
			}
			if err != nil {
				b.Fatal(err)
			}
			defer rm.Close()
			p := peer.ID("a peer")
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					s, err := rm.OpenStream(p, network.DirInbound)
					if err != nil {
						b.Error(err)
						return
					}
					if err := s.SetProtocol(proto); err != nil {
						b.Error(err)
					}
					if err := s.ReserveMemory(16<<10, network.ReservationPriorityAlways); err != nil {
						b.Error(err)
					}
					s.ReleaseMemory(16 << 10)
					s.Done()
				}
			})
		})
	}
}
