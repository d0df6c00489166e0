package relay

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"

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
