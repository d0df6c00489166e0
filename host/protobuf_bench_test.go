package host

import (
	"testing"

	npb "github.com/libp2p/go-libp2p/p2p/security/noise/pb"
	"google.golang.org/protobuf/proto"
)

// BenchmarkProtobufNoisePayload writes and reads the Noise handshake
// payload, the protobuf message every connection carries. The file only
// uses the real runtime's API, so it runs unchanged against it, for a
// side-by-side figure (see the README, Binary size and start-up).
func BenchmarkProtobufNoisePayload(b *testing.B) {
	msg := &npb.NoiseHandshakePayload{
		IdentityKey: make([]byte, 36), IdentitySig: make([]byte, 64),
		Extensions: &npb.NoiseExtensions{StreamMuxers: []string{"/yamux/1.0.0"}},
	}
	b.Run("marshal", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := proto.Marshal(msg); err != nil {
				b.Fatal(err)
			}
		}
	})
	raw, err := proto.Marshal(msg)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			var m npb.NoiseHandshakePayload
			if err := proto.Unmarshal(raw, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
}
