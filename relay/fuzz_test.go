package relay

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/dtn"
	"gardend/hsm"
	"gardend/internal/testnet"
	"gardend/node"
	"gardend/origin"
)

// FuzzEnvelope feeds arbitrary bytes to what a relay does with an envelope
// before anything is stored: Decode, then the origin's signature. Neither
// may panic, Decode fails only with ErrMalformed, and nothing but the one
// genuine envelope verifies.
func FuzzEnvelope(f *testing.F) {
	c := testnet.Codec(f, Register)
	ks, _, err := hsm.Create(context.Background(), hsm.KeyRef{File: filepath.Join(f.TempDir(), "id.key")})
	if err != nil {
		f.Fatal(err)
	}
	defer ks.Close()
	key, _ := hsm.NewPrivKey(ks)
	master, _ := key.PeerID()
	other, _, err := hsm.Create(context.Background(), hsm.KeyRef{File: filepath.Join(f.TempDir(), "nano.key")})
	if err != nil {
		f.Fatal(err)
	}
	defer other.Close()
	okey, _ := hsm.NewPrivKey(other)
	nano, _ := okey.PeerID()
	env := &Envelope{Origin: []byte(master), Dest: []byte(nano), ID: 9, Protocol: node.ProtoResource, Op: uint8(dtn.OpCreate),
		Resource: "r", Level: uint8(dtn.Critical), Payload: []byte("body")}
	atts, err := origin.SignEntries(ks, ks.PublicKey(), []origin.Entry{env.signed(master, nano)})
	if err != nil {
		f.Fatal(err)
	}
	env.Att = atts[0]
	genuine, err := c.Marshal(env)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(genuine)
	f.Add(genuine[:len(genuine)/2])
	f.Add([]byte{0xa0})
	f.Add([]byte{0xff})
	f.Fuzz(func(t *testing.T, body []byte) {
		e, from, to, err := Decode(c, body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode failed with %v, not ErrMalformed", err)
			}
			return
		}
		if from != master || to != nano {
			return
		}
		if origin.VerifyEntry(master, nano, e.signed(from, to), e.Att) == nil {
			again, err := c.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			ge, _, _, _ := Decode(c, genuine)
			if e.ID != ge.ID || !bytes.Equal(e.Payload, ge.Payload) || e.Protocol != ge.Protocol || e.Resource != ge.Resource ||
				e.Op != ge.Op || peer.ID(e.Dest) != nano {
				t.Fatalf("a changed envelope verified: %x", again)
			}
		}
	})
}

// FuzzReceipt: a station's receipt decoder never panics and fails only
// with ErrMalformed.
func FuzzReceipt(f *testing.F) {
	c := testnet.Codec(f)
	ok, _ := c.Marshal(&Receipt{Nano: []byte(peer.ID("\x00\x05hello")), IDs: []uint64{1, 2, 3}})
	f.Add(ok)
	f.Add([]byte{0xa2, 0x01, 0x40, 0x02, 0x80})
	f.Fuzz(func(t *testing.T, body []byte) {
		rc, nano, err := DecodeReceipt(c, body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("DecodeReceipt failed with %v", err)
			}
			return
		}
		if len(rc.IDs) == 0 || len(rc.IDs) > maxReceiptIDs || nano == "" {
			t.Fatalf("accepted %+v", rc)
		}
	})
}

