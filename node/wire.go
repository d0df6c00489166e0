package node

import "gardend/swim"

// Wire forms of every gardend message. Field numbers are part of the
// protocol: never reuse or renumber one; add new numbers instead. Peer IDs
// travel as their binary multihash, addresses as binary multiaddrs and times
// as Unix seconds, which is what keeps a heartbeat a few hundred bytes on a
// 64 kbit/s link.

// Heartbeat goes from a peer to an indexer on the long-lived heartbeat
// stream. It carries no sender ID: the indexer takes the sender from the
// authenticated connection, never from the message (the seed trusted a
// self-declared peer_id).
type Heartbeat struct {
	Time                 uint64       `cbor:"1,keyasint"`           // sender clock, Unix seconds (informational)
	Name                 string       `cbor:"2,keyasint,omitempty"` // site name
	Record               []byte       `cbor:"3,keyasint,omitempty"` // signed peer record (record.Signed, CBOR), when it changed or the indexer needs it
	Need                 uint8        `cbor:"4,keyasint,omitempty"` // indexers wanted beyond the pool
	Indexers             [][]byte     `cbor:"5,keyasint,omitempty"` // indexers the sender heartbeats to (first heartbeat of a stream)
	Challenges           [][]byte     `cbor:"6,keyasint,omitempty"` // peers whose liveness the sender asks about
	ChallengeKey         []byte       `cbor:"7,keyasint,omitempty"` // record key to fetch from the DHT as a check
	Referent             bool         `cbor:"8,keyasint,omitempty"` // the sender's preferred indexer
	SuspectedIncarnation uint64       `cbor:"9,keyasint,omitempty"` // set when the sender suspects this indexer
	Events               []swim.Event `cbor:"10,keyasint,omitempty"`
	PendingContact       [][]byte     `cbor:"11,keyasint,omitempty"` // peers the sender holds critical DTN entries for
}

// PeerAddrs is a peer and where to reach it.
type PeerAddrs struct {
	_     struct{} `cbor:",toarray"`
	Peer  []byte
	Addrs [][]byte
}

// HeartbeatResponse is the indexer's answer to each heartbeat.
type HeartbeatResponse struct {
	FillRate       float32      `cbor:"1,keyasint"`           // sessions / capacity
	PeerCount      uint32       `cbor:"2,keyasint"`           // heartbeat sessions
	MaxNodes       uint32       `cbor:"3,keyasint"`           // capacity
	BornAt         uint64       `cbor:"4,keyasint"`           // indexer start, Unix seconds: a restart or impostor shows as a change
	Suggestions    []PeerAddrs  `cbor:"5,keyasint,omitempty"` // other indexers
	Incarnation    uint64       `cbor:"6,keyasint,omitempty"`
	Events         []swim.Event `cbor:"7,keyasint,omitempty"`
	PendingCallers []PeerAddrs  `cbor:"8,keyasint,omitempty"`  // peers holding critical messages for the sender: contact them
	RecordError    string       `cbor:"9,keyasint,omitempty"`  // why the embedded record was refused, if it was
	NeedRecord     bool         `cbor:"10,keyasint,omitempty"` // the indexer holds no live record of the sender: send it
}

// RecordPublish asks an indexer to store a signed record or tombstone.
type RecordPublish struct {
	Signed []byte `cbor:"1,keyasint"` // record.Signed, CBOR
}

// RecordGet asks an indexer for a peer's record.
type RecordGet struct {
	Peer []byte `cbor:"1,keyasint"`
}

// RecordResult answers RecordPublish and RecordGet.
type RecordResult struct {
	OK     bool   `cbor:"1,keyasint,omitempty"`
	Error  string `cbor:"2,keyasint,omitempty"`
	Signed []byte `cbor:"3,keyasint,omitempty"` // for RecordGet: the record.Signed found
}

// Mutation changes a resource: create, update or delete (dtn.Op values).
type Mutation struct {
	ID       uint64 `cbor:"1,keyasint"` // sender's DTN entry ID: the receiver applies (sender, ID) once
	Op       uint8  `cbor:"2,keyasint"`
	Resource string `cbor:"3,keyasint"`
	Owner    []byte `cbor:"4,keyasint,omitempty"` // peer that owns the resource; omitted: the nano at this link's end (the only owner either side accepts)
	Body     []byte `cbor:"5,keyasint,omitempty"` // the resource document, opaque to gardend
}

// Booking reserves a resource for a time slot, or cancels a reservation.
type Booking struct {
	ID        uint64 `cbor:"1,keyasint"` // sender's DTN entry ID
	Op        uint8  `cbor:"2,keyasint"` // dtn.OpCreate or dtn.OpDelete (cancel)
	Booking   string `cbor:"3,keyasint"`
	Resource  string `cbor:"4,keyasint"`
	Dest      []byte `cbor:"5,keyasint"` // the peer that owns the resource
	Start     uint64 `cbor:"6,keyasint"` // Unix seconds
	End       uint64 `cbor:"7,keyasint"`
	Requester []byte `cbor:"8,keyasint,omitempty"`
	Proxy     bool   `cbor:"9,keyasint,omitempty"` // taken by the master for an offline nano
}

// Ack statuses.
const (
	AckApplied   uint8 = 0 // applied durably (or had been: a duplicate)
	AckRefused   uint8 = 1 // will never be applied: drop it
	AckMalformed uint8 = 2
)

// Ack answers a Mutation or a Booking once the receiver has applied it
// durably, or refused it for good.
type Ack struct {
	ID     uint64 `cbor:"1,keyasint"`
	Status uint8  `cbor:"2,keyasint,omitempty"`
	Reason string `cbor:"3,keyasint,omitempty"`
}

// Wake tells a peer that the sender is reachable now: the receiver should
// deliver what it holds for the sender (PendingCallers → caller).
type Wake struct {
	Time uint64 `cbor:"1,keyasint"`
}
