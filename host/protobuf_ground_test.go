//go:build !nodht

package host

import (
	"testing"

	dhtpb "github.com/libp2p/go-libp2p-kad-dht/pb"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	idpb "github.com/libp2p/go-libp2p/p2p/protocol/identify/pb"
	"google.golang.org/protobuf/proto"
)

// The ground's protobuf messages (the DHT's, identify's): see
// protobuf_test.go.

var groundProtobufEncodings = map[string]string{
	"dht message":              "080412036b65791a1c0a016b1201762a14323032362d31322d30315430303a30303a30305a420f0a0201021205040a0000011200180142004a050a0103180350ffffffffffffffffff01",
	"dht message, zero values": "",
	"identify":                 "0a0101120504010203041a022f611a062f622f312e3022002a00320967617264656e642f3242020506",
}

var groundProtobufDecodings = map[string]string{
	"open enum's unknown number kept":    "0863",
	"invalid UTF-8 in a proto3 string":   "error", // string field contains invalid UTF-8
	"invalid UTF-8 in a proto2 string":   "2a02ff61",
	"repeated fields appended":           "120201021a01611a0162",
	"negative cluster level":             "50ffffffffffffffffff01",
	"cluster level from a 64-bit varint": "50ffffffffffffffffff01",
}

func TestGroundProtobufEncodingsMatchTheRealRuntime(t *testing.T) {
	checkProtobufEncodings(t, groundProtobufSamples(), groundProtobufEncodings)
	checkProtobufDecodings(t, groundProtobufInputs(), groundProtobufDecodings)
}

// FuzzGroundProtobufDecode: the DHT's and identify's messages, as
// FuzzProtobufDecode.
func FuzzGroundProtobufDecode(f *testing.F) {
	for _, s := range groundProtobufSamples() {
		b, _ := proto.Marshal(s.msg)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkProtobufRoundTrip(t, b, func() proto.Message { return &dhtpb.Message{} })
		checkProtobufRoundTrip(t, b, func() proto.Message { return &idpb.Identify{} })
	})
}

func groundProtobufSamples() []protobufSample {
	empty := ""
	agent := "gardend/2"
	return []protobufSample{
		{"dht message", &dhtpb.Message{
			Type: dhtpb.Message_FIND_NODE, ClusterLevelRaw: -1, Key: []byte("key"),
			Record: &recpb.Record{Key: []byte("k"), Value: []byte("v"), TimeReceived: "2026-12-01T00:00:00Z"},
			CloserPeers: []*dhtpb.Message_Peer{
				{Id: []byte{1, 2}, Addrs: [][]byte{{4, 10, 0, 0, 1}, {}}, Connection: dhtpb.Message_CONNECTED},
				{},
			},
			ProviderPeers: []*dhtpb.Message_Peer{{Id: []byte{3}, Connection: dhtpb.Message_CANNOT_CONNECT}},
		}},
		{"dht message, zero values", &dhtpb.Message{Type: dhtpb.Message_PUT_VALUE, Key: []byte{}}},
		{"identify", &idpb.Identify{
			ProtocolVersion: &empty, AgentVersion: &agent, PublicKey: []byte{1},
			ListenAddrs: [][]byte{{4, 1, 2, 3, 4}}, ObservedAddr: []byte{}, Protocols: []string{"/a", "/b/1.0"},
			SignedPeerRecord: []byte{5, 6}}},
	}
}

func groundProtobufInputs() []protobufInput {
	dht := func() proto.Message { return &dhtpb.Message{} }
	id := func() proto.Message { return &idpb.Identify{} }
	return []protobufInput{
		{"open enum's unknown number kept", dht, "0863"},
		{"invalid UTF-8 in a proto3 string", dht, "1a052a03ff6161"},
		{"invalid UTF-8 in a proto2 string", id, "2a02ff61"},
		{"repeated fields appended", id, "1a01611a0162" + "12020102"},
		{"negative cluster level", dht, "50ffffffffffffffffff01"},
		{"cluster level from a 64-bit varint", dht, "50ffffffff0f"},
	}
}

// TestNestedProtobufEnumNames: the DHT's enums are declared inside its
// message, after the file's own: their names come in the generated code's
// order all the same.
func TestNestedProtobufEnumNames(t *testing.T) {
	if got := dhtpb.Message_FIND_NODE.String(); got != "FIND_NODE" {
		t.Errorf("Message_FIND_NODE.String() = %q", got)
	}
	if got := dhtpb.Message_CANNOT_CONNECT.String(); got != "CANNOT_CONNECT" {
		t.Errorf("Message_CANNOT_CONNECT.String() = %q", got)
	}
	m := &dhtpb.Message{Type: dhtpb.Message_PING, CloserPeers: []*dhtpb.Message_Peer{{Connection: dhtpb.Message_CONNECTED}}}
	if got, want := m.String(), "type:PING closerPeers:{connection:CONNECTED}"; got != want {
		t.Errorf("Message.String() = %s, want %s", got, want)
	}
}
