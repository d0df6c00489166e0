package host

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"

	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
)

// wireConn is a dialled connection whose listener sent wire.
type wireConn struct {
	net.Conn
	r io.Reader
}

func (c *wireConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// FuzzEagerAnswer feeds arbitrary listener answers to the check of an eager
// dial: multistream reads the expected answer at once; then the real one is
// either that answer, and what follows it passes through untouched, or the
// read fails with SecurityRefusedError (or the connection's end, if the
// wire stops short of a full answer).
func FuzzEagerAnswer(f *testing.F) {
	offered := protocol.ID(noise.ID)
	answer := multistreamAnswer(offered)
	f.Add(append(append([]byte{}, answer...), "noise reply"...))
	f.Add(answer[:5])
	f.Add(append(multistreamAnswer("/tls/1.0.0"), "x"...))
	f.Add(append(multistreamAnswer("na"), answer...))
	f.Fuzz(func(t *testing.T, wire []byte) {
		c := &eagerSecurityConn{Conn: &wireConn{r: bytes.NewReader(wire)}, answer: answer, offered: offered}
		served := make([]byte, len(answer))
		if _, err := io.ReadFull(c, served); err != nil || !bytes.Equal(served, answer) {
			t.Fatalf("multistream was not served the expected answer at once: %q, %v", served, err)
		}
		rest, err := io.ReadAll(c)
		switch {
		case bytes.HasPrefix(wire, answer):
			if err != nil || !bytes.Equal(rest, wire[len(answer):]) {
				t.Fatalf("after a right answer: read %q, %v; want %q", rest, err, wire[len(answer):])
			}
		case bytes.HasPrefix(answer, wire):
			if len(rest) != 0 || !errors.Is(err, io.ErrUnexpectedEOF) && !(len(wire) == 0 && err == nil) {
				t.Fatalf("a wire cut inside the answer: read %q, %v", rest, err)
			}
		default:
			var refused *SecurityRefusedError
			if !errors.As(err, &refused) || len(rest) != 0 {
				t.Fatalf("a wrong answer %q: read %q, %v; want SecurityRefusedError", wire, rest, err)
			}
			if !bytes.HasPrefix(wire, refused.Answer) {
				t.Fatalf("the error quotes %q, not what the listener sent", refused.Answer)
			}
		}
	})
}