// FuzzPrepare feeds arbitrary envelope bodies, handed over by each member
// of a fleet (master, station, nano), to the whole judge of each other
// member's relay — decode, route, signature, then custody or the
// receiver's own judge — on real nodes and stores, and applies what it
// accepts. A refusal is a counted *node.Refusal; whatever is taken into
// custody decodes and verifies again for its next hop; a nano's catalogue
// holds only its own resources.
func FuzzPrepare(f *testing.F) {
	fl := newFleet(f, time.Now())
	type hop struct {
		m *member
		r *Relay
	}
	master := fl.member("master", node.RoleMaster, "")
	station := fl.member("station", node.RoleStation, "")
	nano := fl.member("nano", node.RoleNano, "")
	stations := map[string]peer.ID{"station": station.id()}
	build := func(m *member, o node.Options) hop {
		r := New(Options{Store: m.Store, Codec: fl.codec, Signer: m.KS, Now: fl.clock.Now, Stations: stations})
		o.Name, o.Host, o.Key, o.Store, o.Codec, o.Now = m.name, m.Host, m.Key, m.Store, fl.codec, fl.clock.Now
		o.Carriers = r.Carriers()
		n, err := node.New(o)
		if err != nil {
			f.Fatal(err)
		}
		r.o.Node, r.self, r.role = n, n.ID(), n.Roles() // what Start sets, without its routing loop
		return hop{m, r}
	}
	hops := []hop{
		build(master, node.Options{Roles: node.RoleMaster, Nanos: []peer.AddrInfo{nano.info()}, Stations: []peer.AddrInfo{station.info()}}),
		build(station, node.Options{Roles: node.RoleStation, Master: master.info(), Nanos: []peer.AddrInfo{nano.info()}}),
		build(nano, node.Options{Roles: node.RoleNano, Master: master.info(), Stations: []peer.AddrInfo{station.info()}}),
	}
	envelope := func(from, to *member, id uint64, resource string) []byte {
		body, _ := fl.codec.Marshal(&node.Mutation{Op: uint8(dtn.OpCreate), Resource: resource, Owner: []byte(nano.id()), Body: []byte("doc")})
		env := &Envelope{Origin: []byte(from.id()), Dest: []byte(to.id()), ID: id, Protocol: node.ProtoResource,
			Op: uint8(dtn.OpCreate), Resource: resource, Level: uint8(dtn.Critical), Payload: body}
		atts, err := origin.SignEntries(from.KS, from.KS.PublicKey(), []origin.Entry{env.signed(from.id(), to.id())})
		if err != nil {
			f.Fatal(err)
		}
		env.Att = atts[0]
		b, err := fl.codec.Marshal(env)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	down, up := envelope(master, nano, 1, "down"), envelope(nano, master, 2, "up")
	f.Add(down, byte(1), byte(0)) // the master hands a station its nano's entry
	f.Add(down, byte(2), byte(1)) // the station brings it to the nano
	f.Add(up, byte(1), byte(2))   // the nano hands the station its entry
	f.Add(up, byte(0), byte(1))   // the station brings it to the master
	f.Add(up, byte(2), byte(0))   // the wrong way round
	f.Add(down[:len(down)-3], byte(1), byte(0))
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, body []byte, at, by byte) {
		recv, giver := hops[int(at)%len(hops)], hops[int(by)%len(hops)]
		if recv.m == giver.m {
			return
		}
		refusals := func() (n uint64) {
			for k, v := range recv.r.Counts() {
				if strings.HasPrefix(k, "relay_refused_") {
					n += v
				}
			}
			return n
		}
		before := refusals()
		w, err := recv.r.prepare(node.Delivery{From: giver.m.id(), Body: body, Received: fl.clock.Now()})
		if err != nil {
			var ref *node.Refusal
			if !errors.As(err, &ref) {
				t.Fatalf("untyped refusal %T: %v", err, err)
			}
			if refusals() == before {
				t.Fatalf("refusal not counted: %v", err)
			}
			return
		}
		if err := recv.m.Store.Update(ctx, w.Apply); err != nil {
			t.Fatalf("apply: %v", err)
		}
		w.Applied()
		for _, dest := range []peer.ID{master.id(), nano.id()} {
			queued, err := recv.m.Store.Peek(string(dest), 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range queued {
				env, from, to, err := Decode(fl.codec, e.Payload)
				if err != nil {
					t.Fatalf("custody holds what does not decode: %v", err)
				}
				if err := origin.VerifyEntry(from, to, env.signed(from, to), env.Att); err != nil {
					t.Fatalf("custody holds what does not verify: %v", err)
				}
			}
		}
		if recv.m == nano {
			rs, err := recv.r.o.Node.Catalogue()
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rs {
				if peer.ID(r.Owner) != nano.id() {
					t.Fatalf("nano holds %q owned by %x", r.ID, r.Owner)
				}
			}
		}
	})
}
