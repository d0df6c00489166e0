// Package protobuf is gardend's stand-in for google.golang.org/protobuf
// (go.mod replaces the module with this directory). It holds only the
// module's documentation; the packages are proto, reflect/protoreflect and
// runtime/protoimpl, the three that go-libp2p's generated messages and
// their callers import, and internal/wire, the codec behind them.
//
// Why: the real runtime links about 0.6 MB of symbols (a descriptor-driven,
// reflective implementation with text and JSON formats, registries and
// gzip) into every gardend binary, most of it for features nothing here
// calls. go-libp2p uses protobuf for a handful of small messages (keys,
// the Noise handshake payload, signed envelopes and peer records; the DHT
// and identify on the ground) and only marshals and unmarshals them. This
// stand-in does exactly that from the generated structs' field tags, byte
// for byte as the real runtime does (gardend's host/protobuf_test.go holds
// the real runtime's encodings of go-libp2p's messages and compares), so a
// gardend peer built with it talks to one built without it.
//
// What it offers: proto.Marshal, Unmarshal, Size, Merge and the pointer
// helpers; the generated code's runtime (message state, enum names from
// the raw descriptor, version checks). What it refuses, with an error at
// the first use: oneof and map fields and groups, which no linked message
// declares. There is no reflection API, registry, text or JSON format:
// if a go-libp2p upgrade calls one, the build fails; add only what it
// needs, and an encoding test beside it.
package protobuf
