package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gardend/host"
	"gardend/plan"
)

// polarTLE is a made-up sun-synchronous nano (97.5°, 15.2 rev/day),
// epoch 2026-11-21 12:00 UTC.
const polarTLE = "POLAR NANO\n" +
	"1 99901U 26001A   26325.50000000  .00001000  00000-0  50000-4 0  9990\n" +
	"2 99901  97.5000 330.0000 0010000  90.0000 270.0000 15.20000000 10005\n"

func TestPlanCommandSeveralStations(t *testing.T) {
	dir := t.TempDir()
	tle := filepath.Join(dir, "polar.tle")
	os.WriteFile(tle, []byte(polarTLE), 0o600)
	base := []string{"plan", "--elements", tle, "--station", "svalbard=78.23,15.39,450", "--station", "kiruna=67.86,20.96,400",
		"--station", "toulouse=43.6,1.44,150", "--from", "2026-11-21T12:00:00Z", "--hours", "24"}
	code, out, errOut := runCLI(t, base...)
	if code != exitOK || !strings.HasPrefix(out, "STATION") {
		t.Fatalf("table: %d\n%s%s", code, out, errOut)
	}
	perStation := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		perStation[strings.Fields(l)[0]]++
	}
	if len(perStation) != 3 || perStation["svalbard"] <= perStation["toulouse"] || perStation["toulouse"] == 0 {
		t.Fatalf("passes per station %v:\n%s", perStation, out)
	}
	// CSV names each pass's station and reads back as a multi-station plan
	// whose windows over each station are that station's passes alone.
	code, out, errOut = runCLI(t, append(base, "--format", "csv")...)
	if code != exitOK || !strings.HasPrefix(out, "aos,los,max_elevation_deg,duration_s,station\n") {
		t.Fatalf("csv: %d\n%s%s", code, out, errOut)
	}
	cs, err := plan.ParseContacts([]byte(out), "passes.csv", time.Time{}, []string{"svalbard", "kiruna", "toulouse"})
	if err != nil {
		t.Fatal(err)
	}
	code, alone, _ := runCLI(t, "plan", "--elements", tle, "--station", "78.23,15.39,450", "--from", "2026-11-21T12:00:00Z", "--hours", "24", "--format", "csv")
	if code != exitOK || strings.Count(alone, "\n")-1 != len(cs.StationWindows("svalbard")) || strings.Contains(alone, "station") {
		t.Fatalf("svalbard alone: %d windows in\n%s\nagainst %d", strings.Count(alone, "\n")-1, alone, len(cs.StationWindows("svalbard")))
	}
	code, out, _ = runCLI(t, append(base, "--format", "ion")...)
	if code != exitOK || !strings.Contains(out, "# station kiruna is node 2\n") || !strings.Contains(out, " 1 3 8000\n") {
		t.Fatalf("ion: %d\n%s", code, out)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--station", "78.23,15.39,450", "--station", "kiruna=67.86,20.96,400"}, "name each"},
		{[]string{"--station", "a=1,2,3", "--station", "a=4,5,6"}, `"a" given twice`},
		{[]string{"--station", "a b=1,2,3"}, "station name"},
		{[]string{"--station", "kiruna=95,20.96,400"}, "latitude"},
	} {
		code, _, e := runCLI(t, append([]string{"plan", "--elements", tle}, c.args...)...)
		if code != exitUsage || !strings.Contains(e, c.want) {
			t.Errorf("%v: %d %q, want %q", c.args, code, e, c.want)
		}
	}
	if _, o, e := runCLI(t, "plan", "--help"); !strings.Contains(o+e, "--station NAME=LAT,LON,ALT   a named station") {
		t.Fatalf("--help does not explain named stations:\n%s%s", o, e)
	}
}

// stationsConfig writes a config with three [[stations]] (Svalbard's
// peer ID given) and extra settings.
func stationsConfig(t *testing.T, dir, svalbardID, extra string) string {
	t.Helper()
	pskFile := filepath.Join(dir, "psk.key")
	if _, err := os.Stat(pskFile); err != nil {
		if err := host.WriteNewPSK(pskFile); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "g.toml")
	os.WriteFile(cfg, []byte(`name = "mcc"
data_dir = "`+dir+`"
listen = ["/ip4/127.0.0.1/tcp/0"]
psk_file = "`+pskFile+`"
key = "`+filepath.Join(dir, "id.key")+`"
log_level = "error"
`+extra+`
[[stations]]
name = "svalbard"
peer_id = "`+svalbardID+`"
location = "78.23,15.39,450"

[[stations]]
name = "kiruna"
peer_id = "12D3KooWJDioB5uqnoQaKeSiPCkVFABp46QwYxPgYxP2kygmVFL5"
location = "67.86,20.96,400"

[[stations]]
name = "toulouse"
peer_id = "12D3KooWKdM3jwF635t4asGcETEKdCb4asHQ36wG9p8L5yfKAi1J"
location = "43.6,1.44,150"
`), 0o600)
	return cfg
}

