// Package freeport picks loopback TCP ports for tests that must name a
// port in a configuration before the daemon that listens on it starts.
//
// Such a port can be taken between the pick and the daemon's bind. A port
// from the kernel's ephemeral range (where listening on port 0 picks) can
// be taken by anything on the machine: every outgoing connection's local
// port comes from that range too, and CI runs many packages' tests at
// once (seen: "bind: address already in use" for a metrics port). So the
// ports are picked at random below that range, where the kernel never
// assigns one by itself; only another test naming the same port could
// take it.
package freeport

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// lowest is the bottom of the range picked from: above the well-known and
// most registered services' ports.
const lowest = 10000

// Port returns a loopback TCP port below the ephemeral range that nobody
// listens on right now.
func Port(t testing.TB) int {
	t.Helper()
	if top := ephemeralStart(); top > lowest {
		for range 200 {
			p := lowest + rand.IntN(top-lowest)
			if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p))); err == nil {
				l.Close()
				return p
			}
		}
	}
	// No room below the range (or every try taken): let the kernel pick.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Addr is Port as a host:port address on 127.0.0.1.
func Addr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(Port(t)))
}

// ephemeralStart is the first port of the kernel's ephemeral range
// (Linux's default when it cannot be read).
func ephemeralStart() int {
	b, _ := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if f := strings.Fields(string(b)); len(f) > 0 {
		if lo, err := strconv.Atoi(f[0]); err == nil {
			return lo
		}
	}
	return 32768
}
