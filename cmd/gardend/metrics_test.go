package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gardend/host"
	"gardend/hsm"
	"gardend/internal/freeport"
	"gardend/metrics/promtest"
	"gardend/node"
)

// A running master (in-process, on loopback) with [metrics] listen set: its
// /metrics passes promtool, and a real Prometheus server scraping it every
// second finds the gardend_ series with the right labels through its query
// API. Its [[nanos]] entry predicts the nano's passes from an OMM (KVN).
// A real nano (a second `gardend run`) reports its health, and its series
// set, labelled nano="sat-1", is found through the query API too.
func TestPrometheusScrapesARunningDaemon(t *testing.T) {
	promtest.Tool(t, "prometheus")
	dir := t.TempDir()
	pskFile := filepath.Join(dir, "psk.key")
	if err := host.WriteNewPSK(pskFile); err != nil {
		t.Fatal(err)
	}
	key, nanoKey := filepath.Join(dir, "id.key"), filepath.Join(dir, "nano.key")
	runCLI(t, "keygen", "--key", key)
	_, nanoOut, _ := runCLI(t, "keygen", "--key", nanoKey)
	nanoID := ""
	for _, f := range strings.Fields(nanoOut) {
		if strings.HasPrefix(f, "12D3KooW") {
			nanoID = f
		}
	}
	if nanoID == "" {
		t.Fatalf("no peer ID in keygen output %q", nanoOut)
	}
	// The ISS's elements as a KVN OMM, with an epoch a day old so the
	// prediction is fresh whenever the test runs.
	epoch := time.Now().UTC().Add(-24 * time.Hour).Format("2006-01-02T15:04:05.000000")
	omm := filepath.Join(dir, "nano.kvn")
	os.WriteFile(omm, []byte("CCSDS_OMM_VERS = 2.0\nOBJECT_NAME = SAT-1\nOBJECT_ID = 2026-999A\nCENTER_NAME = EARTH\nREF_FRAME = TEME\n"+
		"TIME_SYSTEM = UTC\nMEAN_ELEMENT_THEORY = SGP4\nEPOCH = "+epoch+"\nMEAN_MOTION = 15.50088696\nECCENTRICITY = .0004179\n"+
		"INCLINATION = 51.6327\nRA_OF_ASC_NODE = 275.9345\nARG_OF_PERICENTER = 299.5263\nMEAN_ANOMALY = 60.5309\n"+
		"EPHEMERIS_TYPE = 0\nCLASSIFICATION_TYPE = U\nNORAD_CAT_ID = 412345\nBSTAR = .21333E-3\n"), 0o600)
	metricsAddr := freeport.Addr(t)
	groundAddr := "/ip4/127.0.0.1/tcp/" + strconv.Itoa(freeport.Port(t))
	cfg := filepath.Join(dir, "gardend.toml")
	os.WriteFile(cfg, []byte(`name = "ground-metrics"
roles = ["master", "indexer"]
data_dir = "`+dir+`"
listen = ["`+groundAddr+`"]
psk_file = "`+pskFile+`"
key = "`+key+`"
log_level = "warn"
[profile]
station = "43.6,1.44,150"
[[nanos]]
peer_id = "`+nanoID+`"
elements_file = "`+omm+`"
[metrics]
listen = "`+metricsAddr+`"
`), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan int)
	go func() {
		done <- run(ctx, &env{stdout: &out, stderr: &errOut, getenv: os.Getenv}, []string{"run", "--config", cfg})
	}()
	sock := filepath.Join(dir, "control.sock")
	var st node.Status
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if code, o, _ := runCLI(t, "status", "--socket", sock, "--json"); code == exitOK {
			if err := json.Unmarshal([]byte(o), &st); err != nil {
				t.Fatal(err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not up: %s", errOut.String())
		}
	}
	// A resource the (absent) nano owns queues a DTN entry for it.
	if code, _, e := runCLI(t, "resource", "put", "--socket", sock, "--id", "antenna-1", "--owner", nanoID, "--body", "12 dBi"); code != exitOK {
		t.Fatalf("resource put: %d %s", code, e)
	}

	// The nano reports as soon as it reaches its master (it is in
	// continuous contact on its side).
	startRun(t, nanoConfig(t, dir, "sat-1", nanoKey, pskFile, st.PeerID, groundAddr), filepath.Join(dir, "sat-1", "control.sock"))
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if rows := fleetLs(t, sock); len(rows) == 1 && rows[0].ReportAge != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the nano's report never reached the ground: %s", errOut.String())
		}
	}

	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	promtest.CheckMetrics(t, body)
	for _, want := range []string{`gardend_node_info{name="ground-metrics",peer_id="` + st.PeerID + `"`, "gardend_uptime_seconds ", "gardend_build_info{",
		`gardend_dtn_entries{dest="` + nanoID + `",level="critical"} 1`, "gardend_dtn_queued_entries 1", `gardend_dtn_delivery_failures{dest="` + nanoID + `"} `} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}

	// No sample carries a timestamp: after the name and labels, one value.
	for _, l := range strings.Split(strings.TrimSpace(string(body)), "\n") {
		if strings.HasPrefix(l, "#") {
			continue
		}
		if i := strings.LastIndexByte(l, '}'); i >= 0 {
			l = "x" + l[i+1:]
		}
		if f := strings.Fields(l); len(f) != 2 {
			t.Errorf("sample line with %d fields (a timestamp?): %q", len(f), l)
		}
	}

	prom := promtest.Start(t, metricsAddr)
	const bound = 90 * time.Second // real scrapes on a loaded machine
	if up := prom.WaitFor(t, `up{job="gardend"} == 1`, bound); up[0].Labels["instance"] != metricsAddr {
		t.Fatalf("up: %+v", up)
	}
	info := prom.WaitFor(t, `gardend_node_info`, bound)[0].Labels
	if info["name"] != "ground-metrics" || info["peer_id"] != st.PeerID || info["roles"] != "master+indexer" || info["job"] != "gardend" {
		t.Fatalf("gardend_node_info labels: %v", info)
	}
	build := prom.WaitFor(t, `gardend_build_info`, bound)[0].Labels
	if build["version"] != version || build["flavour"] != hsm.Flavour || !strings.HasPrefix(build["goversion"], "go") {
		t.Fatalf("gardend_build_info labels: %v", build)
	}
	q := prom.WaitFor(t, `gardend_dtn_entries{dest="`+nanoID+`"}`, bound)
	if q[0].Labels["level"] == "" || q[0].Value == "0" {
		t.Fatalf("dtn entries for the nano: %+v", q)
	}
	prom.WaitFor(t, `gardend_uptime_seconds > 0`, bound)
	// The nano's series set, from its report, labelled with its name; the
	// on-board measurement time is a gauge, not a sample timestamp.
	ni := prom.WaitFor(t, `gardend_nano_info{nano="sat-1"}`, bound)[0].Labels
	if ni["peer_id"] != nanoID || ni["version"] != version || ni["flavour"] != hsm.Flavour || ni["key_backend"] != "software" || ni["job"] != "gardend" {
		t.Fatalf("gardend_nano_info labels: %v", ni)
	}
	prom.WaitFor(t, `time() - gardend_nano_report_measured_time_seconds{nano="sat-1"} < 600`, bound)
	prom.WaitFor(t, `gardend_nano_report_sequence{nano="sat-1"} >= 1`, bound)
	prom.WaitFor(t, `gardend_nano_boots{nano="sat-1"} == 1`, bound)
	prom.WaitFor(t, `gardend_nano_disk_free_bytes{nano="sat-1"} > 0`, bound)
	prom.WaitFor(t, `gardend_metrics_dropped_total == 0`, bound)
	// No sample carries a timestamp of its own: Prometheus stamps them at
	// scrape time, so the newest sample is never older than a few scrapes.
	prom.WaitFor(t, `time() - timestamp(gardend_start_time_seconds) < 30`, bound)

	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("run exited %d: %s", code, errOut.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("run did not stop")
	}
	if _, err := http.Get("http://" + metricsAddr + "/metrics"); err == nil {
		t.Fatal("metrics still served after the daemon stopped")
	}
}

// A metrics address that cannot be opened stops the start, naming the key,
// and leaves nothing behind (the store is released).
func TestRunRefusesABusyMetricsAddress(t *testing.T) {
	dir := t.TempDir()
	pskFile := filepath.Join(dir, "psk.key")
	if err := host.WriteNewPSK(pskFile); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "id.key")
	runCLI(t, "keygen", "--key", key)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := filepath.Join(dir, "g.toml")
	os.WriteFile(cfg, []byte(`roles = ["indexer"]
data_dir = "`+dir+`"
listen = []
psk_file = "`+pskFile+`"
key = "`+key+`"
[metrics]
listen = "`+busy.Addr().String()+`"
`), 0o600)
	if code, _, e := runCLI(t, "run", "--config", cfg); code != exitFailure || !strings.Contains(e, "metrics.listen") {
		t.Fatalf("busy metrics address: %d %q", code, e)
	}
	if code, _, e := runCLI(t, "dtn", "stats", "--config", cfg); code != exitOK {
		t.Fatalf("store not released after the failed start: %d %s", code, e)
	}
}
