package codec

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
)

const (
	protoPing = "/test/ping/1"
	protoPong = "/test/pong/1"
)

type ping struct {
	Seq   uint64            `cbor:"1,keyasint"`
	Note  string            `cbor:"2,keyasint,omitempty"`
	Tags  map[string]uint64 `cbor:"3,keyasint,omitempty"`
	Blobs [][]byte          `cbor:"4,keyasint,omitempty"`
}

type pong struct {
	Seq uint64 `cbor:"1,keyasint"`
}

func newTestCodec(t testing.TB, lim Limits) *Codec {
	t.Helper()
	reg := NewRegistry()
	if err := Register[ping](reg, 1, "ping", protoPing); err != nil {
		t.Fatal(err)
	}
	if err := Register[pong](reg, 2, "pong", protoPong); err != nil {
		t.Fatal(err)
	}
	c, err := New(reg, lim)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRoundTripThroughFrames(t *testing.T) {
	c := newTestCodec(t, DefaultLimits())
	var buf bytes.Buffer
	in := []any{
		&ping{Seq: 1, Note: "hello"},
		ping{Seq: 2, Tags: map[string]uint64{"b": 2, "a": 1}, Blobs: [][]byte{{1, 2, 3}}},
		&ping{Seq: 3},
	}
	for _, m := range in {
		if err := c.WriteMessage(&buf, m); err != nil {
			t.Fatal(err)
		}
	}
	r := c.NewReader(&buf)
	for i := range in {
		got, spec, err := c.ReadMessage(r, protoPing)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if spec.Name != "ping" {
			t.Fatalf("spec = %q", spec.Name)
		}
		if !c.Equal(got, in[i]) {
			t.Fatalf("message %d: got %+v want %+v", i, got, in[i])
		}
	}
	if _, _, err := c.ReadMessage(r, protoPing); !errors.Is(err, io.EOF) {
		t.Fatalf("after last frame: %v, want io.EOF", err)
	}
}

func TestEncodingIsDeterministic(t *testing.T) {
	c := newTestCodec(t, DefaultLimits())
	m := &ping{Seq: 7, Tags: map[string]uint64{}}
	for i := range 50 {
		m.Tags[strings.Repeat("k", i%7+1)+string(rune('a'+i%26))] = uint64(i)
	}
	first, err := c.EncodeMessage(m)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		again, _ := c.EncodeMessage(m)
		if !bytes.Equal(first, again) {
			t.Fatal("two encodings of the same message differ")
		}
	}
	// Integer keys: field 1 is the single byte 0x01, not the string "Seq".
	body, _ := c.Marshal(pong{Seq: 5})
	if hex.EncodeToString(body) != "a10105" {
		t.Fatalf("pong{5} = %x, want a10105", body)
	}
}

func TestWrongProtocolAndUnknownType(t *testing.T) {
	c := newTestCodec(t, DefaultLimits())
	body, _ := c.EncodeMessage(&pong{Seq: 1})
	if _, _, err := c.DecodeMessage(protoPing, body); !errors.Is(err, ErrWrongProtocol) {
		t.Fatalf("pong on ping protocol: %v", err)
	}
	unknown, _ := c.Marshal([]any{uint16(99), map[int]int{1: 1}})
	if _, _, err := c.DecodeMessage(protoPing, unknown); !errors.Is(err, ErrUnknownType) {
		t.Fatalf("type 99: %v", err)
	}
	if got := c.Rejects.Snapshot(); got["wrong_protocol"] != 1 || got["unknown_type"] != 1 {
		t.Fatalf("reject counts = %v", got)
	}
}

func TestRegistryRefusesDuplicates(t *testing.T) {
	reg := NewRegistry()
	if err := Register[ping](reg, 1, "ping", protoPing); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"same type number": Register[pong](reg, 1, "pong", protoPong),
		"same Go type":     Register[ping](reg, 3, "ping2", protoPing),
		"same name":        Register[pong](reg, 4, "ping", protoPong),
		"not a struct":     Register[int](reg, 5, "int", protoPong),
	} {
		if err == nil {
			t.Errorf("%s: registered", name)
		}
	}
}

