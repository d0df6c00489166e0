package wire

import (
	"math"
	"reflect"
	"unicode/utf8"
)

// Unmarshal merges the encoding b into m, a non-nil pointer to a
// generated message struct: scalars are replaced, repeated fields
// appended to, messages merged. Unknown fields are kept. It then checks
// that every required field is set and strings are UTF-8, unless partial
// (for Merge, whose input the codec wrote).
func Unmarshal(b []byte, m any, partial bool) error {
	v := reflect.ValueOf(m)
	if !v.IsValid() || v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return &Error{Reason: "cannot unmarshal into a nil or non-message value"}
	}
	c := newCodec()
	c.partial = partial
	l, err := c.layoutOf(v.Elem().Type(), v)
	if err != nil {
		return err
	}
	if err := c.consumeMessage(b, v.Elem(), l, 0); err != nil {
		return err
	}
	if partial {
		return nil
	}
	return c.checkRequired(v.Elem(), l, 0)
}

func (c *codec) consumeMessage(b []byte, v reflect.Value, l *layout, depth int) error {
	if depth > maxDepth {
		return &Error{Reason: "exceeded maximum recursion depth"}
	}
	for len(b) > 0 {
		num, wireType, n := consumeTag(b)
		if n < 0 {
			return invalid()
		}
		if f := l.find(num); f != nil {
			taken, err := c.consumeField(b[n:], wireType, f, v.Field(f.index), depth)
			if err != nil {
				return err
			}
			if taken >= 0 {
				b = b[n+taken:]
				continue
			}
		}
		// An unknown field, or a known one with another wire type (as the
		// real runtime does, enum numbers are kept, even unnamed ones).
		taken := consumeValue(num, wireType, b[n:], depth)
		if taken < 0 {
			return invalid()
		}
		if l.unknown >= 0 {
			u := unexported(v.Field(l.unknown))
			u.SetBytes(append(u.Bytes(), b[:n+taken]...))
		}
		b = b[n+taken:]
	}
	return nil
}

// consumeField reads one value of f from b and returns the bytes it
// took, or -1 to have the value kept as an unknown field.
func (c *codec) consumeField(b []byte, wireType int, f *field, fv reflect.Value, depth int) (int, error) {
	if f.repeated && f.kind != kindBytes && wireType == bytesType {
		return c.consumePacked(b, f, fv)
	}
	if wireType != f.kind.wireType() {
		return -1, nil
	}
	if f.message {
		data, n := consumeBytes(b)
		if n < 0 {
			return 0, invalid()
		}
		var target reflect.Value
		if f.repeated {
			target = reflect.New(f.elem.Elem())
			fv.Set(reflect.Append(fv, target))
		} else {
			if fv.IsNil() {
				fv.Set(reflect.New(f.elem.Elem()))
			}
			target = fv
		}
		l, err := c.layoutOf(f.elem.Elem(), target)
		if err != nil {
			return 0, err
		}
		return n, c.consumeMessage(data, target.Elem(), l, depth+1)
	}
	val := reflect.New(f.elem).Elem()
	n, err := c.consumeScalar(b, f, val)
	if err != nil {
		return 0, err
	}
	setField(f, fv, val)
	return n, nil
}

// consumePacked reads a packed run of scalars.
func (c *codec) consumePacked(b []byte, f *field, fv reflect.Value) (int, error) {
	data, n := consumeBytes(b)
	if n < 0 {
		return 0, invalid()
	}
	for len(data) > 0 {
		val := reflect.New(f.elem).Elem()
		taken, err := c.consumeScalar(data, f, val)
		if err != nil {
			return 0, err
		}
		fv.Set(reflect.Append(fv, val))
		data = data[taken:]
	}
	return n, nil
}

// consumeScalar decodes one value of f into val.
func (c *codec) consumeScalar(b []byte, f *field, val reflect.Value) (int, error) {
	switch f.kind {
	case kindVarint, kindZigzag32, kindZigzag64:
		x, n := consumeVarint(b)
		if n < 0 {
			return 0, invalid()
		}
		switch {
		case f.kind == kindZigzag32:
			val.SetInt(int64(int32(uint32(x)>>1) ^ -int32(x&1)))
		case f.kind == kindZigzag64:
			val.SetInt(int64(x>>1) ^ -int64(x&1))
		case val.Kind() == reflect.Bool:
			val.SetBool(x != 0)
		case val.Kind() == reflect.Int32:
			val.SetInt(int64(int32(x)))
		case val.Kind() == reflect.Int64:
			val.SetInt(int64(x))
		case val.Kind() == reflect.Uint32:
			val.SetUint(uint64(uint32(x)))
		default:
			val.SetUint(x)
		}
		return n, nil
	case kindFixed32:
		x, n := consumeFixed32(b)
		if n < 0 {
			return 0, invalid()
		}
		switch val.Kind() {
		case reflect.Float32:
			val.SetFloat(float64(math.Float32frombits(x)))
		case reflect.Int32:
			val.SetInt(int64(int32(x)))
		default:
			val.SetUint(uint64(x))
		}
		return n, nil
	case kindFixed64:
		x, n := consumeFixed64(b)
		if n < 0 {
			return 0, invalid()
		}
		switch val.Kind() {
		case reflect.Float64:
			val.SetFloat(math.Float64frombits(x))
		case reflect.Int64:
			val.SetInt(int64(x))
		default:
			val.SetUint(x)
		}
		return n, nil
	default:
		data, n := consumeBytes(b)
		if n < 0 {
			return 0, invalid()
		}
		if val.Kind() == reflect.String {
			if f.checkUTF8 && !c.partial && !utf8.Valid(data) {
				return 0, &Error{Reason: "field " + f.name + " contains invalid UTF-8"}
			}
			val.SetString(string(data))
		} else {
			// A copy: callers reuse their read buffers. Never nil, so an
			// empty bytes field with presence stays present.
			val.SetBytes(append([]byte{}, data...))
		}
		return n, nil
	}
}

// setField stores a decoded scalar: appended when repeated, through a
// fresh pointer when the field has explicit presence.
func setField(f *field, fv, val reflect.Value) {
	switch {
	case f.repeated:
		fv.Set(reflect.Append(fv, val))
	case f.pointer:
		p := reflect.New(f.elem)
		p.Elem().Set(val)
		fv.Set(p)
	default:
		fv.Set(val)
	}
}

// checkRequired walks the decoded message for unset required fields.
func (c *codec) checkRequired(v reflect.Value, l *layout, depth int) error {
	if depth > maxDepth {
		return &Error{Reason: "exceeded maximum recursion depth"}
	}
	for i := range l.fields {
		f := &l.fields[i]
		fv := v.Field(f.index)
		if f.required && !present(f, fv) {
			return &Error{Reason: "required field " + l.name + "." + f.name + " not set"}
		}
		if !f.message {
			continue
		}
		sub, err := c.layoutOf(f.elem.Elem(), reflect.Value{})
		if err != nil {
			return err
		}
		if !f.repeated {
			if !fv.IsNil() {
				if err := c.checkRequired(fv.Elem(), sub, depth+1); err != nil {
					return err
				}
			}
			continue
		}
		for j := 0; j < fv.Len(); j++ {
			if err := c.checkRequired(fv.Index(j).Elem(), sub, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}
