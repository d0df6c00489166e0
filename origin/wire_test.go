package origin

import (
	"bytes"
	"errors"
	"testing"

	"gardend/codec"
)

// An attestation goes through the codec and back unchanged, still verifies,
// and costs what the README says on the wire.
func TestWireRoundTripAndSize(t *testing.T) {
	c := testCodec(t)
	ks, id := softKeystore(t)
	dest := newPeer(t)
	// Largest encoding per entry for each batch size (README figures).
	want := map[int]int{1: 70, 8: 172, 64: 276}
	for _, n := range []int{1, 8, 64} {
		es := testEntries(id, dest, n)
		atts, err := SignBatch(ks, ks.PublicKey(), digestsOf(es))
		if err != nil {
			t.Fatal(err)
		}
		largest := 0
		for i, a := range atts {
			raw, err := Encode(c, a)
			if err != nil {
				t.Fatal(err)
			}
			largest = max(largest, len(raw))
			back, err := Decode(c, raw)
			if err != nil {
				t.Fatalf("n=%d leaf %d: decode: %v", n, i, err)
			}
			if back.Index != a.Index || back.Size != a.Size || !bytes.Equal(back.Signature, a.Signature) || len(back.Path) != len(a.Path) {
				t.Fatalf("n=%d leaf %d: round trip changed %+v into %+v", n, i, a, back)
			}
			if err := VerifyEntry(id, dest, es[i], back); err != nil {
				t.Fatalf("n=%d leaf %d after the wire: %v", n, i, err)
			}
			again, err := Encode(c, back)
			if err != nil || !bytes.Equal(again, raw) {
				t.Fatalf("n=%d leaf %d: re-encoding differs (%v)", n, i, err)
			}
		}
		if largest != want[n] {
			t.Fatalf("batch of %d: largest attestation %d bytes, README says %d", n, largest, want[n])
		}
		t.Logf("batch of %d: at most %d bytes of attestation per entry", n, largest)
	}
}

func TestDecodeRejects(t *testing.T) {
	c := testCodec(t)
	ks, _ := softKeystore(t)
	atts, err := SignBatch(ks, ks.PublicKey(), [][32]byte{{1}, {2}, {3}})
	if err != nil {
		t.Fatal(err)
	}
	good, err := Encode(c, atts[2])
	if err != nil {
		t.Fatal(err)
	}
	long := atts[0]
	long.Path = make([][]byte, MaxPath+1)
	for i := range long.Path {
		long.Path[i] = make([]byte, 32)
	}
	encode := func(v any) []byte {
		b, err := c.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	sig := atts[0].Signature
	cases := map[string][]byte{
		"empty":            nil,
		"not CBOR":         []byte{0xff, 0x00},
		"trailing byte":    append(bytes.Clone(good), 0x00),
		"truncated":        good[:len(good)-1],
		"three fields":     encode([]any{sig, 0, 3}),
		"five fields":      encode([]any{sig, 0, 3, [][]byte{}, 1}),
		"a map":            encode(map[int]any{1: sig, 2: 0, 3: 3}),
		"negative index":   encode([]any{sig, -1, 3, [][]byte{}}),
		"index as string":  encode([]any{sig, "0", 3, [][]byte{}}),
		"path of strings":  encode([]any{sig, 0, 3, []string{"a"}}),
		"path over bound":  encode(long),
		"31-byte hash":     encode([]any{sig, 0, 2, [][]byte{make([]byte, 31)}}),
		"33-byte hash":     encode([]any{sig, 0, 2, [][]byte{make([]byte, 33)}}),
		"63-byte sig":      encode([]any{sig[:63], 0, 1, [][]byte{}}),
		"index = size":     encode([]any{sig, 3, 3, [][]byte{}}),
		"size 0":           encode([]any{sig, 0, 0, [][]byte{}}),
		"index over 2^64":  append([]byte{0x84, 0x58, 0x40}, append(bytes.Clone(sig), 0xc2, 0x49, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0x03, 0x80)...),
		"indefinite array": append([]byte{0x9f, 0x58, 0x40}, append(bytes.Clone(sig), 0x00, 0x03, 0x80, 0xff)...),
	}
	for name, raw := range cases {
		_, err := Decode(c, raw)
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("%s: got %v, want ErrMalformed", name, err)
		}
	}
	// The codec's own kind stays visible for its rejection counters.
	if _, err := Decode(c, []byte{0xff}); codec.Reason(err) == "other" {
		t.Fatalf("codec kind lost: %v", err)
	}
}