// frameOf builds a frame body holding envelope [1, raw] for the ping protocol.
func envelopeOf(raw []byte) []byte {
	return append([]byte{0x82, 0x01}, raw...)
}

func TestBadInputGetsTypedErrors(t *testing.T) {
	lim := DefaultLimits()
	lim.MaxString = 1000
	c := newTestCodec(t, lim)
	nested := bytes.Repeat([]byte{0x81}, 60_000) // [[[[… within one frame
	nested = append(nested, 0x00)
	cases := []struct {
		name string
		body []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"2^32-element array header", envelopeOf([]byte{0x9b, 0, 0, 0, 1, 0, 0, 0, 0}), ErrLimit},
		{"2^64-1 element map header", envelopeOf([]byte{0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}), ErrLimit},
		{"array longer than the data", envelopeOf([]byte{0x99, 0x0f, 0xff, 0x01}), ErrTruncated},
		{"deep nesting", nested, ErrLimit},
		{"indefinite array", envelopeOf([]byte{0x9f, 0x01, 0xff}), ErrMalformed},
		{"indefinite string", envelopeOf([]byte{0x5f, 0x41, 0x00, 0xff}), ErrMalformed},
		{"tag", envelopeOf([]byte{0xc1, 0x01}), ErrMalformed},
		{"undefined simple value", envelopeOf([]byte{0xf7}), ErrMalformed},
		{"reserved additional info", envelopeOf([]byte{0x1c}), ErrMalformed},
		{"string over limit", envelopeOf([]byte{0x59, 0x03, 0xe9}), ErrLimit},
		{"string longer than the data", envelopeOf([]byte{0x58, 0x20, 0x00}), ErrTruncated},
		{"trailing bytes", append(envelopeOf([]byte{0xa1, 0x01, 0x01}), 0x00), ErrMalformed},
		{"duplicate map key", envelopeOf([]byte{0xa2, 0x01, 0x01, 0x01, 0x02}), ErrMalformed},
		{"unknown field", envelopeOf([]byte{0xa1, 0x09, 0x01}), ErrMalformed},
		{"text where a number belongs", envelopeOf([]byte{0xa1, 0x01, 0x61, 'x'}), ErrMalformed},
		{"invalid UTF-8", envelopeOf([]byte{0xa1, 0x02, 0x61, 0xff}), ErrMalformed},
		{"envelope not an array", []byte{0x01}, ErrMalformed},
		{"truncated header argument", envelopeOf([]byte{0x1a, 0x00}), ErrTruncated},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := c.DecodeMessage(protoPing, tc.body)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			var ce *Error
			if !errors.As(err, &ce) || ce.Detail == "" {
				t.Fatalf("%v is not a *codec.Error with a detail", err)
			}
		})
	}
}

