package node

// This file says which of gardend's protocols get which limits; the
// machinery (the resource manager, per role) lives in package limits.

import (
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"

	"gardend/limits"
)

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

// kadProtocol is the Kademlia protocol under gardend's DHT prefix.
const kadProtocol = DHTPrefix + "/kad/1.0.0"

// LimitsFor returns the limits of a host holding roles. fleet is how many
// peers a ground host expects at once (its nanos plus heartbeat sessions).
func LimitsFor(roles Roles, fleet int) limits.Config {
	pp := limits.PerProtocol{PerPeer: perPeerProtocolLimits()}
	if !roles.Has(RoleMaster) && !roles.Has(RoleIndexer) {
		return limits.Nano(pp)
	}
	// Kademlia reads whole messages of up to 4 MiB into buffers it
	// allocates from the announced length: few at once.
	pp.Total = map[protocol.ID]rcmgr.ResourceLimits{
		kadProtocol: {Streams: 256, StreamsInbound: 16, StreamsOutbound: 240, Memory: 64 << 20},
	}
	return limits.Ground(fleet, pp)
}

// perPeerProtocolLimits bounds what one peer may hold open per protocol on
// a host: idle heartbeat sessions above all (an indexer keeps one open
// between beats, so a peer that opens many would otherwise park them).
func perPeerProtocolLimits() map[protocol.ID]rcmgr.ResourceLimits {
	return map[protocol.ID]rcmgr.ResourceLimits{
		ProtoHeartbeat:     {Streams: 4, StreamsInbound: 2, StreamsOutbound: 2},
		ProtoRecordPublish: {Streams: 4, StreamsInbound: 2, StreamsOutbound: 2},
		ProtoRecordDelete:  {Streams: 4, StreamsInbound: 2, StreamsOutbound: 2},
		ProtoRecordGet:     {Streams: 8, StreamsInbound: 4, StreamsOutbound: 4},
		ProtoResource:      {Streams: 8, StreamsInbound: 4, StreamsOutbound: 4},
		ProtoBooking:       {Streams: 8, StreamsInbound: 4, StreamsOutbound: 4},
		ProtoWake:          {Streams: 4, StreamsInbound: 2, StreamsOutbound: 2},
		kadProtocol:        {Streams: 16, StreamsInbound: 4, StreamsOutbound: 12},
	}
}
