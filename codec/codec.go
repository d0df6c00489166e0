// Package codec is the one path by which gardend turns messages into bytes on a
// stream and back: uvarint length-prefixed frames holding deterministic CBOR
// (RFC 8949 Core Deterministic Encoding), a strict decoder bounded in depth,
// sizes and lengths, and a registry that binds every message type to the
// protocol it may travel on.
//
// A frame body is a two-element CBOR array [type, message]. Message structs use
// integer map keys (`cbor:"1,keyasint"`) or arrays (`cbor:",toarray"`) to keep
// the wire small. Decoding first scans the item's headers against Limits —
// nothing is allocated on the word of an untrusted length — then decodes
// strictly: unknown fields, duplicate map keys, tags and indefinite lengths are
// errors. Every failure is an *Error wrapping one sentinel kind.
package codec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"

	"github.com/fxamacker/cbor/v2"
)

// Codec encodes and decodes registered messages. It is immutable after New and
// safe for concurrent use; Rejects counts what it refused.
type Codec struct {
	lim     Limits
	reg     *Registry
	enc     cbor.EncMode
	dec     cbor.DecMode
	Rejects RejectCounts
}

// New returns a codec for the messages in reg, bounded by lim.
func New(reg *Registry, lim Limits) (*Codec, error) {
	if lim.MaxFrame <= 0 || lim.MaxDepth <= 0 || lim.MaxArray <= 0 || lim.MaxMap <= 0 || lim.MaxString <= 0 {
		return nil, fmt.Errorf("codec: every limit must be positive: %+v", lim)
	}
	if reg == nil {
		reg = NewRegistry()
	}
	enc, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		return nil, err
	}
	dec, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		MaxNestedLevels:   max(lim.MaxDepth+1, 4),
		MaxArrayElements:  max(lim.MaxArray, 16),
		MaxMapPairs:       max(lim.MaxMap, 16),
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		UTF8:              cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		return nil, err
	}
	return &Codec{lim: lim, reg: reg, enc: enc, dec: dec}, nil
}

// Limits returns the limits the codec enforces.
func (c *Codec) Limits() Limits { return c.lim }

// Registry returns the message registry the codec was built with.
func (c *Codec) Registry() *Registry { return c.reg }

// Marshal encodes v deterministically: the same value always gives the same
// bytes, so signatures over them can be checked anywhere.
func (c *Codec) Marshal(v any) ([]byte, error) { return c.enc.Marshal(v) }

// Unmarshal decodes one CBOR item from data into v after a bounded scan. It is
// for payloads nested inside messages (signed records, resource bodies); whole
// messages go through DecodeMessage.
func (c *Codec) Unmarshal(data []byte, v any) error {
	if len(data) > c.lim.MaxFrame {
		return c.Rejects.Note(newError(ErrFrameTooLarge, -1, "item of %d bytes exceeds the %d-byte limit", len(data), c.lim.MaxFrame))
	}
	if err := scan(data, c.lim); err != nil {
		return c.Rejects.Note(err)
	}
	if err := c.dec.Unmarshal(data, v); err != nil {
		return c.Rejects.Note(classify(err))
	}
	return nil
}

// envelope is the frame body: [type, message].
type envelope struct {
	_    struct{} `cbor:",toarray"`
	Type Type
	Body cbor.RawMessage
}

// EncodeMessage returns the frame body for m, which must be registered.
func (c *Codec) EncodeMessage(m any) ([]byte, error) {
	spec, ok := c.reg.byGo[reflect.TypeOf(m)]
	if !ok {
		return nil, fmt.Errorf("codec: %T is not a registered message type", m)
	}
	body, err := c.enc.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("codec: encode %s: %w", spec.Name, err)
	}
	out, err := c.enc.Marshal(envelope{Type: spec.Type, Body: body})
	if err != nil {
		return nil, fmt.Errorf("codec: encode %s envelope: %w", spec.Name, err)
	}
	if len(out) > c.lim.MaxFrame {
		return nil, newError(ErrFrameTooLarge, -1, "%s encodes to %d bytes, limit is %d", spec.Name, len(out), c.lim.MaxFrame)
	}
	return out, nil
}

