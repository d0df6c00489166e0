package wire

import (
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// kind is how a field's values are written.
type kind uint8

const (
	kindVarint kind = iota
	kindZigzag32
	kindZigzag64
	kindFixed32
	kindFixed64
	kindBytes // strings, bytes and messages
)

func (k kind) wireType() int {
	switch k {
	case kindFixed32:
		return fixed32Type
	case kindFixed64:
		return fixed64Type
	case kindBytes:
		return bytesType
	default:
		return varintType
	}
}

// field is one protobuf field of a generated struct.
type field struct {
	num      int32
	name     string // the .proto name, for errors and text
	kind     kind
	index    int          // in the struct
	elem     reflect.Type // a value's type: scalar, or pointer to a message struct
	message  bool
	repeated bool
	packed   bool
	required bool
	// pointer: a scalar field with explicit presence (proto2, proto3
	// optional) is a pointer; present when non-nil.
	pointer bool
	// bytesByNil: a bytes field with explicit presence is present when
	// non-nil (proto3 plain bytes when non-empty).
	bytesByNil bool
	checkUTF8  bool // proto3 strings must be valid UTF-8
}

// layout is a message struct's fields in field-number order, which is
// the order the real runtime writes them in.
type layout struct {
	name    string
	fields  []field
	unknown int // index of unknownFields, or -1
}

func (l *layout) find(num int32) *field {
	i := sort.Search(len(l.fields), func(i int) bool { return l.fields[i].num >= num })
	if i < len(l.fields) && l.fields[i].num == num {
		return &l.fields[i]
	}
	return nil
}

// codec holds the layouts used during one call.
type codec struct {
	layouts map[reflect.Type]*layout
	// partial: Size and Merge check neither required fields nor UTF-8.
	partial bool
}

func newCodec() *codec { return &codec{layouts: map[reflect.Type]*layout{}} }

func unsupported(t reflect.Type, name, what string) error {
	return &Error{Reason: t.Name() + "." + name + ": " + what + " is not supported by gardend's protobuf stand-in"}
}

// Cache holds one message type's layout, worked out once. The runtime
// keeps one in each generated type's MessageInfo, as the real runtime
// keeps its own tables there: reading the tags is most of a call's work.
type Cache struct {
	once sync.Once
	l    *layout
	err  error
}

// cached is implemented by the runtime's message state.
type cached interface{ WireCache() *Cache }

// layoutOf returns the layout of struct type t; ptr, a pointer to a
// message of that type or nothing, leads to its type's Cache.
func (c *codec) layoutOf(t reflect.Type, ptr reflect.Value) (*layout, error) {
	if l, ok := c.layouts[t]; ok {
		return l, nil
	}
	var l *layout
	var err error
	if cache := cacheOf(ptr); cache != nil {
		cache.once.Do(func() { cache.l, cache.err = parseLayout(t) })
		l, err = cache.l, cache.err
	} else {
		l, err = parseLayout(t)
	}
	if err != nil {
		return nil, err
	}
	c.layouts[t] = l
	return l, nil
}

func cacheOf(ptr reflect.Value) *Cache {
	if !ptr.IsValid() || ptr.Kind() != reflect.Pointer || ptr.IsNil() {
		return nil
	}
	m, ok := ptr.Interface().(protoreflect.ProtoMessage)
	if !ok {
		return nil
	}
	if wc, ok := m.ProtoReflect().(cached); ok {
		return wc.WireCache()
	}
	return nil
}

// parseLayout reads the tags of struct type t.
func parseLayout(t reflect.Type) (*layout, error) {
	l := &layout{name: t.Name(), unknown: -1}
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if sf.Name == "unknownFields" && sf.Type == reflect.TypeOf([]byte(nil)) {
			l.unknown = i
			continue
		}
		if _, ok := sf.Tag.Lookup("protobuf_oneof"); ok {
			return nil, unsupported(t, sf.Name, "a oneof")
		}
		tag, ok := sf.Tag.Lookup("protobuf")
		if !ok {
			continue // message state, size cache
		}
		if _, ok := sf.Tag.Lookup("protobuf_key"); ok {
			return nil, unsupported(t, sf.Name, "a map")
		}
		f, err := parseField(t, sf, tag)
		if err != nil {
			return nil, err
		}
		f.index = i
		l.fields = append(l.fields, f)
	}
	sort.Slice(l.fields, func(i, j int) bool { return l.fields[i].num < l.fields[j].num })
	return l, nil
}

