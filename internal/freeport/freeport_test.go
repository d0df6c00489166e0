package freeport

import (
	"net"
	"strconv"
	"testing"
)

// The ports come from below the kernel's ephemeral range, and are free.
func TestPortIsFreeAndBelowTheEphemeralRange(t *testing.T) {
	top := ephemeralStart()
	if top <= lowest {
		t.Skipf("ephemeral range starts at %d: no room below it, the kernel picks", top)
	}
	for range 20 {
		p := Port(t)
		if p < lowest || p >= top {
			t.Fatalf("port %d, want one in [%d, %d)", p, lowest, top)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("port %d is not free: %v", p, err)
		}
		l.Close()
	}
}