// DecodeMessage decodes a frame body received on protocol proto. It returns a
// pointer to a new value of the registered Go type (for a message registered
// as Foo, a *Foo) and its spec. A type that is not registered, or registered
// for another protocol, is an error: a protocol handler never sees a message
// it did not ask for.
func (c *Codec) DecodeMessage(proto string, body []byte) (any, *Spec, error) {
	if len(body) > c.lim.MaxFrame {
		return nil, nil, c.Rejects.Note(newError(ErrFrameTooLarge, -1, "body of %d bytes exceeds the %d-byte limit", len(body), c.lim.MaxFrame))
	}
	if err := scan(body, c.lim); err != nil {
		return nil, nil, c.Rejects.Note(err)
	}
	var env envelope
	if err := c.dec.Unmarshal(body, &env); err != nil {
		return nil, nil, c.Rejects.Note(classify(err))
	}
	spec, ok := c.reg.byType[env.Type]
	if !ok {
		return nil, nil, c.Rejects.Note(newError(ErrUnknownType, -1, "type %d", env.Type))
	}
	if !spec.Allowed(proto) {
		return nil, nil, c.Rejects.Note(newError(ErrWrongProtocol, -1, "%s does not travel on %s", spec.Name, proto))
	}
	v := reflect.New(spec.goType)
	if err := c.dec.Unmarshal(env.Body, v.Interface()); err != nil {
		return nil, nil, c.Rejects.Note(fmt.Errorf("%s: %w", spec.Name, classify(err)))
	}
	return v.Interface(), spec, nil
}

// WriteMessage encodes m and writes it as one frame.
func (c *Codec) WriteMessage(w io.Writer, m any) error {
	body, err := c.EncodeMessage(m)
	if err != nil {
		return err
	}
	return WriteFrame(w, body, c.lim.MaxFrame)
}

// NewReader returns a frame reader bounded by the codec's frame limit.
func (c *Codec) NewReader(r io.Reader) *FrameReader { return NewFrameReader(r, c.lim.MaxFrame) }

// NewReaderMax returns a frame reader bounded by maxFrame or the codec's
// frame limit, whichever is smaller: a protocol whose messages are small
// refuses a large frame from its length prefix.
func (c *Codec) NewReaderMax(r io.Reader, maxFrame int) *FrameReader {
	if maxFrame <= 0 || maxFrame > c.lim.MaxFrame {
		maxFrame = c.lim.MaxFrame
	}
	return NewFrameReader(r, maxFrame)
}

// ReadMessage reads one frame from r and decodes it for protocol proto.
// A clean end of stream is io.EOF.
func (c *Codec) ReadMessage(r *FrameReader, proto string) (any, *Spec, error) {
	body, err := r.ReadFrame()
	if err != nil {
		return nil, nil, c.Rejects.Note(err)
	}
	return c.DecodeMessage(proto, body)
}

// classify maps the CBOR library's errors onto this package's kinds. The scan
// has already caught most bad input; what remains is mostly semantic (a text
// string where a number belongs, a duplicate key, an unknown field).
func classify(err error) error {
	var (
		syntax   *cbor.SyntaxError
		depth    *cbor.MaxNestedLevelError
		arr      *cbor.MaxArrayElementsError
		mp       *cbor.MaxMapPairsError
		typ      *cbor.UnmarshalTypeError
		dup      *cbor.DupMapKeyError
		unknown  *cbor.UnknownFieldError
		indef    *cbor.IndefiniteLengthError
		tags     *cbor.TagsMdError
		trailing *cbor.ExtraneousDataError
	)
	switch {
	case errors.As(err, &depth), errors.As(err, &arr), errors.As(err, &mp):
		return newError(ErrLimit, -1, "%v", err)
	case errors.As(err, &syntax), errors.As(err, &typ), errors.As(err, &dup), errors.As(err, &unknown),
		errors.As(err, &indef), errors.As(err, &tags), errors.As(err, &trailing):
		return newError(ErrMalformed, -1, "%v", err)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return newError(ErrTruncated, -1, "%v", err)
	}
	return newError(ErrMalformed, -1, "%v", err)
}

// Equal reports whether two values encode to the same deterministic bytes.
func (c *Codec) Equal(a, b any) bool {
	x, err1 := c.enc.Marshal(a)
	y, err2 := c.enc.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}
