//go:build nodht

package main

import (
	"strings"
	"testing"
)

// The nano build runs an indexer without the DHT when the configuration
// leaves [indexer] dht to its default (TestRunServesStatusAndStopsCleanly
// runs one in this build), and refuses clearly when it asks for the DHT.
func TestNoDHTBuildRefusesAnIndexerAskingForTheDHT(t *testing.T) {
	cfg := groundConfig(t, t.TempDir(), "[indexer]\ndht = true\n")
	code, _, e := runCLI(t, "run", "--config", cfg)
	if code != exitFailure || !strings.Contains(e, "gardend.toml:9: [indexer] dht = true, but this gardend build leaves the DHT out") {
		t.Fatalf("an indexer asking for the DHT in the nano build: exit %d, %q", code, e)
	}
}