func TestCheckConfigWithStations(t *testing.T) {
	dir := t.TempDir()
	pf := filepath.Join(dir, "plan.csv")
	os.WriteFile(pf, []byte("start,end,station\n2026-11-21T12:00:00Z,2026-11-21T12:08:00Z,svalbard\n"), 0o600)
	cfg := stationsConfig(t, dir, "12D3KooWPjceQrSwdWXPyLLeABRXmuqt69Rg3sBYbU1Nft9HyQ6X",
		"roles = [\"master\", \"indexer\", \"station\"]\nstation = \"svalbard\"\n[[nanos]]\npeer_id = \"12D3KooWPjceQrSwdWXPyLLeABRXmuqt69Rg3sBYbU1Nft9HyQ6Y\"\nplan_file = \""+pf+"\"\n")
	code, out, e := runCLI(t, "check-config", cfg)
	if code != exitOK || !strings.Contains(out, "stations svalbard kiruna toulouse, this process is svalbard") {
		t.Fatalf("check-config: %d %s%s", code, out, e)
	}
	os.WriteFile(pf, []byte("start,end,station\n2026-11-21T12:00:00Z,2026-11-21T12:08:00Z,svalbard\n2026-11-21T13:00:00Z,2026-11-21T13:08:00Z,kourou\n"), 0o600)
	if code, _, e := runCLI(t, "check-config", cfg); code != exitConfig || !strings.Contains(e, pf+":3: station: \"kourou\" is not a configured station") {
		t.Fatalf("unknown station in a plan line: %d %q", code, e)
	}
	// --offline does not read the plan file.
	if code, _, e := runCLI(t, "check-config", "--offline", cfg); code != exitOK {
		t.Fatalf("offline: %d %q", code, e)
	}
}

// runUntilStatus starts `gardend run` and returns its first status, then
// stops it.
func runUntilStatus(t *testing.T, cfg, sock string) (status string, code int, errOut string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var eb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, &env{stdout: &eb, stderr: &eb, getenv: os.Getenv}, []string{"run", "--config", cfg})
	}()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case code := <-done:
			return "", code, eb.String()
		default:
		}
		if c, o, _ := runCLI(t, "status", "--socket", sock); c == exitOK {
			status = o
			break
		}
	}
	cancel()
	select {
	case code = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("run did not stop")
	}
	return status, code, eb.String()
}

func TestRunAsAStationAndAsANanoOverStations(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "id.key")
	code, id, e := runCLI(t, "keygen", "--key", key)
	id = strings.TrimSpace(id)
	if code != exitOK || !strings.HasPrefix(id, "12D3") {
		t.Fatalf("keygen: %d %q %s", code, id, e)
	}
	sock := filepath.Join(dir, "control.sock")
	// A station whose entry carries another peer ID is refused at start.
	cfg := stationsConfig(t, dir, "12D3KooWPjceQrSwdWXPyLLeABRXmuqt69Rg3sBYbU1Nft9HyQ6X", "roles = [\"master\", \"indexer\", \"station\"]\nstation = \"svalbard\"\n")
	if _, code, e := runUntilStatus(t, cfg, sock); code != exitFailure || !strings.Contains(e, "svalbard") || !strings.Contains(e, "its peer_id is") {
		t.Fatalf("station under another identity: %d %q", code, e)
	}
	cfg = stationsConfig(t, dir, id, "roles = [\"master\", \"indexer\", \"station\"]\nstation = \"svalbard\"\n")
	if st, code, e := runUntilStatus(t, cfg, sock); code != exitOK || !strings.Contains(st, "master+indexer+station") {
		t.Fatalf("station: %d\n%s\n%s", code, st, e)
	}
	// A nano's plan over several stations: the node follows the union, so
	// its next window is the earliest over any station.
	aos := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	pf := filepath.Join(dir, "plan.csv")
	os.WriteFile(pf, []byte("start,end,station\n"+
		aos.Add(2*time.Minute).Format(time.RFC3339)+","+aos.Add(9*time.Minute).Format(time.RFC3339)+",kiruna\n"+
		aos.Format(time.RFC3339)+","+aos.Add(8*time.Minute).Format(time.RFC3339)+",svalbard\n"), 0o600)
	cfg = stationsConfig(t, dir, id, "roles = [\"nano\"]\n[master]\npeer_id = \"12D3KooWJDioB5uqnoQaKeSiPCkVFABp46QwYxPgYxP2kygmVFL5\"\naddrs = [\"/ip4/127.0.0.1/tcp/9\"]\n[profile]\nkind = \"orbital\"\nplan_file = \""+pf+"\"\n")
	st, code, e := runUntilStatus(t, cfg, sock)
	if code != exitOK || !strings.Contains(st, "next window "+aos.Format(time.RFC3339)) {
		t.Fatalf("nano over stations: %d\n%s\n%s", code, st, e)
	}
	// A plan line over an unknown station stops the start, naming the line.
	os.WriteFile(pf, []byte("start,end,station\n"+aos.Format(time.RFC3339)+","+aos.Add(8*time.Minute).Format(time.RFC3339)+",kourou\n"), 0o600)
	if _, code, e := runUntilStatus(t, cfg, sock); code == exitOK || !strings.Contains(e, pf+":2: station") {
		t.Fatalf("unknown station: %d %q", code, e)
	}
}
