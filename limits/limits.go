// Package limits holds what one gardend host lets its peers make it spend:
// go-libp2p's resource manager (connections, streams per peer and per
// protocol, memory) with limits sized for a nano or for a ground station,
// yamux's incoming-stream cap per connection, the ground's connection
// manager watermarks, and counters of what the resource manager refused.
// The PSK keeps strangers out; these keep a member that holds the PSK from
// exhausting a board (2000 stalled streams took a nano from 34 to 168 MiB
// before them). Which protocols get which caps is the caller's knowledge
// (node/), passed in.
package limits

import (
	"math"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/x/rate"
)

// Config is what one host allows its peers.
type Config struct {
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

// PerProtocol are limits for named protocols: per peer (ProtocolPeer) and
// for the whole host (Protocol).
type PerProtocol struct {
	PerPeer map[protocol.ID]rcmgr.ResourceLimits
	Total   map[protocol.ID]rcmgr.ResourceLimits
}

const mib = 1 << 20

// Nano returns the limits of a nano: it talks to its master and a few
// indexers (its gater refuses anyone else), one connection each, a few
// streams per connection.
func Nano(pp PerProtocol) Config {
	cfg := rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{Conns: 24, ConnsInbound: 8, ConnsOutbound: 16,
			Streams: 256, StreamsInbound: 128, StreamsOutbound: 128, FD: 64, Memory: 24 * mib},
		Transient: rcmgr.ResourceLimits{Conns: 8, ConnsInbound: 4, ConnsOutbound: 8,
			Streams: 32, StreamsInbound: 16, StreamsOutbound: 16, FD: 16, Memory: 4 * mib},
		PeerDefault: rcmgr.ResourceLimits{Conns: 4, ConnsInbound: 4, ConnsOutbound: 4,
			Streams: 64, StreamsInbound: 32, StreamsOutbound: 32, FD: 4, Memory: 16 * mib},
		ProtocolDefault:     rcmgr.ResourceLimits{Streams: 128, StreamsInbound: 64, StreamsOutbound: 64, Memory: 16 * mib},
		ProtocolPeerDefault: rcmgr.ResourceLimits{Streams: 16, StreamsInbound: 8, StreamsOutbound: 16, Memory: 8 * mib},
		ProtocolPeer:        pp.PerPeer,
		Protocol:            pp.Total,
		Conn:                rcmgr.ResourceLimits{Memory: 16 * mib},
		Stream:              rcmgr.ResourceLimits{Memory: 16 * mib},
	}
	return Config{Resources: cfg.Build(base()), StreamsPerConn: 32}
}

// Ground returns the limits of a master or indexer serving fleet peers at
// once (nanos plus heartbeat sessions): connections and streams scale with
// the fleet; memory reserved for frames in flight and yamux windows does
// not.
func Ground(fleet int, pp PerProtocol) Config {
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
		ProtocolPeer:        pp.PerPeer,
		Protocol:            pp.Total,
		Conn:                rcmgr.ResourceLimits{Memory: 16 * mib},
		Stream:              rcmgr.ResourceLimits{Memory: 16 * mib},
	}
	return Config{Ground: true, Resources: cfg.Build(base()), StreamsPerConn: 128,
		ConnsLow: conns * 3 / 4, ConnsHigh: conns * 7 / 8}
}

// base fills whatever a role leaves unset: go-libp2p's defaults scaled to a
// fixed 1 GiB and 1024 descriptors, so limits do not change with the
// machine a test happens to run on.
func base() rcmgr.ConcreteLimitConfig { return rcmgr.DefaultLimits.Scale(1<<30, 1024) }

// NewResourceManager builds the resource manager for c, counting its
// refusals in r. go-libp2p's per-IP connection limits and rate limits are
// lifted: nanos reach the ground through stations and NATs that share one
// address, peers are judged by identity (the gater, the per-peer limits),
// and a nano killed and restarted many times in a pass must get back in at
// once.
//
// The refusals come through the manager's metrics hooks, not its trace: a
// trace reporter turns on a trace of every reservation and release, in
// every scope, each stamped with a formatted time under one lock, on the
// path of every stream and buffer; the hooks are plain calls.
func NewResourceManager(c Config, r *Refusals) (network.ResourceManager, error) {
	return rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(c.Resources),
		rcmgr.WithMetricsDisabled(), // go-libp2p's Prometheus collectors, not ours
		rcmgr.WithMetrics(r),
		rcmgr.WithLimitPerSubnet(
			[]rcmgr.ConnLimitPerSubnet{{PrefixLength: 0, ConnCount: math.MaxInt}},
			[]rcmgr.ConnLimitPerSubnet{{PrefixLength: 0, ConnCount: math.MaxInt}}),
		rcmgr.WithConnRateLimiters(&rate.Limiter{}))
}

// Refusals counts what the resource manager refused, by kind: a stream
// refused when it opens or when it names its protocol or service, a
// connection refused when it opens or when it is attached to its peer, and
// a memory reservation.
type Refusals struct {
	Streams, Conns, Memory atomic.Uint64
}

var _ rcmgr.MetricsReporter = (*Refusals)(nil)

func (l *Refusals) BlockConn(network.Direction, bool)      { l.Conns.Add(1) }
func (l *Refusals) BlockPeer(peer.ID)                      { l.Conns.Add(1) }
func (l *Refusals) BlockStream(peer.ID, network.Direction) { l.Streams.Add(1) }
func (l *Refusals) BlockProtocol(protocol.ID)              { l.Streams.Add(1) }
func (l *Refusals) BlockProtocolPeer(protocol.ID, peer.ID) { l.Streams.Add(1) }
func (l *Refusals) BlockService(string)                    { l.Streams.Add(1) }
func (l *Refusals) BlockServicePeer(string, peer.ID)       { l.Streams.Add(1) }
func (l *Refusals) BlockMemory(int)                        { l.Memory.Add(1) }
func (l *Refusals) AllowConn(network.Direction, bool)      {}
func (l *Refusals) AllowPeer(peer.ID)                      {}
func (l *Refusals) AllowStream(peer.ID, network.Direction) {}
func (l *Refusals) AllowProtocol(protocol.ID)              {}
func (l *Refusals) AllowService(string)                    {}
func (l *Refusals) AllowMemory(int)                        {}
