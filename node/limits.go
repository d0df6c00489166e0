package node

// This file chooses what one host may spend on its peers: go-libp2p's
// resource manager (connections, streams per peer and per protocol,
// memory), yamux's incoming-stream cap per connection and, on the ground,
// a connection manager. The PSK keeps strangers out; these limits keep a
// member that holds the PSK from exhausting a board (issue 12: 2000 stalled
// streams took a nano from 34 to 168 MiB before them).

import (
	"math"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/x/rate"
)

// Limits are what one host allows its peers. Build them with LimitsFor.
type Limits struct {
	Ground bool // sized for a master/indexer, else for a nano
	// Resources is the resource manager's configuration.
	Resources rcmgr.ConcreteLimitConfig
	// StreamsPerConn caps the streams a peer may open on one connection
	// (yamux's own cap, before the resource manager is asked).
	StreamsPerConn uint32
	// ConnsLow and ConnsHigh drive the ground's connection manager: past
	// High it closes the least useful unprotected connections down to Low.
	// Zero on a nano, which never has more than a handful.
	ConnsLow, ConnsHigh int
}

// Frame limits per protocol: a message that can never be large is refused
// from its length prefix. A signed record with many addresses is under
// 2 KiB; a wake is a timestamp. Heartbeats, resources and bookings keep the
// codec's limit (a master's heartbeat lists every nano it owes something).
const (
	maxRecordFrame = 8 << 10
	maxWakeFrame   = 512
)

// frameLimit is the largest frame a handler of proto reads (0: the codec's).
func frameLimit(proto string) int {
	switch proto {
	case ProtoRecordPublish, ProtoRecordDelete, ProtoRecordGet:
		return maxRecordFrame
	case ProtoWake:
		return maxWakeFrame
	}
	return 0
}

// LimitsFor returns the limits of a host holding roles. fleet is how many
// peers a ground host expects at once (its nanos plus heartbeat sessions);
// the ground's connection and stream limits grow with it, its memory
// budget does not.
func LimitsFor(roles Roles, fleet int) Limits {
	if !roles.Has(RoleMaster) && !roles.Has(RoleIndexer) {
		return nanoLimits()
	}
	return groundLimits(fleet)
}

// A nano talks to its master and a few indexers (its gater refuses anyone
// else), one connection each, a few streams per connection.
func nanoLimits() Limits {
	const mib = 1 << 20
	cfg := rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{Conns: 24, ConnsInbound: 8, ConnsOutbound: 16,
			Streams: 256, StreamsInbound: 128, StreamsOutbound: 128, FD: 64, Memory: 24 * mib},
		Transient: rcmgr.ResourceLimits{Conns: 8, ConnsInbound: 4, ConnsOutbound: 8,
			Streams: 32, StreamsInbound: 16, StreamsOutbound: 16, FD: 16, Memory: 4 * mib},
		PeerDefault: rcmgr.ResourceLimits{Conns: 4, ConnsInbound: 4, ConnsOutbound: 4,
			Streams: 64, StreamsInbound: 32, StreamsOutbound: 32, FD: 4, Memory: 16 * mib},
		ProtocolDefault:     rcmgr.ResourceLimits{Streams: 128, StreamsInbound: 64, StreamsOutbound: 64, Memory: 16 * mib},
		ProtocolPeerDefault: rcmgr.ResourceLimits{Streams: 16, StreamsInbound: 8, StreamsOutbound: 16, Memory: 8 * mib},
		ProtocolPeer:        perPeerProtocolLimits(),
		Conn:                rcmgr.ResourceLimits{Memory: 16 * mib},
		Stream:              rcmgr.ResourceLimits{Memory: 16 * mib},
	}
	return Limits{Resources: cfg.Build(baseLimits()), StreamsPerConn: 32}
}