var byteSlice = reflect.TypeOf([]byte(nil))

func parseField(t reflect.Type, sf reflect.StructField, tag string) (field, error) {
	parts := strings.Split(tag, ",")
	if len(parts) < 3 {
		return field{}, unsupported(t, sf.Name, "tag "+strconv.Quote(tag))
	}
	f := field{name: sf.Name}
	switch parts[0] {
	case "varint":
		f.kind = kindVarint
	case "zigzag32":
		f.kind = kindZigzag32
	case "zigzag64":
		f.kind = kindZigzag64
	case "fixed32":
		f.kind = kindFixed32
	case "fixed64":
		f.kind = kindFixed64
	case "bytes":
		f.kind = kindBytes
	default: // group
		return field{}, unsupported(t, sf.Name, "wire kind "+parts[0])
	}
	num, err := strconv.ParseInt(parts[1], 10, 32)
	if err != nil || num < 1 || num > maxFieldNumber {
		return field{}, unsupported(t, sf.Name, "field number "+parts[1])
	}
	f.num = int32(num)
	f.repeated = parts[2] == "rep"
	f.required = parts[2] == "req"
	proto3, oneof := false, false
	for _, p := range parts[3:] {
		switch {
		case p == "proto3":
			proto3 = true
		case p == "oneof":
			oneof = true // proto3 optional: explicit presence
		case p == "packed":
			f.packed = true
		case strings.HasPrefix(p, "name="):
			f.name = strings.TrimPrefix(p, "name=")
		}
	}
	ft := sf.Type
	switch {
	case f.repeated && ft.Kind() == reflect.Slice:
		f.elem = ft.Elem()
	case f.repeated:
		return field{}, unsupported(t, sf.Name, "a repeated field that is not a slice")
	case ft == byteSlice:
		f.elem = ft
		f.bytesByNil = !proto3 || oneof
	case ft.Kind() == reflect.Pointer && ft.Elem().Kind() != reflect.Struct:
		f.pointer = true
		f.elem = ft.Elem()
	default:
		f.elem = ft
	}
	f.message = f.elem.Kind() == reflect.Pointer && f.elem.Elem().Kind() == reflect.Struct
	f.checkUTF8 = proto3 && f.elem.Kind() == reflect.String
	if !kindFits(f.kind, f.elem) {
		return field{}, unsupported(t, sf.Name, "Go type "+f.elem.String()+" as "+parts[0])
	}
	return f, nil
}

// kindFits reports whether values of Go type elem can be written as k.
func kindFits(k kind, elem reflect.Type) bool {
	switch k {
	case kindVarint:
		switch elem.Kind() {
		case reflect.Bool, reflect.Int32, reflect.Int64, reflect.Uint32, reflect.Uint64:
			return true
		}
	case kindZigzag32:
		return elem.Kind() == reflect.Int32
	case kindZigzag64:
		return elem.Kind() == reflect.Int64
	case kindFixed32:
		switch elem.Kind() {
		case reflect.Int32, reflect.Uint32, reflect.Float32:
			return true
		}
	case kindFixed64:
		switch elem.Kind() {
		case reflect.Int64, reflect.Uint64, reflect.Float64:
			return true
		}
	case kindBytes:
		return elem.Kind() == reflect.String || elem == byteSlice ||
			(elem.Kind() == reflect.Pointer && elem.Elem().Kind() == reflect.Struct)
	}
	return false
}
