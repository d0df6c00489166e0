package codec

import "encoding/binary"

// Limits bound what one decode may cost. Every field must be positive; use
// DefaultLimits and change what you need.
type Limits struct {
	MaxFrame  int // bytes in one frame body
	MaxDepth  int // nesting of arrays and maps
	MaxArray  int // elements in one array
	MaxMap    int // pairs in one map
	MaxString int // bytes in one byte or text string
}

// DefaultLimits suits every protocol of gardend: no message needs more.
func DefaultLimits() Limits {
	return Limits{
		MaxFrame:  DefaultMaxFrame,
		MaxDepth:  16,
		MaxArray:  4096,
		MaxMap:    1024,
		MaxString: DefaultMaxFrame,
	}
}

// scan checks that data is exactly one well-formed CBOR data item within
// limits, before any decoder allocates for it: it looks only at headers and
// never allocates in proportion to what a header announces. It rejects
// indefinite lengths, tags (gardend defines none) and simple values other than
// false, true, null and floats.
func scan(data []byte, lim Limits) error {
	// pending[i] is how many items are still expected at depth i+1.
	pending := make([]uint64, 0, 8)
	off := 0
	remaining := uint64(1) // items expected at top level
	for {
		if remaining == 0 {
			if len(pending) == 0 {
				break
			}
			remaining = pending[len(pending)-1]
			pending = pending[:len(pending)-1]
			continue
		}
		if off >= len(data) {
			return newError(ErrTruncated, off, "data ends where an item is expected")
		}
		start := off
		ib := data[off]
		off++
		major, ai := ib>>5, ib&0x1f
		var arg uint64
		switch {
		case ai < 24:
			arg = uint64(ai)
		case ai <= 27:
			size := 1 << (ai - 24)
			if len(data)-off < size {
				return newError(ErrTruncated, start, "header argument needs %d bytes", size)
			}
			switch size {
			case 1:
				arg = uint64(data[off])
			case 2:
				arg = uint64(binary.BigEndian.Uint16(data[off:]))
			case 4:
				arg = uint64(binary.BigEndian.Uint32(data[off:]))
			default:
				arg = binary.BigEndian.Uint64(data[off:])
			}
			off += size
		case ai == 31:
			return newError(ErrMalformed, start, "indefinite-length item (major type %d) is not allowed", major)
		default:
			return newError(ErrMalformed, start, "reserved additional information %d", ai)
		}
		remaining--
		switch major {
		case 0, 1: // integers: header only
		case 2, 3: // byte and text strings
			if arg > uint64(lim.MaxString) {
				return newError(ErrLimit, start, "string of %d bytes exceeds the %d-byte limit", arg, lim.MaxString)
			}
			if arg > uint64(len(data)-off) {
				return newError(ErrTruncated, start, "string of %d bytes but only %d remain", arg, len(data)-off)
			}
			off += int(arg)
		case 4, 5:
			count, what, limit := arg, "array", uint64(lim.MaxArray)
			if major == 5 {
				what, limit = "map", uint64(lim.MaxMap)
			}
			if arg > limit {
				return newError(ErrLimit, start, "%s of %d entries exceeds the limit of %d", what, arg, limit)
			}
			if major == 5 {
				count = 2 * arg
			}
			if count == 0 {
				continue
			}
			// Every item takes at least one byte: a count larger than what is
			// left cannot be honest, whatever the limits say.
			if count > uint64(len(data)-off) {
				return newError(ErrTruncated, start, "%s announces %d items but only %d bytes remain", what, arg, len(data)-off)
			}
			if len(pending)+1 > lim.MaxDepth {
				return newError(ErrLimit, start, "nesting deeper than %d levels", lim.MaxDepth)
			}
			pending = append(pending, remaining)
			remaining = count
		case 6:
			return newError(ErrMalformed, start, "tag %d is not allowed", arg)
		case 7:
			switch {
			case ai == 20 || ai == 21 || ai == 22: // false, true, null
			case ai >= 25 && ai <= 27: // half, single, double float
			default:
				return newError(ErrMalformed, start, "simple value %d is not allowed", arg)
			}
		}
	}
	if off != len(data) {
		return newError(ErrMalformed, off, "%d trailing bytes after the data item", len(data)-off)
	}
	return nil
}
