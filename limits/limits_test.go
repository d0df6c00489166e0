package limits

import (
	"testing"

	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
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

func TestRefusalsCountBlocksOnly(t *testing.T) {
	var r Refusals
	for _, typ := range []rcmgr.TraceEvtTyp{rcmgr.TraceBlockAddStreamEvt, rcmgr.TraceBlockAddStreamEvt,
		rcmgr.TraceBlockAddConnEvt, rcmgr.TraceBlockReserveMemoryEvt, rcmgr.TraceAddStreamEvt, rcmgr.TraceReserveMemoryEvt} {
		r.ConsumeEvent(rcmgr.TraceEvt{Type: typ})
	}
	if r.Streams.Load() != 2 || r.Conns.Load() != 1 || r.Memory.Load() != 1 {
		t.Fatalf("streams %d conns %d memory %d", r.Streams.Load(), r.Conns.Load(), r.Memory.Load())
	}
}
