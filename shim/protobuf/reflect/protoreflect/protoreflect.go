// Package protoreflect stands in for the real package's few names that
// generated code and go-libp2p mention. It offers no reflection: messages
// are marshalled from their struct tags by google.golang.org/protobuf/proto.
package protoreflect

// ProtoMessage is implemented by every generated message.
type ProtoMessage interface{ ProtoReflect() Message }

// Message is what a generated message's ProtoReflect returns.
type Message interface {
	// IsValid reports whether the message is non-nil.
	IsValid() bool
}

// EnumNumber is an enum value's number.
type EnumNumber int32

// EnumDescriptor names the values of one enum declaration.
type EnumDescriptor interface {
	// ValueName returns the name of value n and whether the enum declares it.
	ValueName(n EnumNumber) (string, bool)
	// ValueNumber returns the number of the value called name.
	ValueNumber(name string) (EnumNumber, bool)
}

// EnumType is implemented by the generated code's enum type information.
type EnumType interface{ Descriptor() EnumDescriptor }

// FileDescriptor describes one generated .proto file.
type FileDescriptor interface {
	// Path is the file's path as protoc saw it.
	Path() string
}
