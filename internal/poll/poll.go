// Package poll waits in tests for a condition that real I/O brings about:
// two hosts connected, a delivery applied. It lives apart from the test
// networks so that every package's own tests can use it.
package poll

import (
	"testing"
	"time"
)

// Until polls cond until it holds, failing t once the deadline passes.
// The waits are on real I/O between real hosts; under qemu on a loaded
// machine that takes many times longer than natively, so no wait is shorter
// than a minute (it only costs time when something is broken).
func Until(t testing.TB, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(max(within, time.Minute))
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
