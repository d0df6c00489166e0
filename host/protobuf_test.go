package host

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	cpb "github.com/libp2p/go-libp2p/core/crypto/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	ppb "github.com/libp2p/go-libp2p/core/peer/pb"
	"github.com/libp2p/go-libp2p/core/record"
	rpb "github.com/libp2p/go-libp2p/core/record/pb"
	npb "github.com/libp2p/go-libp2p/p2p/security/noise/pb"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"
)

// gardend builds go-libp2p's protobuf messages with its own codec
// (shim/protobuf, replacing google.golang.org/protobuf). These tests hold
// the real runtime's answers, v1.36.12, the version go.mod names: what it
// wrote for each message below, and what it did with each input (re-encoded
// after reading, or "error"). They were produced by a throw-away program
// linking the real runtime with the same samples; a gardend peer must stay
// byte-compatible with go-libp2p peers built with it, peer IDs included.

// nanoProtobufEncodings: the real runtime's encoding of each sample.
var nanoProtobufEncodings = map[string]string{
	"public key":                      "080112203031323334353637383961626364656630313233343536373839616263646566",
	"private key, empty data":         "08001200",
	"noise payload":                   "0a203031323334353637383961626364656630313233343536373839616263646566120309080722160a0201020a00120c2f79616d75782f312e302e301200",
	"noise payload, empty signature":  "1200",
	"noise payload, empty extensions": "2200",
	"envelope":                        "0a24080112203031323334353637383961626364656630313233343536373839616263646566120203011a077061796c6f61642a02ff00",
	"envelope, empty":                 "",
	"peer record":                     "0a040024080110858080808080808080011a070a05047f0000011a00",
}

// nanoProtobufDecodings: the real runtime's re-encoding of each input once
// read, or "error" when it refused it.
var nanoProtobufDecodings = map[string]string{
	"fields backwards":                               "08011202abcd",
	"a field twice: the last wins":                   "08001201ff",
	"unknown fields kept":                            "080112010118052a036162633d01020304410102030405060708",
	"a field of the wrong wire type kept as unknown": "08011202abcd0d01020304",
	"an enum's unnamed number kept":                  "08091202abcd",
	"required type missing":                          "error", // proto: required field crypto.pb.PublicKey.Type not set
	"required data missing":                          "error", // proto: required field crypto.pb.PublicKey.Data not set
	"truncated bytes":                                "error", // proto: cannot parse invalid wire-format data
	"truncated varint":                               "error", // proto: cannot parse invalid wire-format data
	"varint over 64 bits":                            "error", // proto: cannot parse invalid wire-format data
	"field number zero":                              "error", // proto: cannot parse invalid wire-format data
	"end group alone":                                "error", // proto: cannot parse invalid wire-format data
	"wire type 6":                                    "error", // proto: cannot parse invalid wire-format data
	"an unknown group skipped":                       "08011201011b08011c",
	"an unknown group unterminated":                  "error", // proto: cannot parse invalid wire-format data
	"an unknown group ended by another number":       "error", // proto: cannot parse invalid wire-format data
	"nested message merged":                          "22090a0101120178120179",
	"nested message truncated":                       "error", // proto: cannot parse invalid wire-format data
	"a nested message's unknown field kept":          "1a020801",
	"seq as a ten-byte varint":                       "10ffffffffffffffffff01",
	"empty input":                                    "",
}

func TestNanoProtobufEncodingsMatchTheRealRuntime(t *testing.T) {
	checkProtobufEncodings(t, nanoProtobufSamples(), nanoProtobufEncodings)
	checkProtobufDecodings(t, nanoProtobufInputs(), nanoProtobufDecodings)
}

