package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/dtn"
	"gardend/hsm"
	"gardend/plan"
)

func runCLI(t testing.TB, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(context.Background(), &env{stdout: &o, stderr: &e, getenv: func(string) string { return "" }}, args)
	return code, o.String(), e.String()
}

func TestUsageAndExitCodes(t *testing.T) {
	if code, _, stderr := runCLI(t); code != exitUsage || !strings.Contains(stderr, "Commands:") {
		t.Fatalf("no args: code %d, stderr %q", code, stderr)
	}
	if code, _, stderr := runCLI(t, "launch"); code != exitUsage || !strings.Contains(stderr, `unknown command "launch"`) {
		t.Fatalf("unknown command: code %d, stderr %q", code, stderr)
	}
	if code, stdout, _ := runCLI(t, "help"); code != exitOK || !strings.Contains(stdout, "check-config") {
		t.Fatalf("help: code %d", code)
	}
	for _, c := range commands() {
		if c.run == nil {
			continue
		}
		code, stdout, stderr := runCLI(t, c.name, "--help")
		if code != exitOK || !strings.HasPrefix(stdout, "Usage: gardend "+c.name) || stderr != "" {
			t.Errorf("%s --help: code %d stdout %q stderr %q", c.name, code, stdout, stderr)
		}
		code, stdout, stderr = runCLI(t, c.name, "--no-such-flag")
		if code != exitUsage || stdout != "" || !strings.Contains(stderr, "no-such-flag") {
			t.Errorf("%s --no-such-flag: code %d stdout %q stderr %q", c.name, code, stdout, stderr)
		}
		if code, stdout, _ := runCLI(t, "help", c.name); code != exitOK || !strings.Contains(stdout, "Usage: gardend "+c.name) {
			t.Errorf("help %s: code %d", c.name, code)
		}
	}
}

func TestVersion(t *testing.T) {
	code, stdout, _ := runCLI(t, "version")
	if code != exitOK {
		t.Fatal(code)
	}
	for _, want := range []string{"gardend dev", "commit:", "go: go1.", "flavour: " + hsm.Flavour} {
		if !strings.Contains(stdout, want) {
			t.Errorf("version output lacks %q:\n%s", want, stdout)
		}
	}
}

