package wire

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// Text renders m for logs and %v: `name:value` pairs, nested messages in
// braces, bytes and strings quoted, enums by name. It is close to the
// real runtime's text format, not the same, and is not meant to be parsed.
func Text(m any) string {
	v := reflect.ValueOf(m)
	if !v.IsValid() || v.Kind() != reflect.Pointer || v.IsNil() {
		return "<nil>"
	}
	var sb strings.Builder
	newCodec().text(&sb, v.Elem(), 0)
	return sb.String()
}

func (c *codec) text(sb *strings.Builder, v reflect.Value, depth int) {
	l, err := c.layoutOf(v.Type(), v.Addr())
	if err != nil || depth > 100 {
		sb.WriteString("…")
		return
	}
	for i := range l.fields {
		f := &l.fields[i]
		fv := v.Field(f.index)
		if f.repeated {
			for j := 0; j < fv.Len(); j++ {
				c.textValue(sb, f, fv.Index(j), depth)
			}
		} else if present(f, fv) {
			if f.pointer {
				fv = fv.Elem()
			}
			c.textValue(sb, f, fv, depth)
		}
	}
}

func (c *codec) textValue(sb *strings.Builder, f *field, ev reflect.Value, depth int) {
	if sb.Len() > 0 {
		sb.WriteByte(' ')
	}
	sb.WriteString(f.name)
	sb.WriteByte(':')
	switch {
	case f.message:
		var inner strings.Builder
		if !ev.IsNil() {
			c.text(&inner, ev.Elem(), depth+1)
		}
		sb.WriteString("{" + inner.String() + "}")
	case ev.Kind() == reflect.String:
		sb.WriteString(strconv.Quote(ev.String()))
	case ev.Kind() == reflect.Slice:
		sb.WriteString(strconv.Quote(string(ev.Bytes())))
	default:
		fmt.Fprint(sb, ev.Interface()) // enums print their names
	}
}
