package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gardend/host"
)

// syncBuffer is a bytes.Buffer safe to write from the daemon and read here.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// groundConfig writes a network key, an identity and the configuration of
// a master and indexer named ground-test into dir, extra appended, and
// returns the configuration's path.
func groundConfig(t *testing.T, dir, extra string) string {
	t.Helper()
	pskFile := filepath.Join(dir, "psk.key")
	if err := host.WriteNewPSK(pskFile); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "id.key")
	if code, _, errOut := runCLI(t, "keygen", "--key", key); code != exitOK {
		t.Fatal(errOut)
	}
	cfg := filepath.Join(dir, "gardend.toml")
	if err := os.WriteFile(cfg, []byte(`name = "ground-test"
roles = ["master", "indexer"]
data_dir = "`+dir+`"
listen = ["/ip4/127.0.0.1/tcp/0"]
psk_file = "`+pskFile+`"
key = "`+key+`"
log_level = "warn"
`+extra), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestRunServesStatusAndStopsCleanly(t *testing.T) {
	dir := t.TempDir()
	cfg := groundConfig(t, dir, "")
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan int)
	go func() {
		done <- run(ctx, &env{stdout: &out, stderr: &errOut, getenv: os.Getenv}, []string{"run", "--config", cfg})
	}()
	sock := filepath.Join(dir, "control.sock")
	var status string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if code, o, _ := runCLI(t, "status", "--socket", sock); code == exitOK {
			status = o
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, want := range []string{"ground-test", "master+indexer", "indexer:", "dtn:"} {
		if !strings.Contains(status, want) {
			t.Errorf("status lacks %q:\n%s", want, status)
		}
	}
	if code, _, e := runCLI(t, "resource", "put", "--socket", sock, "--id", "antenna-1", "--body", "12 dBi"); code != exitOK {
		t.Fatalf("resource put: %d %s", code, e)
	}
	if code, o, _ := runCLI(t, "resource", "ls", "--socket", sock); code != exitOK || !strings.Contains(o, "antenna-1") {
		t.Fatalf("resource ls: %d\n%s", code, o)
	}
	if code, _, e := runCLI(t, "resource", "put", "--socket", sock, "--id", "x", "--owner", "nobody"); code != exitFailure || !strings.Contains(e, "owner") {
		t.Fatalf("bad owner: %d %s", code, e)
	}
	if st, err := os.Stat(sock); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("control socket mode: %v %v", st.Mode(), err)
	}
	// The store is held: the offline inspector says so instead of hanging.
	if code, _, e := runCLI(t, "dtn", "stats", "--config", cfg); code != exitFailure || !strings.Contains(e, "held") {
		t.Fatalf("dtn stats while running: %d %q", code, e)
	}
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("run exited %d: %s", code, errOut.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("run did not stop")
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatal("control socket left behind")
	}
	if code, _, _ := runCLI(t, "dtn", "stats", "--config", cfg); code != exitOK {
		t.Fatal("store not released after stop")
	}
}