// The ground serves a fleet: connections and streams scale with it; memory
// reserved for frames in flight and yamux windows does not.
func groundLimits(fleet int) Limits {
	const mib = 1 << 20
	conns := max(1024, 2*fleet)
	lim := func(n int) rcmgr.LimitVal { return rcmgr.LimitVal(n) }
	cfg := rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{Conns: lim(conns + 256), ConnsInbound: lim(conns), ConnsOutbound: lim(conns),
			Streams: lim(8 * conns), StreamsInbound: lim(4 * conns), StreamsOutbound: lim(4 * conns),
			FD: lim(conns + 256), Memory: 128 * mib},
		Transient: rcmgr.ResourceLimits{Conns: 256, ConnsInbound: 256, ConnsOutbound: 256,
			Streams: 1024, StreamsInbound: 1024, StreamsOutbound: 1024, FD: 256, Memory: 16 * mib},
		PeerDefault: rcmgr.ResourceLimits{Conns: 8, ConnsInbound: 4, ConnsOutbound: 4,
			Streams: 64, StreamsInbound: 32, StreamsOutbound: 32, FD: 8, Memory: 16 * mib},
		ProtocolDefault: rcmgr.ResourceLimits{Streams: lim(8 * conns), StreamsInbound: lim(4 * conns),
			StreamsOutbound: lim(4 * conns), Memory: 64 * mib},
		ProtocolPeerDefault: rcmgr.ResourceLimits{Streams: 16, StreamsInbound: 8, StreamsOutbound: 16, Memory: 8 * mib},
		ProtocolPeer:        perPeerProtocolLimits(),
		// Kademlia reads whole messages of up to 4 MiB into buffers it
		// allocates from the announced length: few at once.
		Protocol: map[protocol.ID]rcmgr.ResourceLimits{
			DHTPrefix + "/kad/1.0.0": {Streams: 256, StreamsInbound: 16, StreamsOutbound: 240, Memory: 64 * mib},
		},
		Conn:   rcmgr.ResourceLimits{Memory: 16 * mib},
		Stream: rcmgr.ResourceLimits{Memory: 16 * mib},
	}
	return Limits{Ground: true, Resources: cfg.Build(baseLimits()), StreamsPerConn: 128,
		ConnsLow: conns * 3 / 4, ConnsHigh: conns * 7 / 8}
}

// perPeerProtocolLimits bounds what one peer may hold open per protocol on
// a host: idle heartbeat sessions above all (an indexer keeps one open
// between beats, so a peer that opens many would otherwise park them).
func perPeerProtocolLimits() map[protocol.ID]rcmgr.ResourceLimits {
	return map[protocol.ID]rcmgr.ResourceLimits{
		ProtoHeartbeat:           {Streams: 4, StreamsInbound: 2, StreamsOutbound: 2},
		ProtoRecordPublish:       {Streams: 4, StreamsInbound: 2, StreamsOutbound: 2},
		ProtoRecordDelete:        {Streams: 4, StreamsInbound: 2, StreamsOutbound: 2},
		ProtoRecordGet:           {Streams: 8, StreamsInbound: 4, StreamsOutbound: 4},
		ProtoResource:            {Streams: 8, StreamsInbound: 4, StreamsOutbound: 4},
		ProtoBooking:             {Streams: 8, StreamsInbound: 4, StreamsOutbound: 4},
		ProtoWake:                {Streams: 4, StreamsInbound: 2, StreamsOutbound: 2},
		DHTPrefix + "/kad/1.0.0": {Streams: 16, StreamsInbound: 4, StreamsOutbound: 12},
	}
}

// baseLimits fills whatever a role leaves unset: go-libp2p's defaults
// scaled to a fixed 1 GiB and 1024 descriptors, so limits do not change
// with the machine a test happens to run on.
func baseLimits() rcmgr.ConcreteLimitConfig {
	return rcmgr.DefaultLimits.Scale(1<<30, 1024)
}

// newResourceManager builds the resource manager for lim. go-libp2p's
// per-IP connection limits and rate limits are lifted: nanos reach the
// ground through stations and NATs that share one address, peers are
// judged by identity (the gater, the per-peer limits), and a nano killed
// and restarted many times in a pass must get back in at once.
func newResourceManager(lim Limits, refusals *limitRefusals) (network.ResourceManager, error) {
	return rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(lim.Resources),
		rcmgr.WithMetricsDisabled(),
		rcmgr.WithTraceReporter(refusals),
		rcmgr.WithLimitPerSubnet(
			[]rcmgr.ConnLimitPerSubnet{{PrefixLength: 0, ConnCount: math.MaxInt}},
			[]rcmgr.ConnLimitPerSubnet{{PrefixLength: 0, ConnCount: math.MaxInt}}),
		rcmgr.WithConnRateLimiters(&rate.Limiter{}))
}

// limitRefusals counts what the resource manager refused, by kind. It is
// told every event synchronously, so it only counts.
type limitRefusals struct {
	streams, conns, memory atomic.Uint64
}

func (l *limitRefusals) ConsumeEvent(ev rcmgr.TraceEvt) {
	switch ev.Type {
	case rcmgr.TraceBlockAddStreamEvt:
		l.streams.Add(1)
	case rcmgr.TraceBlockAddConnEvt:
		l.conns.Add(1)
	case rcmgr.TraceBlockReserveMemoryEvt:
		l.memory.Add(1)
	}
}

// Refusals returns what this host refused to its peers, by reason: the
// gater's (blacklisted, not admitted) and the resource manager's (streams,
// connections, memory over a limit).
func (h *Host) Refusals() map[string]uint64 {
	return map[string]uint64{
		"refused_conn_blocked":  h.Gater.RefusedBlocked.Load(),
		"refused_conn_stranger": h.Gater.RefusedStranger.Load(),
		"limit_refused_streams": h.refusals.streams.Load(),
		"limit_refused_conns":   h.refusals.conns.Load(),
		"limit_refused_memory":  h.refusals.memory.Load(),
	}
}