func TestFrameReader(t *testing.T) {
	t.Run("too large is refused before allocation", func(t *testing.T) {
		prefix := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f} // 2^63-1
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		_, err := NewFrameReader(bytes.NewReader(prefix), 0).ReadFrame()
		runtime.ReadMemStats(&ms1)
		if !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("got %v", err)
		}
		if grew := ms1.TotalAlloc - ms0.TotalAlloc; grew > 64<<10 {
			t.Fatalf("rejecting a huge prefix allocated %d bytes", grew)
		}
	})
	t.Run("one byte over the limit", func(t *testing.T) {
		frame := AppendFrame(nil, make([]byte, 101))
		if _, err := NewFrameReader(bytes.NewReader(frame), 100).ReadFrame(); !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("got %v", err)
		}
		if err := WriteFrame(io.Discard, make([]byte, 101), 100); !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("writer: got %v", err)
		}
	})
	t.Run("truncated body", func(t *testing.T) {
		frame := AppendFrame(nil, []byte("hello"))
		_, err := NewFrameReader(bytes.NewReader(frame[:4]), 0).ReadFrame()
		if !errors.Is(err, ErrTruncated) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("truncated prefix", func(t *testing.T) {
		_, err := NewFrameReader(bytes.NewReader([]byte{0x80, 0x80}), 0).ReadFrame()
		if !errors.Is(err, ErrTruncated) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("overlong prefix", func(t *testing.T) {
		_, err := NewFrameReader(bytes.NewReader(bytes.Repeat([]byte{0x80}, 11)), 0).ReadFrame()
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("zero length", func(t *testing.T) {
		_, err := NewFrameReader(bytes.NewReader([]byte{0}), 0).ReadFrame()
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("clean EOF", func(t *testing.T) {
		_, err := NewFrameReader(bytes.NewReader(nil), 0).ReadFrame()
		if err != io.EOF {
			t.Fatalf("got %v", err)
		}
	})
}

func TestHugeArrayHeaderHasBoundedCost(t *testing.T) {
	c := newTestCodec(t, DefaultLimits())
	body := envelopeOf([]byte{0x9b, 0, 0, 0, 1, 0, 0, 0, 0})
	allocs := testing.AllocsPerRun(100, func() {
		if _, _, err := c.DecodeMessage(protoPing, body); err == nil {
			t.Fatal("accepted")
		}
	})
	if allocs > 10 {
		t.Fatalf("%v allocations to reject a 2^32-element header", allocs)
	}
}

func TestRandomBytesNeverPanic(t *testing.T) {
	c := newTestCodec(t, DefaultLimits())
	rng := rand.New(rand.NewPCG(1, 2))
	good, _ := c.EncodeMessage(&ping{Seq: 9, Note: "x", Tags: map[string]uint64{"a": 1}, Blobs: [][]byte{{1}}})
	for i := range 20000 {
		var b []byte
		if i%2 == 0 {
			b = make([]byte, rng.IntN(64))
			for j := range b {
				b[j] = byte(rng.Uint32())
			}
		} else { // mutate a valid body: the interesting inputs are near-valid
			b = bytes.Clone(good)
			for range rng.IntN(4) + 1 {
				b[rng.IntN(len(b))] = byte(rng.Uint32())
			}
		}
		_, _, err := c.DecodeMessage(protoPing, b)
		if err != nil && Reason(err) == "other" {
			t.Fatalf("input %x: untyped error %v", b, err)
		}
		r := NewFrameReader(bytes.NewReader(b), 32)
		for {
			if _, err := r.ReadFrame(); err != nil {
				if err != io.EOF && Reason(err) == "other" {
					t.Fatalf("frames %x: untyped error %v", b, err)
				}
				break
			}
		}
	}
}

// chunks is a reader that returns its pieces one Read at a time, like a
// stream whose data arrives in bursts.
type chunks [][]byte

func (c *chunks) Read(b []byte) (int, error) {
	if len(*c) == 0 {
		return 0, io.EOF
	}
	n := copy(b, (*c)[0])
	if n == len((*c)[0]) {
		*c = (*c)[1:]
	} else {
		(*c)[0] = (*c)[0][n:]
	}
	return n, nil
}

func TestFrameBufferedCountsOnlyWholeFrames(t *testing.T) {
	a := AppendFrame(nil, bytes.Repeat([]byte{1}, 300))
	b := AppendFrame(nil, bytes.Repeat([]byte{2}, 300))
	c := AppendFrame(nil, bytes.Repeat([]byte{3}, 300))
	// Burst 1: frame a, frame b and half of c; burst 2: the rest of c.
	first := append(append(append([]byte(nil), a...), b...), c[:150]...)
	src := chunks{first, c[150:]}
	fr := NewFrameReader(&src, 0)
	if fr.FrameBuffered() {
		t.Fatal("nothing read yet, but a frame is said to be buffered")
	}
	if _, err := fr.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	if !fr.FrameBuffered() {
		t.Fatal("frame b is buffered whole")
	}
	if _, err := fr.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	if fr.FrameBuffered() {
		t.Fatal("half of frame c counted as a frame in hand")
	}
	if got, err := fr.ReadFrame(); err != nil || got[0] != 3 || len(got) != 300 {
		t.Fatalf("frame c: %d bytes, %v", len(got), err)
	}
	// A prefix that will be refused is in hand: ReadFrame answers at once.
	huge := binary.AppendUvarint(nil, DefaultMaxFrame+1)
	src = chunks{huge}
	fr = NewFrameReader(&src, 0)
	fr.r.Peek(1)
	if !fr.FrameBuffered() {
		t.Fatal("an oversize prefix must not wait for more bytes")
	}
}
