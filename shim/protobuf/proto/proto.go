// Package proto stands in for the real package's marshalling API:
// Marshal, Unmarshal, Size, Merge and the pointer helpers, over the
// generated message structs' field tags (see internal/wire).
package proto

import (
	"reflect"

	"google.golang.org/protobuf/internal/wire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Message is a generated message.
type Message = protoreflect.ProtoMessage

// Error matches, with errors.Is, every error this package returns.
var Error error = &wire.Error{Reason: "error"}

// Marshal returns m's wire encoding: fields in number order, unknown
// fields last; it fails if a required field is unset.
func Marshal(m Message) ([]byte, error) {
	if m == nil {
		return nil, nil
	}
	b, err := wire.Marshal(nil, m, false)
	if b == nil && err == nil {
		b = []byte{} // the real runtime returns an empty, non-nil slice
	}
	return b, err
}

// Unmarshal resets m and decodes b into it. A required field missing
// from b is an error.
func Unmarshal(b []byte, m Message) error {
	if err := reset(m); err != nil {
		return err
	}
	return wire.Unmarshal(b, m, false)
}

// Size returns the length of m's encoding.
func Size(m Message) int {
	if m == nil {
		return 0
	}
	return wire.Size(m)
}

// Merge merges src into dst, which must be messages of the same type:
// scalars in src replace dst's, repeated fields are appended, messages
// merged.
func Merge(dst, src Message) {
	if reflect.TypeOf(dst) != reflect.TypeOf(src) {
		panic("proto: Merge of different message types")
	}
	// Partial: no check can fail on what the codec itself wrote, short of
	// nesting deeper than the recursion limit, as the real Merge panics on.
	b, err := wire.Marshal(nil, src, true)
	if err == nil {
		err = wire.Unmarshal(b, dst, true)
	}
	if err != nil {
		panic("proto: Merge: " + err.Error())
	}
}

func reset(m Message) error {
	v := reflect.ValueOf(m)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return &wire.Error{Reason: "cannot unmarshal into a nil or non-message value"}
	}
	v.Elem().Set(reflect.Zero(v.Elem().Type()))
	return nil
}

// Bool returns a pointer to v, for optional fields.
func Bool(v bool) *bool { return &v }

// Int32 returns a pointer to v.
func Int32(v int32) *int32 { return &v }

// Int64 returns a pointer to v.
func Int64(v int64) *int64 { return &v }

// Uint32 returns a pointer to v.
func Uint32(v uint32) *uint32 { return &v }

// Uint64 returns a pointer to v.
func Uint64(v uint64) *uint64 { return &v }

// Float32 returns a pointer to v.
func Float32(v float32) *float32 { return &v }

// Float64 returns a pointer to v.
func Float64(v float64) *float64 { return &v }

// String returns a pointer to v.
func String(v string) *string { return &v }
