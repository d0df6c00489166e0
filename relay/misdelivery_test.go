package relay

import (
	"errors"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/dtn"
	"gardend/node"
	"gardend/origin"
)

// TestMisdeliveredEntryRefusedAsRoute: a station that hands a genuine entry
// to a peer it was not meant for is refused on the route (the envelope's
// origin and destination against the hop, before any signature check); one
// that rewrites the destination to pass that check breaks the signature.
// The signature's own wrong_origin/wrong_dest never come up on this path.
func TestMisdeliveredEntryRefusedAsRoute(t *testing.T) {
	x := newTwoStations(t)
	other := x.f.member("other-nano", node.RoleNano, "") // a nano of another master
	mut, err := x.f.codec.Marshal(&node.Mutation{Resource: "r1", Op: uint8(dtn.OpCreate), Body: []byte("not for you")})
	if err != nil {
		t.Fatal(err)
	}
	envelope := func(signer *member, from, signedTo, dest peer.ID) []byte {
		env := &Envelope{Origin: []byte(from), Dest: []byte(signedTo), ID: 9, Protocol: node.ProtoResource,
			Op: uint8(dtn.OpCreate), Resource: "r1", Level: uint8(dtn.Critical), Payload: mut}
		atts, err := origin.SignEntries(signer.KS, signer.KS.PublicKey(), []origin.Entry{env.signed(from, signedTo)})
		if err != nil {
			t.Fatal(err)
		}
		env.Att, env.Dest = atts[0], []byte(dest)
		b, err := x.f.codec.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var refusal *node.Refusal
	for _, c := range []struct {
		what   string
		body   []byte
		reason string
	}{
		{"the nano's own entry for its master, handed back to it", envelope(x.n, x.n.id(), x.master.id(), x.master.id()), "route"},
		{"the master's entry for another peer", envelope(x.master, x.master.id(), other.id(), other.id()), "route"},
		{"the master's entry for another peer, its destination rewritten", envelope(x.master, x.master.id(), other.id(), x.n.id()), "signature_bad_signature"},
	} {
		before := x.n.relay.Counts()["relay_refused_"+c.reason]
		if _, err := x.n.relay.prepare(node.Delivery{From: x.s1.id(), ID: 1, Body: c.body}); !errors.As(err, &refusal) {
			t.Fatalf("%s: not refused: %v", c.what, err)
		}
		if got := x.n.relay.Counts()["relay_refused_"+c.reason]; got != before+1 {
			t.Fatalf("%s: not counted as relay_refused_%s: %v", c.what, c.reason, x.n.relay.Counts())
		}
	}
	for k := range x.n.relay.Counts() {
		if k == "relay_refused_signature_wrong_dest" || k == "relay_refused_signature_wrong_origin" {
			t.Fatalf("%s counted: %v", k, x.n.relay.Counts())
		}
	}
}