func TestCheckConfig(t *testing.T) {
	example := filepath.Join("..", "..", "gardend.example.toml")
	if code, stdout, stderr := runCLI(t, "check-config", "--offline", example); code != exitOK {
		t.Fatalf("example: code %d\n%s%s", code, stdout, stderr)
	}
	bad := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(bad, []byte("roles = [\"nano\"]\nlog_level = \"loud\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, "check-config", "--offline", bad)
	if code != exitConfig {
		t.Fatalf("bad config: code %d", code)
	}
	for _, want := range []string{bad + ":2: log_level:", "master.peer_id"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if code, _, _ := runCLI(t, "check-config"); code != exitUsage {
		t.Fatalf("no file: code %d", code)
	}
	if code, _, stderr := runCLI(t, "check-config", filepath.Join(t.TempDir(), "none.toml")); code != exitConfig || !strings.Contains(stderr, "no such file") {
		t.Fatalf("missing file: code %d %q", code, stderr)
	}
}

func TestKeygenAndID(t *testing.T) {
	key := filepath.Join(t.TempDir(), "id.key")
	code, first, stderr := runCLI(t, "keygen", "--key", key)
	if code != exitOK || !strings.HasPrefix(first, "12D3KooW") || !strings.Contains(stderr, "created") {
		t.Fatalf("keygen: code %d out %q err %q", code, first, stderr)
	}
	code, again, stderr := runCLI(t, "keygen", "--key", key)
	if code != exitOK || again != first || !strings.Contains(stderr, "exists") {
		t.Fatalf("second keygen: code %d out %q err %q", code, again, stderr)
	}
	code, out, _ := runCLI(t, "id", "--key", key)
	if code != exitOK || !strings.Contains(out, "peer-id: "+strings.TrimSpace(first)) || !strings.Contains(out, "public-key: ") {
		t.Fatalf("id: code %d out %q", code, out)
	}
	if code, _, stderr := runCLI(t, "id", "--key", filepath.Join(t.TempDir(), "none.key")); code != exitFailure || !strings.Contains(stderr, "keygen") {
		t.Fatalf("id without a key: code %d err %q", code, stderr)
	}
	if code, _, _ := runCLI(t, "keygen"); code != exitUsage {
		t.Fatalf("keygen without --key: code %d", code)
	}
}

func TestDTNCommands(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "id.key")
	ks, _, err := hsm.Create(context.Background(), hsm.KeyRef{File: key})
	if err != nil {
		t.Fatal(err)
	}
	if code, out, _ := runCLI(t, "dtn", "stats", "--data-dir", dir, "--key", key); code != exitFailure {
		t.Fatalf("stats without a database: code %d %q", code, out)
	}
	dest, _ := peer.Decode("12D3KooWJDioB5uqnoQaKeSiPCkVFABp46QwYxPgYxP2kygmVFL5")
	s, err := dtn.Open(filepath.Join(dir, dtn.FileName), ks, dtn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, _, err := s.Enqueue(context.Background(), dtn.Entry{Dest: string(dest), Protocol: "/gardend/1/resource/create",
			ResourceID: fmt.Sprint("res-", i), Op: dtn.OpCreate, Payload: []byte("secret"), Level: dtn.Critical}); err != nil {
			t.Fatal(err)
		}
	}
	// While the store is open (a daemon holds it), the command says so.
	if code, _, stderr := runCLI(t, "dtn", "stats", "--data-dir", dir, "--key", key); code != exitFailure || !strings.Contains(stderr, "gardend status") {
		t.Fatalf("stats while held: code %d %q", code, stderr)
	}
	s.Close()
	code, out, stderr := runCLI(t, "dtn", "stats", "--data-dir", dir, "--key", key)
	if code != exitOK || !strings.Contains(out, dest.String()) || !strings.Contains(out, "critical") || !strings.Contains(out, "18") {
		t.Fatalf("stats: code %d\n%s%s", code, out, stderr)
	}
	code, out, _ = runCLI(t, "dtn", "ls", "--data-dir", dir, "--key", key)
	if code != exitOK || strings.Count(out, dest.String()) != 3 || !strings.Contains(out, "res-2") || strings.Contains(out, "secret") {
		t.Fatalf("ls: code %d\n%s", code, out)
	}
	if code, _, _ := runCLI(t, "dtn", "purge", "--data-dir", dir, "--key", key); code != exitUsage {
		t.Fatalf("unknown action: code %d", code)
	}
}

const issTLE = "ISS (ZARYA)\n1 25544U 98067A   25247.10182809  .00011777  00000-0  21333-3 0  9997\n2 25544  51.6327 275.9345 0004179 299.5263  60.5309 15.50088696528307\n"

const issOMM = `[{"OBJECT_NAME":"ISS (ZARYA)","OBJECT_ID":"1998-067A","EPOCH":"2025-09-04T02:26:37.946976","MEAN_MOTION":15.50088696,"ECCENTRICITY":0.0004179,"INCLINATION":51.6327,"RA_OF_ASC_NODE":275.9345,"ARG_OF_PERICENTER":299.5263,"MEAN_ANOMALY":60.5309,"EPHEMERIS_TYPE":0,"CLASSIFICATION_TYPE":"U","NORAD_CAT_ID":25544,"ELEMENT_SET_NO":999,"REV_AT_EPOCH":52830,"BSTAR":0.00021333,"MEAN_MOTION_DOT":0.00011777,"MEAN_MOTION_DDOT":0}]`

func TestPlanCommand(t *testing.T) {
	dir := t.TempDir()
	tle := filepath.Join(dir, "iss.tle")
	os.WriteFile(tle, []byte(issTLE), 0o600)
	base := []string{"plan", "--tle", tle, "--station", "45.51,-73.59,60", "--min-el", "0", "--from", "2025-09-10T23:09:17Z", "--hours", "12"}
	code, out, errOut := runCLI(t, append(base, "--format", "csv")...)
	if code != exitOK || !strings.HasPrefix(out, "aos,los,max_elevation_deg,duration_s\n2025-09-11T00:09:00Z,2025-09-11T00:19:2") {
		t.Fatalf("csv: %d\n%s%s", code, out, errOut)
	}
	// The CSV reads back as a plan file.
	planFile := filepath.Join(dir, "plan.csv")
	os.WriteFile(planFile, []byte(out), 0o600)
	if p, err := plan.LoadFile(planFile, time.Time{}); err != nil || p.Len() != 6 {
		t.Fatalf("csv as a plan: %v", err)
	}
	code, out, _ = runCLI(t, append(base, "--format", "ion")...)
	if code != exitOK || !strings.Contains(out, "a contact +3583 +420") {
		t.Fatalf("ion: %d\n%s", code, out)
	}
	if code, out, _ := runCLI(t, base...); code != exitOK || !strings.Contains(out, "MAX ELEVATION") {
		t.Fatalf("table: %d\n%s", code, out)
	}
	// The same orbit as an OMM (CelesTrak JSON) through --elements: the same plan.
	omm := filepath.Join(dir, "iss.json")
	os.WriteFile(omm, []byte(issOMM), 0o600)
	_, csvTLE, _ := runCLI(t, append(base, "--format", "csv")...)
	code, out, errOut = runCLI(t, "plan", "--elements", omm, "--station", "45.51,-73.59,60", "--min-el", "0", "--from", "2025-09-10T23:09:17Z", "--hours", "12", "--format", "csv")
	if code != exitOK || out != csvTLE {
		t.Fatalf("OMM plan differs from the TLE's: %d %s\n%s\nTLE's:\n%s", code, errOut, out, csvTLE)
	}
	os.WriteFile(omm, []byte(strings.Replace(issOMM, "51.6327", "251.6327", 1)), 0o600)
	code, _, errOut = runCLI(t, "plan", "--elements", omm, "--station", "0,0,0")
	if code != exitFailure || !strings.Contains(errOut, "OMM JSON line 1: INCLINATION") {
		t.Fatalf("bad OMM: %d %q", code, errOut)
	}
	// check-config reads the elements file a configuration names.
	cfg := filepath.Join(dir, "g.toml")
	os.WriteFile(cfg, []byte("roles = [\"master\"]\npsk_file = \""+tle+"\"\n[profile]\nkind = \"orbital\"\nstation = \"43.6,1.44,150\"\nelements_file = \""+omm+"\"\n"), 0o600)
	if code, _, errOut := runCLI(t, "check-config", cfg); code != exitConfig || !strings.Contains(errOut, "INCLINATION") {
		t.Fatalf("check-config with a bad OMM: %d %q", code, errOut)
	}
	os.WriteFile(omm, []byte(issOMM), 0o600)
	if code, _, errOut := runCLI(t, "check-config", cfg); code != exitOK {
		t.Fatalf("check-config with a good OMM: %d %q", code, errOut)
	}
	bad := filepath.Join(dir, "bad.tle")
	os.WriteFile(bad, []byte(strings.Replace(issTLE, "9997", "9990", 1)), 0o600)
	code, _, errOut = runCLI(t, "plan", "--tle", bad, "--station", "0,0,0")
	if code != exitFailure || !strings.Contains(errOut, "line 2: checksum") {
		t.Fatalf("bad TLE: %d %q", code, errOut)
	}
	if code, _, _ := runCLI(t, "plan", "--tle", tle, "--station", "95,0,0"); code != exitUsage {
		t.Fatal("latitude 95 accepted")
	}
}
