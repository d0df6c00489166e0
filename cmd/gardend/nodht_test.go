//go:build nodht

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gardend/host"
)

// The nano build runs an indexer without the DHT when the configuration
// leaves [indexer] dht to its default (TestRunServesStatusAndStopsCleanly
// runs one in this build), and refuses clearly when it asks for the DHT.
func TestNoDHTBuildRefusesAnIndexerAskingForTheDHT(t *testing.T) {
	dir := t.TempDir()
	pskFile := filepath.Join(dir, "psk.key")
	if err := host.WriteNewPSK(pskFile); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "id.key")
	if code, _, errOut := runCLI(t, "keygen", "--key", key); code != exitOK {
		t.Fatal(errOut)
	}
	cfg := filepath.Join(dir, "gardend.toml")
	os.WriteFile(cfg, []byte(`name = "ground-test"
roles = ["master", "indexer"]
data_dir = "`+dir+`"
listen = ["/ip4/127.0.0.1/tcp/0"]
psk_file = "`+pskFile+`"
key = "`+key+`"
log_level = "warn"
[indexer]
dht = true
`), 0o600)
	code, _, e := runCLI(t, "run", "--config", cfg)
	if code != exitFailure || !strings.Contains(e, "gardend.toml:9: [indexer] dht = true, but this gardend build leaves the DHT out") {
		t.Fatalf("an indexer asking for the DHT in the nano build: exit %d, %q", code, e)
	}
}