// TestRunReportsAKeyThatCannotSign: a key file whose public block is
// another key's is refused by id and keygen, opens for run (the start
// derives nothing), and the daemon's first signature, made just after
// READY, reports it.
func TestRunReportsAKeyThatCannotSign(t *testing.T) {
	dir := t.TempDir()
	cfg := groundConfig(t, dir, "")
	key := filepath.Join(dir, "id.key")
	other := filepath.Join(dir, "other.key")
	if code, _, e := runCLI(t, "keygen", "--key", other); code != exitOK {
		t.Fatal(e)
	}
	own, _ := os.ReadFile(key)
	theirs, _ := os.ReadFile(other)
	_, pub, _ := strings.Cut(string(theirs), "-----END PRIVATE KEY-----\n")
	priv, _, _ := strings.Cut(string(own), "-----BEGIN PUBLIC KEY-----")
	if err := os.WriteFile(key, []byte(priv+pub), 0o600); err != nil {
		t.Fatal(err)
	}
	// The key commands sign once, so they say it before printing an ID.
	for _, cmd := range []string{"id", "keygen"} {
		if code, out, e := runCLI(t, cmd, "--key", key); code != exitFailure || out != "" || !strings.Contains(e, "PUBLIC KEY block") {
			t.Fatalf("%s on a mismatched key file: %d %q %q", cmd, code, out, e)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var errOut syncBuffer
	done := make(chan int)
	go func() {
		done <- run(ctx, &env{stdout: io.Discard, stderr: &errOut, getenv: os.Getenv}, []string{"run", "--config", cfg})
	}()
	// Generous: real start-up, under the race detector or qemu.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(errOut.String(), "cannot sign") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	if got := errOut.String(); !strings.Contains(got, "cannot sign") || !strings.Contains(got, "PUBLIC KEY block") {
		t.Fatalf("no report of the mismatched key; the daemon wrote:\n%s", got)
	}
}

func TestRunRefusesBadConfigAndMissingKey(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "bad.toml")
	os.WriteFile(cfg, []byte("roles = [\"nano\"]\n"), 0o600)
	if code, _, e := runCLI(t, "run", "--config", cfg); code != exitConfig || !strings.Contains(e, "master.peer_id") {
		t.Fatalf("bad config: %d %q", code, e)
	}
	os.WriteFile(cfg, []byte("roles = [\"indexer\"]\ndata_dir = \""+dir+"\"\nkey = \""+filepath.Join(dir, "none.key")+"\"\n"), 0o600)
	if code, _, e := runCLI(t, "run", "--config", cfg); code != exitFailure || !strings.Contains(e, "keygen") {
		t.Fatalf("missing key: %d %q", code, e)
	}
}

func TestRunOrbitalNanoFollowsItsPlan(t *testing.T) {
	dir := t.TempDir()
	pskFile := filepath.Join(dir, "psk.key")
	if err := host.WriteNewPSK(pskFile); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "id.key")
	runCLI(t, "keygen", "--key", key)
	aos := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	planFile := filepath.Join(dir, "plan.csv")
	os.WriteFile(planFile, []byte("start,end,rate\n"+aos.Format(time.RFC3339)+","+aos.Add(8*time.Minute).Format(time.RFC3339)+",64000\n"), 0o600)
	cfg := filepath.Join(dir, "nano.toml")
	os.WriteFile(cfg, []byte(`name = "sat-1"
roles = ["nano"]
data_dir = "`+dir+`"
listen = []
psk_file = "`+pskFile+`"
key = "`+key+`"
log_level = "error"
[master]
peer_id = "12D3KooWJDioB5uqnoQaKeSiPCkVFABp46QwYxPgYxP2kygmVFL5"
addrs = ["/ip4/127.0.0.1/tcp/9"]
[profile]
kind = "orbital"
plan_file = "`+planFile+`"
`), 0o600)
	if code, _, e := runCLI(t, "check-config", cfg); code != exitOK {
		t.Fatal(e)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var errOut syncBuffer
	done := make(chan int)
	go func() {
		done <- run(ctx, &env{stdout: &errOut, stderr: &errOut, getenv: os.Getenv}, []string{"run", "--config", cfg})
	}()
	var out string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if code, o, _ := runCLI(t, "status", "--socket", filepath.Join(dir, "control.sock")); code == exitOK {
			out = o
			break
		}
	}
	if !strings.Contains(out, "profile:   orbital (planned gap; next window "+aos.Format(time.RFC3339)+")") {
		t.Fatalf("status:\n%s\n%s", out, errOut.String())
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("run exited %d: %s", code, errOut.String())
	}
}

func TestRunRefusesAMissingWatchdogDevice(t *testing.T) {
	dir := t.TempDir()
	pskFile := filepath.Join(dir, "psk.key")
	if err := host.WriteNewPSK(pskFile); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "id.key")
	runCLI(t, "keygen", "--key", key)
	cfg := filepath.Join(dir, "g.toml")
	os.WriteFile(cfg, []byte(`roles = ["indexer"]
data_dir = "`+dir+`"
listen = []
psk_file = "`+pskFile+`"
key = "`+key+`"
watchdog_device = "`+filepath.Join(dir, "no-watchdog")+`"
`), 0o600)
	if code, _, e := runCLI(t, "run", "--config", cfg); code != exitFailure || !strings.Contains(e, "no hardware watchdog device") {
		t.Fatalf("missing watchdog device: %d %q", code, e)
	}
}
