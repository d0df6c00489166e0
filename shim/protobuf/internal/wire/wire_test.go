package wire

import (
	"encoding/hex"
	"errors"
	"math"
	"reflect"
	"testing"
)

// scalars has one field of each kind go-libp2p's messages do not use
// today; gardend's host tests compare the ones they do use with the real
// runtime. Expected bytes are worked out from the encoding guide
// (https://protobuf.dev/programming-guides/encoding/).
type scalars struct {
	Varint   int32    `protobuf:"varint,1,opt,name=varint,proto3"`
	Sint32   int32    `protobuf:"zigzag32,2,opt,name=sint32,proto3"`
	Sint64   int64    `protobuf:"zigzag64,3,opt,name=sint64,proto3"`
	Sfixed32 int32    `protobuf:"fixed32,4,opt,name=sfixed32,proto3"`
	Double   float64  `protobuf:"fixed64,5,opt,name=double,proto3"`
	Bool     bool     `protobuf:"varint,6,opt,name=bool,proto3"`
	Int64    int64    `protobuf:"varint,7,opt,name=int64,proto3"`
	Packed   []int32  `protobuf:"varint,8,rep,packed,name=packed"`
	Str      string   `protobuf:"bytes,9,opt,name=str,proto3"`
	Float    *float32 `protobuf:"fixed32,10,opt,name=float"`
	Fixed64  []uint64 `protobuf:"fixed64,11,rep,name=fixed64"`
	Uint32   *uint32  `protobuf:"varint,12,opt,name=uint32"`

	unknownFields []byte
}

type withMap struct {
	M map[string]string `protobuf:"bytes,1,rep,name=m" protobuf_key:"bytes,1,opt,name=key" protobuf_val:"bytes,2,opt,name=value"`
}

func TestScalarKindsAsTheEncodingGuideSays(t *testing.T) {
	one := float32(1)
	seven := uint32(7)
	for _, c := range []struct {
		name string
		msg  scalars
		want string
	}{
		{"varint 150", scalars{Varint: 150}, "089601"},
		{"negative int32 takes ten bytes", scalars{Varint: -1}, "08ffffffffffffffffff01"},
		{"zigzag32 -1", scalars{Sint32: -1}, "1001"},
		{"zigzag32 1", scalars{Sint32: 1}, "1002"},
		{"zigzag64 -3", scalars{Sint64: -3}, "1805"},
		{"sfixed32 -1", scalars{Sfixed32: -1}, "25ffffffff"},
		{"double 1", scalars{Double: 1}, "29000000000000f03f"},
		{"double -0 is present", scalars{Double: math.Copysign(0, -1)}, "290000000000000080"},
		{"bool", scalars{Bool: true}, "3001"},
		{"int64 -1", scalars{Int64: -1}, "38ffffffffffffffffff01"},
		{"packed", scalars{Packed: []int32{1, 2, 300}}, "42040102ac02"},
		{"string", scalars{Str: "hi"}, "4a026869"},
		{"float through a pointer", scalars{Float: &one}, "550000803f"},
		{"repeated fixed64, unpacked", scalars{Fixed64: []uint64{1, 2}}, "590100000000000000590200000000000000"},
		{"uint32 through a pointer", scalars{Uint32: &seven}, "6007"},
		{"zero values are absent in proto3", scalars{}, ""},
	} {
		b, err := Marshal(nil, &c.msg, false)
		if err != nil || hex.EncodeToString(b) != c.want {
			t.Errorf("%s: %x (%v), want %s", c.name, b, err, c.want)
			continue
		}
		var back scalars
		if err := Unmarshal(b, &back, false); err != nil {
			t.Errorf("%s: reading back: %v", c.name, err)
			continue
		}
		if b2, _ := Marshal(nil, &back, false); !reflect.DeepEqual(b2, b) {
			t.Errorf("%s: read back as %+v", c.name, back)
		}
	}
}

func TestPackedAndUnpackedAreBothRead(t *testing.T) {
	var m scalars
	// field 8 unpacked (a 1 and a 2), then packed (3); field 11 packed.
	raw, _ := hex.DecodeString("08010801" + "4001" + "4002" + "420103" + "5a10" + "0100000000000000" + "0200000000000000")
	if err := Unmarshal(raw, &m, false); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m.Packed, []int32{1, 2, 3}) || !reflect.DeepEqual(m.Fixed64, []uint64{1, 2}) {
		t.Fatalf("packed %v, fixed64 %v", m.Packed, m.Fixed64)
	}
}

func TestRefusedShapesAreTypedErrors(t *testing.T) {
	_, err := Marshal(nil, &withMap{M: map[string]string{"a": "b"}}, false)
	if !errors.Is(err, &Error{}) {
		t.Fatalf("map field: %v", err)
	}
	if err := Unmarshal(nil, (*scalars)(nil), false); !errors.Is(err, &Error{}) {
		t.Fatalf("nil message: %v", err)
	}
	if _, err := Marshal(nil, &scalars{Str: "\xff"}, false); !errors.Is(err, &Error{}) {
		t.Fatalf("invalid UTF-8 written: %v", err)
	}
}

func TestDeepNestingIsRefused(t *testing.T) {
	// An unknown group nested past the recursion limit.
	var raw []byte
	for i := 0; i <= maxDepth+1; i++ {
		raw = append(raw, 0x1b) // field 3, start group
	}
	var m scalars
	if err := Unmarshal(raw, &m, false); !errors.Is(err, &Error{}) {
		t.Fatalf("deep groups: %v", err)
	}
}

func FuzzUnmarshal(f *testing.F) {
	f.Add([]byte{0x08, 0x96, 0x01})
	f.Add([]byte{0x42, 0x04, 0x01, 0x02, 0xac, 0x02})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m scalars
		if err := Unmarshal(b, &m, false); err != nil {
			return
		}
		once, err := Marshal(nil, &m, false)
		if err != nil {
			t.Fatalf("read %x, cannot write it: %v", b, err)
		}
		var again scalars
		if err := Unmarshal(once, &again, false); err != nil {
			t.Fatal(err)
		}
		if twice, _ := Marshal(nil, &again, false); !reflect.DeepEqual(once, twice) {
			t.Fatalf("%x written as %x then %x", b, once, twice)
		}
	})
}
