package origin

import (
	"errors"
	"testing"
)

// FuzzDecodeVerify feeds arbitrary bytes as an attestation and an arbitrary
// digest to Decode and Verify: they must never panic, fail only with one of
// this package's kinds, and accept nothing the origin did not sign — an
// accepted pair is one of the signed digests at its own index.
func FuzzDecodeVerify(f *testing.F) {
	c := testCodec(f)
	ks, _ := softKeystore(f)
	pub := ks.PublicKey()
	signed := [][32]byte{{1}, {2}, {3}, {4}, {5}}
	atts, err := SignBatch(ks, pub, signed)
	if err != nil {
		f.Fatal(err)
	}
	for i, a := range atts {
		raw, err := Encode(c, a)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw, signed[i][:])
		f.Add(raw, signed[(i+1)%len(signed)][:])
	}
	single, err := SignBatch(ks, pub, signed[:1])
	if err != nil {
		f.Fatal(err)
	}
	raw, _ := Encode(c, single[0])
	f.Add(raw, signed[0][:])
	f.Add([]byte{0x84, 0x40, 0x00, 0x01, 0x80}, make([]byte, 32))
	f.Fuzz(func(t *testing.T, raw, digest []byte) {
		var d [32]byte
		copy(d[:], digest)
		att, err := Decode(c, raw)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("decode failed without ErrMalformed: %v", err)
			}
			return
		}
		err = Verify(pub, d, att)
		if err != nil {
			if Reason(err) == "other" {
				t.Fatalf("untyped verify error: %v", err)
			}
			return
		}
		if att.Size == 5 {
			if att.Index >= 5 || signed[att.Index] != d {
				t.Fatalf("accepted digest %x as leaf %d of the signed batch", d, att.Index)
			}
		} else if att.Size != 1 || d != signed[0] {
			t.Fatalf("accepted digest %x in a tree of %d nobody signed", d, att.Size)
		}
	})
}
