package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gardend/fleet"
	"gardend/host"
	"gardend/internal/freeport"
)

// daemonProc is a `gardend run` in this process.
type daemonProc struct {
	sock   string
	errOut *syncBuffer
	cancel context.CancelFunc
	done   chan int
}

// startRun runs `gardend run --config cfg` and waits for its control socket.
func startRun(t *testing.T, cfg, sock string) *daemonProc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &daemonProc{sock: sock, errOut: new(syncBuffer), cancel: cancel, done: make(chan int, 1)}
	go func() {
		d.done <- run(ctx, &env{stdout: new(syncBuffer), stderr: d.errOut, getenv: os.Getenv}, []string{"run", "--config", cfg})
	}()
	t.Cleanup(d.stop)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if code, _, _ := runCLI(t, "status", "--socket", sock); code == exitOK {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not up: %s", d.errOut.String())
		}
	}
}

func (d *daemonProc) stop() {
	d.cancel()
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
	}
}

// nanoConfig writes the configuration of a continuous nano of the master
// at masterAddr (a libp2p multiaddr) and returns its path.
func nanoConfig(t *testing.T, dir, name, key, pskFile, masterID, masterAddr string) string {
	cfg := filepath.Join(dir, name+".toml")
	os.WriteFile(cfg, []byte(`name = "`+name+`"
roles = ["nano"]
data_dir = "`+filepath.Join(dir, name)+`"
listen = ["/ip4/127.0.0.1/tcp/0"]
psk_file = "`+pskFile+`"
key = "`+key+`"
log_level = "warn"
[master]
peer_id = "`+masterID+`"
addrs = ["`+masterAddr+`"]
`), 0o600)
	return cfg
}

// masterOfOneConfig writes dir/ground.toml: a master at addr with one nano
// (nanoID), nanoExtra appended to its [[nanos]] table.
func masterOfOneConfig(t *testing.T, dir, key, pskFile, addr, nanoID, nanoExtra string) string {
	cfg := filepath.Join(dir, "ground.toml")
	if err := os.WriteFile(cfg, []byte(`name = "ground"
roles = ["master"]
data_dir = "`+filepath.Join(dir, "ground")+`"
listen = ["`+addr+`"]
psk_file = "`+pskFile+`"
key = "`+key+`"
log_level = "warn"
[[nanos]]
peer_id = "`+nanoID+`"
`+nanoExtra), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// groundAndNanoFiles makes, in dir, what a ground and a nano share (a PSK)
// and their keys, and picks the ground's address.
func groundAndNanoFiles(t *testing.T, dir string) (pskFile, key, nanoKey, groundID, nanoID, groundAddr string) {
	pskFile = filepath.Join(dir, "psk.key")
	if err := host.WriteNewPSK(pskFile); err != nil {
		t.Fatal(err)
	}
	key, nanoKey = filepath.Join(dir, "id.key"), filepath.Join(dir, "nano.key")
	_, groundOut, _ := runCLI(t, "keygen", "--key", key)
	_, nanoOut, _ := runCLI(t, "keygen", "--key", nanoKey)
	groundID, nanoID = peerIDFrom(t, groundOut), peerIDFrom(t, nanoOut)
	groundAddr = "/ip4/127.0.0.1/tcp/" + strconv.Itoa(freeport.Port(t))
	return
}

func peerIDFrom(t *testing.T, keygenOut string) string {
	for _, f := range strings.Fields(keygenOut) {
		if strings.HasPrefix(f, "12D3KooW") {
			return f
		}
	}
	t.Fatalf("no peer ID in %q", keygenOut)
	return ""
}

// fleetLs runs `gardend fleet ls --json`.
func fleetLs(t *testing.T, sock string) []fleet.Row {
	code, out, e := runCLI(t, "fleet", "ls", "--socket", sock, "--json")
	if code != exitOK {
		t.Fatalf("fleet ls: %d %s", code, e)
	}
	var rows []fleet.Row
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("fleet ls --json: %v: %s", err, out)
	}
	return rows
}

func fleetShow(t *testing.T, sock, nano string) fleet.ShowReport {
	code, out, e := runCLI(t, "fleet", "show", nano, "--socket", sock, "--json")
	if code != exitOK {
		t.Fatalf("fleet show: %d %s", code, e)
	}
	var sr fleet.ShowReport
	if err := json.Unmarshal([]byte(out), &sr); err != nil {
		t.Fatalf("fleet show --json: %v: %s", err, out)
	}
	return sr
}

// TestFleetThroughTheCLI: a ground and a nano, two real `gardend run`s on
// loopback. The nano's health report shows in `fleet ls` and `fleet show`;
// settings pushed with `fleet push` are applied on board and confirmed; a
// key that may not change in flight is refused at once, naming it.
func TestFleetThroughTheCLI(t *testing.T) {
	dir := t.TempDir()
	pskFile, key, nanoKey, groundID, nanoID, groundAddr := groundAndNanoFiles(t, dir)
	cfg := masterOfOneConfig(t, dir, key, pskFile, groundAddr, nanoID, "")
	ground := startRun(t, cfg, filepath.Join(dir, "ground", "control.sock"))
	startRun(t, nanoConfig(t, dir, "sat-1", nanoKey, pskFile, groundID, groundAddr), filepath.Join(dir, "sat-1", "control.sock"))

	var row fleet.Row
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		rows := fleetLs(t, ground.sock)
		if len(rows) == 1 && rows[0].ReportAge != nil {
			row = rows[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no report in fleet ls: %+v", rows)
		}
	}
	if row.Name != "sat-1" || row.Peer != nanoID || !row.Connected || !strings.HasPrefix(row.Software, version) {
		t.Fatalf("fleet ls row: %+v", row)
	}
	if code, out, _ := runCLI(t, "fleet", "ls", "--socket", ground.sock); code != exitOK || !strings.Contains(out, "sat-1") || !strings.Contains(out, "REPORT AGE") {
		t.Fatalf("fleet ls table: %d %q", code, out)
	}
	settings := filepath.Join(dir, "settings.toml")
	os.WriteFile(settings, []byte("log_level = \"info\"\nhealth_interval = \"30s\"\n"), 0o600)
	if code, out, e := runCLI(t, "fleet", "push", "--socket", ground.sock, "--nano", "sat-1", "--settings", settings); code != exitOK || !strings.Contains(out, "version 1") {
		t.Fatalf("fleet push: %d %q %q", code, out, e)
	}
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		sr := fleetShow(t, ground.sock, "sat-1")
		if len(sr.Pushes) == 1 && sr.Pushes[0].Status == "applied" {
			if sr.Latest == nil || len(sr.Latest.Report.InForce) != 1 || sr.Latest.Report.InForce[0].Version != 1 {
				t.Fatalf("applied but not in the report: %+v", sr.Latest)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("push not applied: %+v", sr.Pushes)
		}
	}
	os.WriteFile(settings, []byte("log_level = \"info\"\nroles = [\"master\"]\n"), 0o600)
	if code, _, e := runCLI(t, "fleet", "push", "--socket", ground.sock, "--nano", nanoID, "--settings", settings); code != exitFailure || !strings.Contains(e, "line 2: roles: may not change in flight") {
		t.Fatalf("a forbidden key pushed: %d %q", code, e)
	}
	if code, out, _ := runCLI(t, "fleet", "show", "sat-1", "--socket", ground.sock); code != exitOK || !strings.Contains(out, "roles: may not change in flight") || !strings.Contains(out, "settings version 1 in force") {
		t.Fatalf("fleet show: %d %q", code, out)
	}
}
