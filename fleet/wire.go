package fleet

import (
	"gardend/codec"
	"gardend/dtn"
	"gardend/node"
)

// The fleet's store-and-forward protocols.
const (
	ProtoHealth = node.ProtocolPrefix + "/fleet/health" // nano → master: HealthReport
	ProtoPush   = node.ProtocolPrefix + "/fleet/push"   // master → nano: Push
)

// Register lets the fleet's protocols travel through the codec.
func Register(r *codec.Registry) error {
	for _, p := range []string{ProtoHealth, ProtoPush} {
		if err := node.RegisterCarrier(r, p); err != nil {
			return err
		}
	}
	return nil
}

// Policy adds the fleet's protocols to a store policy: a health report is
// moderate (the next one replaces it anyway), a push critical.
func Policy(p dtn.Policy) dtn.Policy {
	return p.With(map[string]dtn.Level{ProtoHealth: dtn.Moderate, ProtoPush: dtn.Critical})
}

// healthResource is the resource ID of a nano's queued report: one per
// destination, so a newer report replaces the queued one (latest wins).
const healthResource = "health"

// HealthReport is what a nano tells its master about itself. Integer keys
// and omitted zeros keep it near 200 bytes on the wire: it crosses a slow
// link at every pass.
type HealthReport struct {
	Seq              uint64            `cbor:"1,keyasint"`           // increases with every report of this nano, across restarts
	Measured         int64             `cbor:"2,keyasint"`           // on-board Unix time the report was measured
	Version          string            `cbor:"3,keyasint,omitempty"` // software version
	Flavour          string            `cbor:"4,keyasint,omitempty"` // build flavour (static, pkcs11)
	Uptime           uint64            `cbor:"5,keyasint,omitempty"` // seconds
	Boots            uint32            `cbor:"6,keyasint,omitempty"`
	DiskFree         uint64            `cbor:"7,keyasint,omitempty"` // bytes free where the state database lives
	MemFree          uint64            `cbor:"8,keyasint,omitempty"` // bytes available
	Queues           []QueueStat       `cbor:"9,keyasint,omitempty"`
	OldestAge        uint64            `cbor:"10,keyasint,omitempty"` // seconds since the oldest queued entry was made
	Refusals         map[string]uint64 `cbor:"11,keyasint,omitempty"` // refusals and rejections per kind (non-zero only)
	Corrupt          uint64            `cbor:"12,keyasint,omitempty"` // values that failed authentication
	DeliveryFailures uint64            `cbor:"13,keyasint,omitempty"`
	Watchdog         string            `cbor:"14,keyasint,omitempty"` // hardware watchdog: "", "armed", "failed"
	KeyBackend       string            `cbor:"15,keyasint,omitempty"` // software, pkcs11
	InForce          []Version         `cbor:"16,keyasint,omitempty"` // push versions in force per kind
	ElementsEpoch    int64             `cbor:"17,keyasint,omitempty"` // Unix seconds of the elements in force
	TempMilliC       int32             `cbor:"18,keyasint,omitempty"` // hottest thermal zone, m°C
	HasTemp          bool              `cbor:"19,keyasint,omitempty"`
	Refused          *PushRefusal      `cbor:"20,keyasint,omitempty"` // the last push refused, and why
	Name             string            `cbor:"21,keyasint,omitempty"` // the nano's configured name
}

// QueueStat is the queue towards one destination at one level.
type QueueStat struct {
	Dest  []byte    `cbor:"1,keyasint,omitempty"` // peer ID bytes; omitted: the master
	Level dtn.Level `cbor:"2,keyasint"`
	Count uint64    `cbor:"3,keyasint"`
	Bytes uint64    `cbor:"4,keyasint"`
}

// Version is the version of one kind of push in force.
type Version struct {
	Kind    Kind   `cbor:"1,keyasint"`
	Version uint64 `cbor:"2,keyasint"`
}

// PushRefusal says which push a nano refused and why.
type PushRefusal struct {
	Kind    Kind   `cbor:"1,keyasint"`
	Version uint64 `cbor:"2,keyasint"`
	Reason  string `cbor:"3,keyasint"`
}

// Kind is what a push carries.
type Kind uint8

const (
	KindElements Kind = 1 // orbit elements (TLE or OMM): passes are predicted anew
	KindPlan     Kind = 2 // a contact plan (TOML, CSV or ION)
	KindSettings Kind = 3 // a TOML fragment of in-flight settings
)

func (k Kind) String() string {
	switch k {
	case KindElements:
		return "elements"
	case KindPlan:
		return "plan"
	case KindSettings:
		return "settings"
	}
	return "unknown"
}

// ParseKind reads a kind name.
func ParseKind(s string) (Kind, bool) {
	for _, k := range []Kind{KindElements, KindPlan, KindSettings} {
		if k.String() == s {
			return k, true
		}
	}
	return 0, false
}

// Push is one versioned change for a nano. A newer push of the same kind
// replaces one still queued.
type Push struct {
	Kind    Kind   `cbor:"1,keyasint"`
	Version uint64 `cbor:"2,keyasint"`
	Content []byte `cbor:"3,keyasint"`
	Pushed  int64  `cbor:"4,keyasint,omitempty"` // ground Unix time of the push
}
