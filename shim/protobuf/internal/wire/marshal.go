package wire

import (
	"encoding/binary"
	"math"
	"reflect"
	"unicode/utf8"
	"unsafe"
)

// Marshal appends the encoding of m, a pointer to a generated message
// struct, to b. A nil pointer encodes as nothing. Partial skips the
// checks of required fields and UTF-8, as the real runtime's Size and
// Merge do.
func Marshal(b []byte, m any, partial bool) ([]byte, error) {
	c := newCodec()
	c.partial = partial
	return c.marshal(b, m)
}

// Size returns the length of m's encoding.
func Size(m any) int {
	b, err := Marshal(nil, m, true)
	if err != nil {
		return 0
	}
	return len(b)
}

func (c *codec) marshal(b []byte, m any) ([]byte, error) {
	v := reflect.ValueOf(m)
	if !v.IsValid() || v.IsNil() {
		return b, nil
	}
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil, &Error{Reason: "not a generated message: " + v.Type().String()}
	}
	l, err := c.layoutOf(v.Elem().Type(), v)
	if err != nil {
		return nil, err
	}
	return c.appendMessage(b, v.Elem(), l, 0)
}

func (c *codec) appendMessage(b []byte, v reflect.Value, l *layout, depth int) ([]byte, error) {
	if depth > maxDepth {
		return nil, &Error{Reason: "exceeded maximum recursion depth"}
	}
	var err error
	for i := range l.fields {
		f := &l.fields[i]
		fv := v.Field(f.index)
		if f.repeated {
			b, err = c.appendRepeated(b, f, fv, depth)
			if err != nil {
				return nil, err
			}
			continue
		}
		if !present(f, fv) {
			if f.required && !c.partial {
				return nil, &Error{Reason: "required field " + l.name + "." + f.name + " not set"}
			}
			continue
		}
		if f.pointer {
			fv = fv.Elem()
		}
		if b, err = c.appendValue(b, f, fv, depth); err != nil {
			return nil, err
		}
	}
	if l.unknown >= 0 {
		b = append(b, unexported(v.Field(l.unknown)).Bytes()...)
	}
	return b, nil
}

// present reports whether a singular field is written: non-nil with
// explicit presence, non-zero (non-empty) without.
func present(f *field, fv reflect.Value) bool {
	switch {
	case f.pointer || f.message || f.bytesByNil:
		return !fv.IsNil()
	case fv.Kind() == reflect.String || fv.Kind() == reflect.Slice:
		return fv.Len() > 0
	case fv.Kind() == reflect.Float32 || fv.Kind() == reflect.Float64:
		return math.Float64bits(fv.Float()) != 0 // -0 is written, as the real runtime does
	default:
		return !fv.IsZero()
	}
}

func (c *codec) appendRepeated(b []byte, f *field, fv reflect.Value, depth int) ([]byte, error) {
	n := fv.Len()
	if n == 0 {
		return b, nil
	}
	if f.packed && f.kind != kindBytes {
		var payload []byte
		for i := 0; i < n; i++ {
			payload = appendScalar(payload, f.kind, fv.Index(i))
		}
		b = appendTag(b, f.num, bytesType)
		b = appendVarint(b, uint64(len(payload)))
		return append(b, payload...), nil
	}
	var err error
	for i := 0; i < n; i++ {
		ev := fv.Index(i)
		if f.message && ev.IsNil() {
			return nil, &Error{Reason: "repeated field " + f.name + " has a nil element"}
		}
		if b, err = c.appendValue(b, f, ev, depth); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// appendValue writes one value of f with its tag.
func (c *codec) appendValue(b []byte, f *field, ev reflect.Value, depth int) ([]byte, error) {
	b = appendTag(b, f.num, f.kind.wireType())
	if !f.message {
		if f.checkUTF8 && !c.partial && !utf8.ValidString(ev.String()) {
			return nil, &Error{Reason: "field " + f.name + " contains invalid UTF-8"}
		}
		return appendScalar(b, f.kind, ev), nil
	}
	l, err := c.layoutOf(ev.Type().Elem(), ev)
	if err != nil {
		return nil, err
	}
	inner, err := c.appendMessage(nil, ev.Elem(), l, depth+1)
	if err != nil {
		return nil, err
	}
	b = appendVarint(b, uint64(len(inner)))
	return append(b, inner...), nil
}

// appendScalar writes one value without its tag; layoutOf has checked
// that the value's Go kind fits k.
func appendScalar(b []byte, k kind, ev reflect.Value) []byte {
	switch k {
	case kindVarint:
		switch ev.Kind() {
		case reflect.Bool:
			if ev.Bool() {
				return append(b, 1)
			}
			return append(b, 0)
		case reflect.Int32, reflect.Int64:
			return appendVarint(b, uint64(ev.Int())) // negative int32s take ten bytes
		default:
			return appendVarint(b, ev.Uint())
		}
	case kindZigzag32:
		x := int32(ev.Int())
		return appendVarint(b, uint64(uint32(x<<1)^uint32(x>>31)))
	case kindZigzag64:
		x := ev.Int()
		return appendVarint(b, uint64(x<<1)^uint64(x>>63))
	case kindFixed32:
		var x uint32
		switch ev.Kind() {
		case reflect.Float32:
			x = math.Float32bits(float32(ev.Float()))
		case reflect.Int32:
			x = uint32(ev.Int())
		default:
			x = uint32(ev.Uint())
		}
		return binary.LittleEndian.AppendUint32(b, x)
	case kindFixed64:
		var x uint64
		switch ev.Kind() {
		case reflect.Float64:
			x = math.Float64bits(ev.Float())
		case reflect.Int64:
			x = uint64(ev.Int())
		default:
			x = ev.Uint()
		}
		return binary.LittleEndian.AppendUint64(b, x)
	default:
		if ev.Kind() == reflect.String {
			s := ev.String()
			b = appendVarint(b, uint64(len(s)))
			return append(b, s...)
		}
		p := ev.Bytes()
		b = appendVarint(b, uint64(len(p)))
		return append(b, p...)
	}
}

// unexported makes a message's unexported unknownFields field usable.
func unexported(fv reflect.Value) reflect.Value {
	return reflect.NewAt(fv.Type(), unsafe.Pointer(fv.UnsafeAddr())).Elem()
}
