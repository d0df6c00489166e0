package relay

import (
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/codec"
	"gardend/dtn"
	"gardend/node"
	"gardend/origin"
)

// Protocol carries envelopes hop by hop: nano → station → master, master
// → station → nano, and a station's returns to its master. Each hop is a
// node Carrier delivery: applied (stored) durably before it is
// acknowledged.
const Protocol = node.ProtocolPrefix + "/relay/1"

// Register lets envelopes travel on Protocol; called on the registry
// before the codec is built.
func Register(r *codec.Registry) error {
	if err := node.RegisterCarrier(r, Protocol); err != nil {
		return err
	}
	return node.RegisterCarrier(r, ReceiptProtocol)
}

// Policy adds the relay's protocol to a store policy. Envelopes are queued
// with their inner entry's level; this is the level of one queued without
// (never done here).
func Policy(p dtn.Policy) dtn.Policy {
	return p.With(map[string]dtn.Level{Protocol: dtn.Critical, ReceiptProtocol: dtn.Critical})
}

// Envelope is one entry crossing stations: the entry as its origin queued
// it (its ID is the origin's, the key its destination applies it once by),
// the origin's end-to-end attestation over it, and routing metadata that no
// one signs because no one needs to trust it.
type Envelope struct {
	Origin   []byte             `cbor:"1,keyasint"`
	Dest     []byte             `cbor:"2,keyasint"`
	ID       uint64             `cbor:"3,keyasint"`
	Protocol string             `cbor:"4,keyasint"`
	Op       uint8              `cbor:"5,keyasint,omitempty"`
	Resource string             `cbor:"6,keyasint,omitempty"`
	Level    uint8              `cbor:"7,keyasint"`
	Payload  []byte             `cbor:"8,keyasint,omitempty"`
	Att      origin.Attestation `cbor:"9,keyasint"`
	// DeliverBy (Unix ms, downlink only): the end of the window the master
	// handed it over for; a station gives it back after that.
	DeliverBy int64 `cbor:"10,keyasint,omitempty"`
}

// ErrMalformed is an envelope that cannot be read.
var ErrMalformed = errors.New("malformed relay envelope")

// Decode reads an envelope and its peer IDs. It never panics; anything it
// cannot use is ErrMalformed.
func Decode(c *codec.Codec, body []byte) (*Envelope, peer.ID, peer.ID, error) {
	var env Envelope
	if err := c.Unmarshal(body, &env); err != nil {
		return nil, "", "", fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	from, err := peer.IDFromBytes(env.Origin)
	if err != nil {
		return nil, "", "", fmt.Errorf("%w: origin: %v", ErrMalformed, err)
	}
	to, err := peer.IDFromBytes(env.Dest)
	if err != nil {
		return nil, "", "", fmt.Errorf("%w: destination: %v", ErrMalformed, err)
	}
	if env.Protocol == "" || env.Protocol == Protocol || env.Op > uint8(dtn.OpDelete) ||
		env.Level == uint8(dtn.None) || env.Level > uint8(dtn.Critical) {
		return nil, "", "", fmt.Errorf("%w: protocol %q, op %d, level %d", ErrMalformed, env.Protocol, env.Op, env.Level)
	}
	return &env, from, to, nil
}

// signed is what the origin signed.
func (env *Envelope) signed(from, to peer.ID) origin.Entry {
	return origin.Entry{Origin: from, Dest: to, ID: env.ID, Protocol: env.Protocol, Op: env.Op,
		ResourceID: env.Resource, Payload: env.Payload}
}

// inner is the entry as its origin queued it.
func (env *Envelope) inner(to peer.ID) dtn.Entry {
	return dtn.Entry{Ref: dtn.Ref{ID: env.ID}, Dest: string(to), Protocol: env.Protocol, ResourceID: env.Resource,
		Op: dtn.Op(env.Op), Payload: env.Payload, Level: dtn.Level(env.Level)}
}

// wrap makes the envelope of an entry this node originated.
func wrap(self peer.ID, e dtn.Entry) *Envelope {
	return &Envelope{Origin: []byte(self), Dest: []byte(e.Dest), ID: e.Ref.ID, Protocol: e.Protocol, Op: uint8(e.Op),
		Resource: e.ResourceID, Level: uint8(e.Level), Payload: e.Payload}
}
