package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gardend/host"
	"gardend/internal/freeport"
	"gardend/node"
	"gardend/relay"
)

// TestThroughAStationCLI: a master without an antenna, one station and a
// nano, three real `gardend run`s on loopback configured as an operator
// would ([[stations]], plans naming the station). Resources made on both
// sides cross the station in its window, each applied once; the master's
// status shows the relay.
func TestThroughAStationCLI(t *testing.T) {
	dir := t.TempDir()
	pskFile := filepath.Join(dir, "psk.key")
	if err := host.WriteNewPSK(pskFile); err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	addrs := map[string]string{}
	for _, n := range []string{"mcc", "alpha", "sat"} {
		_, out, _ := runCLI(t, "keygen", "--key", filepath.Join(dir, n+".key"))
		ids[n] = peerIDFrom(t, out)
		addrs[n] = "/ip4/127.0.0.1/tcp/" + strconv.Itoa(freeport.Port(t))
	}
	// The window over alpha opens in a few seconds and lasts the test.
	start := time.Now().Add(3 * time.Second).UTC().Truncate(time.Second)
	plan := filepath.Join(dir, "plan.csv")
	os.WriteFile(plan, []byte("start,end,station\n"+start.Format(time.RFC3339)+","+start.Add(30*time.Minute).Format(time.RFC3339)+",alpha\n"), 0o600)
	common := func(name, roles string) string {
		return `name = "` + name + `"
roles = [` + roles + `]
data_dir = "` + filepath.Join(dir, name) + `"
listen = ["` + addrs[name] + `"]
psk_file = "` + pskFile + `"
key = "` + filepath.Join(dir, name+".key") + `"
log_level = "warn"
`
	}
	stations := `
[[stations]]
name = "alpha"
peer_id = "` + ids["alpha"] + `"
addrs = ["` + addrs["alpha"] + `"]
location = "48.85,2.35,35"
`
	master := "\n[master]\npeer_id = \"" + ids["mcc"] + "\"\naddrs = [\"" + addrs["mcc"] + "\"]\n"
	nanos := "\n[[nanos]]\npeer_id = \"" + ids["sat"] + "\"\naddrs = [\"" + addrs["sat"] + "\"]\nplan_file = \"" + plan + "\"\n"
	write := func(name, body string) string {
		p := filepath.Join(dir, name+".toml")
		os.WriteFile(p, []byte(body), 0o600)
		return p
	}
	sock := func(name string) string { return filepath.Join(dir, name, "control.sock") }
	mcc := startRun(t, write("mcc", common("mcc", `"master"`)+nanos+stations), sock("mcc"))
	startRun(t, write("alpha", common("alpha", `"station"`)+"station = \"alpha\"\n"+master+nanos+stations), sock("alpha"))
	sat := startRun(t, write("sat", common("sat", `"nano"`)+"[profile]\nkind = \"orbital\"\nplan_file = \""+plan+"\"\nguard = \"1s\"\n"+master+stations), sock("sat"))

	put := func(s, id, owner string) {
		args := []string{"resource", "put", "--socket", s, "--id", id, "--body", id + " body"}
		if owner != "" {
			args = append(args, "--owner", owner)
		}
		if code, out, e := runCLI(t, args...); code != exitOK {
			t.Fatalf("resource put %s: %d %s %s", id, code, out, e)
		}
	}
	for _, id := range []string{"up-1", "up-2", "up-3"} {
		put(sat.sock, id, "")
	}
	for _, id := range []string{"down-1", "down-2"} {
		put(mcc.sock, id, ids["sat"])
	}
	has := func(s string, want ...string) bool {
		_, out, _ := runCLI(t, "resource", "ls", "--socket", s)
		for _, w := range want {
			if !strings.Contains(out, w) {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(2 * time.Minute); !has(mcc.sock, "up-1", "up-2", "up-3") || !has(sat.sock, "down-1", "down-2"); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("resources did not cross the station\nmaster: %s\nnano: %s", mcc.errOut.String(), sat.errOut.String())
		}
	}
	type relayStatus struct {
		node.Status
		Relay *relay.Report `json:"relay"`
	}
	var st relayStatus
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		_, out, _ := runCLI(t, "status", "--socket", mcc.sock, "--json")
		// A fresh value each time: the ledger's "handed" is left out once
		// empty, and unmarshalling into the last answer would keep its list.
		st = relayStatus{}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("status --json: %v: %s", err, out)
		}
		// The counters follow the commit that made the catalogue: wait for
		// them too.
		if st.Relay != nil && len(st.Relay.Handed) == 0 && st.Metrics["relay_delivered"] == 2 && st.Metrics["deliveries_applied"] >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("master's relay status: %+v, metrics %v", st.Relay, st.Metrics)
		}
	}
	// Three resources (and maybe already a health report: carried, counted
	// apart), all relayed.
	if a, d, r := st.Metrics["deliveries_applied"], st.Metrics["deliveries_duplicate"], st.Metrics["relayed_applied"]; a != 3 || d != 0 || r < 3 {
		t.Fatalf("master applied %d resources (%d duplicates; %d relayed entries in all), want 3, 0 and at least 3", a, d, r)
	}
	if code, out, _ := runCLI(t, "status", "--socket", sock("alpha")); code != exitOK || !strings.Contains(out, "station") {
		t.Fatalf("station status: %d %s", code, out)
	}
	// Settings pushed by the master cross the station too, and the nano's
	// next health report, relayed up, confirms them.
	settings := filepath.Join(dir, "settings.toml")
	os.WriteFile(settings, []byte("health_interval = \"10s\"\n"), 0o600)
	if code, out, e := runCLI(t, "fleet", "push", "--socket", mcc.sock, "--nano", ids["sat"], "--settings", settings); code != exitOK {
		t.Fatalf("fleet push: %d %q %q", code, out, e)
	}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		sr := fleetShow(t, mcc.sock, ids["sat"])
		if len(sr.Pushes) == 1 && sr.Pushes[0].Status == "applied" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the push did not cross the station: %+v", sr.Pushes)
		}
	}
}
