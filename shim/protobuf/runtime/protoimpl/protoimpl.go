// Package protoimpl stands in for the runtime that protoc-gen-go's
// generated code calls: message state, type and enum information, the
// file builder run at package initialisation, and the Export helpers.
// It keeps what generated code needs to compile and behave (enum names
// for String, the message state ProtoReflect returns); marshalling is in
// package proto.
package protoimpl

import (
	"strconv"
	"sync"
	"sync/atomic"
	"unsafe"

	"google.golang.org/protobuf/internal/wire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The generated code checks these at compile time: 20 is the version of
// the code protoc-gen-go 1.20 and later generate.
const (
	MinVersion = 0
	MaxVersion = 20
)

// EnforceVersion fails to compile generated code of another version.
type EnforceVersion uint

// Pointer is an untyped pointer to a generated message.
type Pointer = unsafe.Pointer

// UnknownFields holds the encoded fields a message did not declare.
type UnknownFields = []byte

// SizeCache is a generated message's cached size; this runtime does not
// use it.
type SizeCache = int32

// MessageState is the first field of every generated message.
type MessageState struct {
	_    [0]func()     // not comparable
	_    [0]sync.Mutex // not to be copied (go vet)
	info atomic.Pointer[MessageInfo]
}

// LoadMessageInfo returns the type information stored by ProtoReflect.
func (s *MessageState) LoadMessageInfo() *MessageInfo { return s.info.Load() }

// StoreMessageInfo records the message's type information.
func (s *MessageState) StoreMessageInfo(mi *MessageInfo) { s.info.Store(mi) }

// WireCache returns the codec's cache for the message's type, once
// ProtoReflect has stored the type's information.
func (s *MessageState) WireCache() *wire.Cache {
	if mi := s.info.Load(); mi != nil {
		return &mi.wire
	}
	return nil
}

// IsValid reports that the message exists.
func (s *MessageState) IsValid() bool { return s != nil }

// MessageInfo is a generated message type's information.
type MessageInfo struct {
	// OneofWrappers lists a message's oneof wrapper types; generated code
	// sets it for proto3 optional fields. Unused here.
	OneofWrappers []any

	wire wire.Cache // the codec's layout of the type
}

// MessageOf returns the reflective view of a nil message.
func (mi *MessageInfo) MessageOf(m any) protoreflect.Message { return nilMessage{} }

type nilMessage struct{}

func (nilMessage) IsValid() bool { return false }

// EnumInfo is a generated enum type's information.
type EnumInfo struct {
	Desc protoreflect.EnumDescriptor
}

// Descriptor returns the enum's value names; nil until the file is built.
func (e *EnumInfo) Descriptor() protoreflect.EnumDescriptor { return e.Desc }

// DescBuilder describes a generated file.
type DescBuilder struct {
	GoPackagePath string
	// RawDescriptor is the file's FileDescriptorProto, encoded.
	RawDescriptor []byte
	NumEnums      int32
	NumMessages   int32
	NumExtensions int32
	NumServices   int32
}

// TypeBuilder builds a generated file's types at package initialisation.
type TypeBuilder struct {
	File              DescBuilder
	GoTypes           []any
	DependencyIndexes []int32
	EnumInfos         []EnumInfo
	MessageInfos      []MessageInfo
}

// Out is what Build returns.
type Out struct {
	File protoreflect.FileDescriptor
}

// Build gives the enums their descriptors. They read their value names
// from the raw descriptor on first use, not here: a program's
// initialisation only records where they are.
func (tb TypeBuilder) Build() Out {
	f := &lazyFile{raw: tb.File.RawDescriptor, numEnums: len(tb.EnumInfos)}
	for i := range tb.EnumInfos {
		tb.EnumInfos[i].Desc = lazyEnum{file: f, index: i}
	}
	return Out{File: f}
}

// lazyFile is a generated file's raw descriptor, read once when needed.
type lazyFile struct {
	once     sync.Once
	raw      []byte
	numEnums int
	path     string
	enums    []protoreflect.EnumDescriptor
}

func (f *lazyFile) read() {
	f.once.Do(func() {
		path, enums := readFile(f.raw)
		f.path = path
		if len(enums) == f.numEnums { // else leave them unnamed: String prints numbers
			f.enums = enums
		}
	})
}

func (f *lazyFile) Path() string {
	f.read()
	return f.path
}

// lazyEnum is the index-th enum of a file.
type lazyEnum struct {
	file  *lazyFile
	index int
}

func (e lazyEnum) desc() protoreflect.EnumDescriptor {
	e.file.read()
	if e.index < len(e.file.enums) {
		return e.file.enums[e.index]
	}
	return nil
}

func (e lazyEnum) ValueName(n protoreflect.EnumNumber) (string, bool) {
	if d := e.desc(); d != nil {
		return d.ValueName(n)
	}
	return "", false
}

func (e lazyEnum) ValueNumber(name string) (protoreflect.EnumNumber, bool) {
	if d := e.desc(); d != nil {
		return d.ValueNumber(name)
	}
	return 0, false
}

// enumDesc is one enum's values.
type enumDesc struct {
	names   map[protoreflect.EnumNumber]string
	numbers map[string]protoreflect.EnumNumber
}

func (e *enumDesc) ValueName(n protoreflect.EnumNumber) (string, bool) {
	s, ok := e.names[n]
	return s, ok
}

func (e *enumDesc) ValueNumber(name string) (protoreflect.EnumNumber, bool) {
	n, ok := e.numbers[name]
	return n, ok
}

// Field numbers of descriptor.proto's messages read here.
const (
	filePath     = 1 // FileDescriptorProto.name
	fileMessages = 4 // FileDescriptorProto.message_type
	fileEnums    = 5 // FileDescriptorProto.enum_type
	msgNested    = 3 // DescriptorProto.nested_type
	msgEnums     = 4 // DescriptorProto.enum_type
	enumValues   = 2 // EnumDescriptorProto.value
	valueName    = 1 // EnumValueDescriptorProto.name
	valueNumber  = 2 // EnumValueDescriptorProto.number
)

// readFile returns a file's path and its enums in the generated code's
// "flattened" order: the file's own, then each message's, depth first.
// A descriptor it cannot read gives no enums.
func readFile(raw []byte) (string, []protoreflect.EnumDescriptor) {
	var path string
	_ = wire.Fields(raw, func(num int32, _ uint64, data []byte) {
		if num == filePath {
			path = string(data)
		}
	})
	enums, err := readEnums(raw, fileEnums, fileMessages)
	if err != nil {
		return path, nil
	}
	return path, enums
}

// readEnums returns the enums a file or message declares (in field
// enumsField), then those of its messages (in messagesField), recursively.
func readEnums(b []byte, enumsField, messagesField int32) ([]protoreflect.EnumDescriptor, error) {
	var enums []protoreflect.EnumDescriptor
	var messages [][]byte
	err := wire.Fields(b, func(num int32, _ uint64, data []byte) {
		switch num {
		case enumsField:
			enums = append(enums, readEnum(data))
		case messagesField:
			messages = append(messages, data)
		}
	})
	for _, m := range messages {
		if err != nil {
			break
		}
		var inner []protoreflect.EnumDescriptor
		inner, err = readEnums(m, msgEnums, msgNested)
		enums = append(enums, inner...)
	}
	return enums, err
}

func readEnum(data []byte) protoreflect.EnumDescriptor {
	e := &enumDesc{names: map[protoreflect.EnumNumber]string{}, numbers: map[string]protoreflect.EnumNumber{}}
	_ = wire.Fields(data, func(num int32, _ uint64, value []byte) {
		if num != enumValues {
			return
		}
		var name string
		var number protoreflect.EnumNumber
		_ = wire.Fields(value, func(num int32, v uint64, data []byte) {
			switch num {
			case valueName:
				name = string(data)
			case valueNumber:
				number = protoreflect.EnumNumber(int32(v))
			}
		})
		if _, dup := e.names[number]; !dup { // aliases: the first name wins
			e.names[number] = name
		}
		e.numbers[name] = number
	})
	return e
}

// Export holds the helpers generated code calls as protoimpl.X.
type Export struct{}

// X is the Export helpers.
var X Export

// MessageStateOf returns the state at the start of a generated message.
func (Export) MessageStateOf(p Pointer) *MessageState { return (*MessageState)(p) }

// MessageStringOf renders a message for logs.
func (Export) MessageStringOf(m protoreflect.ProtoMessage) string { return wire.Text(m) }

// EnumStringOf returns the name of value n, or its number if unnamed.
func (Export) EnumStringOf(ed protoreflect.EnumDescriptor, n protoreflect.EnumNumber) string {
	if ed != nil {
		if name, ok := ed.ValueName(n); ok {
			return name
		}
	}
	return strconv.Itoa(int(n))
}

// CompressGZIP serves the deprecated Descriptor methods of generated
// messages; this runtime returns the descriptor as it is, uncompressed.
func (Export) CompressGZIP(b []byte) []byte { return b }

// UnmarshalJSONEnum reads an enum written in JSON as a name or a number.
func (Export) UnmarshalJSONEnum(ed protoreflect.EnumDescriptor, b []byte) (protoreflect.EnumNumber, error) {
	if s, err := strconv.Unquote(string(b)); err == nil {
		if ed != nil {
			if n, ok := ed.ValueNumber(s); ok {
				return n, nil
			}
		}
		return 0, &wire.Error{Reason: "invalid value for enum: " + string(b)}
	}
	n, err := strconv.ParseInt(string(b), 10, 32)
	if err != nil {
		return 0, &wire.Error{Reason: "invalid value for enum: " + string(b)}
	}
	return protoreflect.EnumNumber(n), nil
}
