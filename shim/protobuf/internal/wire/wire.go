// Package wire is the protobuf wire-format codec behind the stand-in's
// proto package: it marshals and unmarshals generated message structs by
// reading their `protobuf:"..."` field tags with package reflect, in the
// order and with the presence rules of the real runtime.
package wire

import (
	"encoding/binary"
)

// Wire types (https://protobuf.dev/programming-guides/encoding/).
const (
	varintType     = 0
	fixed64Type    = 1
	bytesType      = 2
	startGroupType = 3
	endGroupType   = 4
	fixed32Type    = 5
)

const (
	maxFieldNumber = 1<<29 - 1
	// maxDepth bounds nested messages and groups, as the real runtime's
	// default recursion limit does: hostile input cannot exhaust the stack.
	maxDepth = 10000
)

// Error is every error the codec returns; its text follows the real
// runtime's ("proto: ..."), and errors.Is matches any two of them, as
// errors.Is(err, proto.Error) does with the real runtime.
type Error struct{ Reason string }

func (e *Error) Error() string { return "proto: " + e.Reason }

// Is reports whether target is also a codec error.
func (e *Error) Is(target error) bool {
	_, ok := target.(*Error)
	return ok
}

func invalid() error { return &Error{Reason: "cannot parse invalid wire-format data"} }

func appendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// consumeVarint returns the value and its length, or n < 0 when b is
// truncated or the varint overflows 64 bits.
func consumeVarint(b []byte) (v uint64, n int) {
	for i := 0; i < len(b) && i < 10; i++ {
		c := b[i]
		if i == 9 && c > 1 {
			return 0, -1 // more than 64 bits
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return v, i + 1
		}
	}
	return 0, -1
}

func appendTag(b []byte, num int32, wireType int) []byte {
	return appendVarint(b, uint64(num)<<3|uint64(wireType))
}

// consumeTag returns a field's number and wire type.
func consumeTag(b []byte) (num int32, wireType int, n int) {
	v, n := consumeVarint(b)
	if n < 0 || v>>3 == 0 || v>>3 > maxFieldNumber {
		return 0, 0, -1
	}
	return int32(v >> 3), int(v & 7), n
}

// consumeBytes returns a length-delimited value and the bytes it took.
func consumeBytes(b []byte) ([]byte, int) {
	l, n := consumeVarint(b)
	if n < 0 || l > uint64(len(b)-n) {
		return nil, -1
	}
	return b[n : n+int(l)], n + int(l)
}

func consumeFixed32(b []byte) (uint32, int) {
	if len(b) < 4 {
		return 0, -1
	}
	return binary.LittleEndian.Uint32(b), 4
}

func consumeFixed64(b []byte) (uint64, int) {
	if len(b) < 8 {
		return 0, -1
	}
	return binary.LittleEndian.Uint64(b), 8
}

// consumeValue returns the length of one value of field num with the
// given wire type, groups included, or n < 0 if it is malformed.
func consumeValue(num int32, wireType int, b []byte, depth int) int {
	switch wireType {
	case varintType:
		_, n := consumeVarint(b)
		return n
	case fixed32Type:
		_, n := consumeFixed32(b)
		return n
	case fixed64Type:
		_, n := consumeFixed64(b)
		return n
	case bytesType:
		_, n := consumeBytes(b)
		return n
	case startGroupType:
		if depth >= maxDepth {
			return -1
		}
		total := 0
		for {
			inNum, inType, n := consumeTag(b[total:])
			if n < 0 {
				return -1
			}
			total += n
			if inType == endGroupType {
				if inNum != num {
					return -1
				}
				return total
			}
			n = consumeValue(inNum, inType, b[total:], depth+1)
			if n < 0 {
				return -1
			}
			total += n
		}
	default: // an end-group without its start, or wire types 6 and 7
		return -1
	}
}

// Fields calls fn for each field of the encoded message b: with the
// value of a varint field, or the contents of a length-delimited one.
// Other fields are skipped. It is how the runtime reads the raw
// descriptors generated code embeds.
func Fields(b []byte, fn func(num int32, varint uint64, data []byte)) error {
	for len(b) > 0 {
		num, wireType, n := consumeTag(b)
		if n < 0 {
			return invalid()
		}
		b = b[n:]
		switch wireType {
		case varintType:
			v, n := consumeVarint(b)
			if n < 0 {
				return invalid()
			}
			fn(num, v, nil)
			b = b[n:]
		case bytesType:
			data, n := consumeBytes(b)
			if n < 0 {
				return invalid()
			}
			fn(num, 0, data)
			b = b[n:]
		default:
			n := consumeValue(num, wireType, b, 0)
			if n < 0 {
				return invalid()
			}
			b = b[n:]
		}
	}
	return nil
}
