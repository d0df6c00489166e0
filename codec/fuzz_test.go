package codec

import (
	"bytes"
	"io"
	"testing"
)

// FuzzReadFrame feeds arbitrary streams to the frame reader: it must never
// panic, never return a body over the limit, and fail only with io.EOF or a
// typed error.
func FuzzReadFrame(f *testing.F) {
	f.Add(AppendFrame(nil, []byte{0x01}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{0x05, 'a', 'b'})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewFrameReader(bytes.NewReader(data), 64)
		for {
			body, err := r.ReadFrame()
			if err != nil {
				if err != io.EOF && Reason(err) == "other" {
					t.Fatalf("untyped error: %v", err)
				}
				return
			}
			if len(body) == 0 || len(body) > 64 {
				t.Fatalf("body of %d bytes", len(body))
			}
		}
	})
}

// FuzzDecodeMessage feeds arbitrary frame bodies to the decoder. Whatever it
// accepts must re-encode to bytes that decode to the same value.
func FuzzDecodeMessage(f *testing.F) {
	c := newTestCodec(f, DefaultLimits())
	for _, m := range []any{&ping{Seq: 1, Note: "n", Tags: map[string]uint64{"a": 1}, Blobs: [][]byte{{9}}}, &pong{Seq: 2}} {
		b, _ := c.EncodeMessage(m)
		f.Add(b)
	}
	f.Add(envelopeOf([]byte{0x9b, 0, 0, 0, 1, 0, 0, 0, 0}))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, proto := range []string{protoPing, protoPong} {
			v, _, err := c.DecodeMessage(proto, body)
			if err != nil {
				if Reason(err) == "other" {
					t.Fatalf("untyped error: %v", err)
				}
				continue
			}
			again, err := c.EncodeMessage(v)
			if err != nil {
				t.Fatalf("re-encode %+v: %v", v, err)
			}
			v2, _, err := c.DecodeMessage(proto, again)
			if err != nil || !c.Equal(v, v2) {
				t.Fatalf("round trip of %+v: %v", v, err)
			}
		}
	})
}

// FuzzUnmarshal feeds arbitrary bytes to Unmarshal, the decoder of the
// payloads nested inside messages (signed records, envelopes, pushes,
// reports): it fails only with a typed error, counted in Rejects, and
// whatever it accepts re-encodes to bytes that decode to the same value.
func FuzzUnmarshal(f *testing.F) {
	c := newTestCodec(f, DefaultLimits())
	for _, m := range []any{&ping{Seq: 7, Note: "n", Tags: map[string]uint64{"a": 1, "b": 2}, Blobs: [][]byte{{1}, {}}}, &ping{}} {
		b, err := c.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)-1])
	}
	f.Add([]byte{0xa1, 0x01, 0x01, 0x00})       // trailing byte
	f.Add([]byte{0xa2, 0x01, 0x01, 0x01, 0x02}) // duplicate key
	f.Add([]byte{0xa1, 0x09, 0x01})             // unknown field
	f.Fuzz(func(t *testing.T, data []byte) {
		before := total(c.Rejects.Snapshot())
		var p ping
		if err := c.Unmarshal(data, &p); err != nil {
			if Reason(err) == "other" {
				t.Fatalf("untyped error: %v", err)
			}
			if total(c.Rejects.Snapshot()) == before {
				t.Fatalf("rejection not counted: %v", err)
			}
			return
		}
		again, err := c.Marshal(&p)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", p, err)
		}
		var p2 ping
		if err := c.Unmarshal(again, &p2); err != nil || !c.Equal(&p, &p2) {
			t.Fatalf("round trip of %+v: %v", p, err)
		}
	})
}

func total(m map[string]uint64) (n uint64) {
	for _, v := range m {
		n += v
	}
	return n
}
