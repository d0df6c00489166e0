package node

import (
	"gardend/codec"
	"gardend/dtn"
)

// ProtocolPrefix versions every gardend protocol at once.
const ProtocolPrefix = "/gardend/1"

// Protocol IDs.
const (
	ProtoHeartbeat     = ProtocolPrefix + "/heartbeat"
	ProtoRecordPublish = ProtocolPrefix + "/record/publish"
	ProtoRecordGet     = ProtocolPrefix + "/record/get"
	ProtoRecordDelete  = ProtocolPrefix + "/record/delete"
	ProtoResource      = ProtocolPrefix + "/resource"
	ProtoBooking       = ProtocolPrefix + "/booking"
	ProtoWake          = ProtocolPrefix + "/wake"
	// DHTPrefix is the kad-dht protocol prefix: /gardend/kad/1.0.0.
	DHTPrefix = "/gardend"
)

// Message type numbers on the wire. Never reuse one.
const (
	TypeHeartbeat         codec.Type = 1
	TypeHeartbeatResponse codec.Type = 2
	TypeRecordPublish     codec.Type = 3
	TypeRecordGet         codec.Type = 4
	TypeRecordResult      codec.Type = 5
	TypeMutation          codec.Type = 6
	TypeBooking           codec.Type = 7
	TypeAck               codec.Type = 8
	TypeWake              codec.Type = 9
)

// NewRegistry returns the registry of every gardend message type.
func NewRegistry() (*codec.Registry, error) {
	r := codec.NewRegistry()
	for _, err := range []error{
		codec.Register[Heartbeat](r, TypeHeartbeat, "heartbeat", ProtoHeartbeat),
		codec.Register[HeartbeatResponse](r, TypeHeartbeatResponse, "heartbeat-response", ProtoHeartbeat),
		codec.Register[RecordPublish](r, TypeRecordPublish, "record-publish", ProtoRecordPublish, ProtoRecordDelete),
		codec.Register[RecordGet](r, TypeRecordGet, "record-get", ProtoRecordGet),
		codec.Register[RecordResult](r, TypeRecordResult, "record-result", ProtoRecordPublish, ProtoRecordGet, ProtoRecordDelete),
		codec.Register[Mutation](r, TypeMutation, "mutation", ProtoResource),
		codec.Register[Booking](r, TypeBooking, "booking", ProtoBooking),
		codec.Register[Ack](r, TypeAck, "ack", ProtoResource, ProtoBooking),
		codec.Register[Wake](r, TypeWake, "wake", ProtoWake),
	} {
		if err != nil {
			return nil, err
		}
	}
	return r, nil
}

// DTNPolicy maps gardend's store-and-forward protocols to DTN levels, as the
// seed did: resource mutations and bookings are critical (and anything to a
// nano is, whatever its protocol); there are no moderate protocols yet.
func DTNPolicy() dtn.Policy {
	return dtn.Policy{
		Levels: map[string]dtn.Level{ProtoResource: dtn.Critical, ProtoBooking: dtn.Critical},
	}
}