// TestSealedPeerRecordMatchesTheRealRuntime: a peer record sealed by a
// fixed Ed25519 key gives the envelope and peer ID the real runtime gave.
func TestSealedPeerRecordMatchesTheRealRuntime(t *testing.T) {
	const (
		wantID       = "12D3KooWRawPbxPtP1eZaJpumGnyWX2DcUyd3RQnydr3eAto4Az7"
		wantEnvelope = "0a2408011220ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c120203011a360a26002408011220ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c10071a0a0a08040a000001060fa12a400ce43c6df133e689bdab05510f65ba5e9a624abe7fb5fe45faffd6c01231c5403730e480e928f721a7cde4949bbb0acd3bb0b7d59f0b3c3f4c12f07ea65f0f00"
	)
	priv, _, err := crypto.GenerateEd25519Key(bytes.NewReader(bytes.Repeat([]byte{7}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if id.String() != wantID {
		t.Fatalf("peer ID %s, the real runtime gave %s", id, wantID)
	}
	rec := &peer.PeerRecord{PeerID: id, Addrs: []ma.Multiaddr{ma.StringCast("/ip4/10.0.0.1/tcp/4001")}, Seq: 7}
	env, err := record.Seal(rec, priv)
	if err != nil {
		t.Fatal(err)
	}
	b, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(b); got != wantEnvelope {
		t.Fatalf("sealed envelope\n got %s\nwant %s", got, wantEnvelope)
	}
	_, opened, err := record.ConsumeEnvelope(b, peer.PeerRecordEnvelopeDomain)
	if err != nil {
		t.Fatalf("opening the real runtime's envelope: %v", err)
	}
	if got := opened.(*peer.PeerRecord); got.PeerID != id || got.Seq != 7 || !got.Addrs[0].Equal(rec.Addrs[0]) {
		t.Fatalf("opened %+v, sealed %+v", got, rec)
	}
}

func checkProtobufEncodings(t *testing.T, samples []protobufSample, want map[string]string) {
	t.Helper()
	if len(samples) != len(want) {
		t.Fatalf("%d samples, %d answers of the real runtime", len(samples), len(want))
	}
	for _, s := range samples {
		b, err := proto.Marshal(s.msg)
		if err != nil {
			t.Errorf("%s: %v", s.name, err)
			continue
		}
		if got := hex.EncodeToString(b); got != want[s.name] {
			t.Errorf("%s:\n got %s\nwant %s", s.name, got, want[s.name])
		}
		if proto.Size(s.msg) != len(b) {
			t.Errorf("%s: Size %d, encoding %d bytes", s.name, proto.Size(s.msg), len(b))
		}
		again := reflect.New(reflect.TypeOf(s.msg).Elem()).Interface().(proto.Message)
		if err := proto.Unmarshal(b, again); err != nil {
			t.Errorf("%s: reading it back: %v", s.name, err)
		} else if b2, _ := proto.Marshal(again); !bytes.Equal(b2, b) {
			t.Errorf("%s: read back and written again: %x", s.name, b2)
		}
	}
}

func checkProtobufDecodings(t *testing.T, inputs []protobufInput, want map[string]string) {
	t.Helper()
	if len(inputs) != len(want) {
		t.Fatalf("%d inputs, %d answers of the real runtime", len(inputs), len(want))
	}
	for _, in := range inputs {
		raw, err := hex.DecodeString(in.hex)
		if err != nil {
			t.Fatal(err)
		}
		m := in.fresh()
		err = proto.Unmarshal(raw, m)
		switch {
		case want[in.name] == "error" && err == nil:
			t.Errorf("%s: read, the real runtime refused it", in.name)
		case want[in.name] == "error":
			if !errors.Is(err, proto.Error) {
				t.Errorf("%s: error %v does not match proto.Error", in.name, err)
			}
		case err != nil:
			t.Errorf("%s: %v; the real runtime read it", in.name, err)
		default:
			b, err := proto.Marshal(m)
			if got := hex.EncodeToString(b); err != nil || got != want[in.name] {
				t.Errorf("%s: written again as %s (%v), the real runtime wrote %s", in.name, got, err, want[in.name])
			}
		}
	}
}

// FuzzProtobufDecode reads hostile bytes as each message a nano reads off
// the network: never a panic, and what is read writes back stably.
func FuzzProtobufDecode(f *testing.F) {
	for _, in := range nanoProtobufInputs() {
		raw, _ := hex.DecodeString(in.hex)
		f.Add(raw)
	}
	for _, s := range nanoProtobufSamples() {
		b, _ := proto.Marshal(s.msg)
		f.Add(b)
	}
	fresh := []func() proto.Message{
		func() proto.Message { return &cpb.PublicKey{} },
		func() proto.Message { return &npb.NoiseHandshakePayload{} },
		func() proto.Message { return &rpb.Envelope{} },
		func() proto.Message { return &ppb.PeerRecord{} },
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, newMsg := range fresh {
			checkProtobufRoundTrip(t, b, newMsg)
		}
	})
}

func checkProtobufRoundTrip(t *testing.T, b []byte, newMsg func() proto.Message) {
	m := newMsg()
	if err := proto.Unmarshal(b, m); err != nil {
		if !errors.Is(err, proto.Error) {
			t.Fatalf("%T: untyped error %v", m, err)
		}
		return
	}
	once, err := proto.Marshal(m)
	if err != nil {
		t.Fatalf("%T read %x, cannot write it: %v", m, b, err)
	}
	again := newMsg()
	if err := proto.Unmarshal(once, again); err != nil {
		t.Fatalf("%T wrote %x, cannot read it: %v", m, once, err)
	}
	if twice, _ := proto.Marshal(again); !bytes.Equal(once, twice) {
		t.Fatalf("%T: %x written as %x, then as %x", m, b, once, twice)
	}
}

// protobufSample is one of go-libp2p's messages as gardend writes it.
type protobufSample struct {
	name string
	msg  proto.Message
}

// protobufInput is an encoding read into a fresh message of one type.
type protobufInput struct {
	name  string
	fresh func() proto.Message
	hex   string
}

func nanoProtobufSamples() []protobufSample {
	ed := cpb.KeyType_Ed25519
	rsa := cpb.KeyType_RSA
	key32 := []byte("0123456789abcdef0123456789abcdef")
	return []protobufSample{
		{"public key", &cpb.PublicKey{Type: &ed, Data: key32}},
		{"private key, empty data", &cpb.PrivateKey{Type: &rsa, Data: []byte{}}},
		{"noise payload", &npb.NoiseHandshakePayload{
			IdentityKey: key32, IdentitySig: []byte{9, 8, 7},
			Extensions: &npb.NoiseExtensions{
				WebtransportCerthashes: [][]byte{{1, 2}, {}},
				StreamMuxers:           []string{"/yamux/1.0.0", ""},
			}}},
		{"noise payload, empty signature", &npb.NoiseHandshakePayload{IdentitySig: []byte{}}},
		{"noise payload, empty extensions", &npb.NoiseHandshakePayload{Extensions: &npb.NoiseExtensions{}}},
		{"envelope", &rpb.Envelope{
			PublicKey:   &cpb.PublicKey{Type: &ed, Data: key32},
			PayloadType: []byte{0x03, 0x01}, Payload: []byte("payload"), Signature: []byte{0xff, 0x00}}},
		{"envelope, empty", &rpb.Envelope{PayloadType: []byte{}}},
		{"peer record", &ppb.PeerRecord{
			PeerId: []byte{0, 36, 8, 1}, Seq: 1<<63 + 5,
			Addresses: []*ppb.PeerRecord_AddressInfo{{Multiaddr: []byte{4, 127, 0, 0, 1}}, {}}}},
	}
}

func nanoProtobufInputs() []protobufInput {
	pub := func() proto.Message { return &cpb.PublicKey{} }
	noise := func() proto.Message { return &npb.NoiseHandshakePayload{} }
	rec := func() proto.Message { return &ppb.PeerRecord{} }
	return []protobufInput{
		{"fields backwards", pub, "1202abcd0801"},
		{"a field twice: the last wins", pub, "08011202abcd08001201ff"},
		{"unknown fields kept", pub, "0801120101" + "1805" + "2a03616263" + "3d01020304" + "410102030405060708"},
		{"a field of the wrong wire type kept as unknown", pub, "08011202abcd" + "0d01020304"},
		{"an enum's unnamed number kept", pub, "08091202abcd"},
		{"required type missing", pub, "1202abcd"},
		{"required data missing", pub, "0801"},
		{"truncated bytes", pub, "080112050102"},
		{"truncated varint", pub, "0880"},
		{"varint over 64 bits", pub, "08ffffffffffffffffff7f"},
		{"field number zero", pub, "0001"},
		{"end group alone", pub, "0801120101" + "0c"},
		{"wire type 6", pub, "0801120101" + "0e"},
		{"an unknown group skipped", pub, "0801120101" + "1b" + "0801" + "1c"},
		{"an unknown group unterminated", pub, "0801120101" + "1b0801"},
		{"an unknown group ended by another number", pub, "0801120101" + "1b0801" + "24"},
		{"nested message merged", noise, "2203120178" + "22061201790a0101"},
		{"nested message truncated", noise, "2205120178"},
		{"a nested message's unknown field kept", rec, "1a020801"},
		{"seq as a ten-byte varint", rec, "10ffffffffffffffffff01"},
		{"empty input", rec, ""},
	}
}

// TestProtobufEnumNames: enums print their names (read from the raw
// descriptor on first use), unnamed numbers print as numbers, and a
// message prints its fields for logs.
func TestProtobufEnumNames(t *testing.T) {
	for k, want := range map[cpb.KeyType]string{
		cpb.KeyType_RSA: "RSA", cpb.KeyType_Ed25519: "Ed25519", cpb.KeyType_Secp256k1: "Secp256k1",
		cpb.KeyType_ECDSA: "ECDSA", cpb.KeyType(99): "99",
	} {
		if got := k.String(); got != want {
			t.Errorf("KeyType(%d).String() = %q, want %q", int32(k), got, want)
		}
	}
	var k cpb.KeyType
	if err := k.UnmarshalJSON([]byte(`"Secp256k1"`)); err != nil || k != cpb.KeyType_Secp256k1 {
		t.Errorf("KeyType from JSON name: %v, %v", k, err)
	}
	if err := k.UnmarshalJSON([]byte(`"Nope"`)); err == nil {
		t.Error("KeyType from an unknown JSON name was read")
	}
	ed := cpb.KeyType_Ed25519
	if got, want := (&cpb.PublicKey{Type: &ed, Data: []byte{1}}).String(), `Type:Ed25519 Data:"\x01"`; got != want {
		t.Errorf("PublicKey.String() = %s, want %s", got, want)
	}
}
