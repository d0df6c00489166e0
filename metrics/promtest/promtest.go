// Package promtest runs Debian's Prometheus tools for tests: promtool to
// check exposition text, and a real Prometheus server on loopback that
// scrapes a target and answers queries. Without them a test is skipped —
// unless GARDEND_REQUIRE_PROMETHEUS is set (make check sets it), where a
// missing tool is a failure.
package promtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gardend/internal/freeport"
)

// Tool returns the path of a Prometheus program (promtool, prometheus), or
// skips (fails under GARDEND_REQUIRE_PROMETHEUS) when it is not installed.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		msg := name + " is not installed (apt-get install prometheus)"
		if os.Getenv("GARDEND_REQUIRE_PROMETHEUS") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

// CheckMetrics runs `promtool check metrics` on text and fails the test
// with promtool's findings if it refuses it (lint problems included).
func CheckMetrics(t testing.TB, text []byte) {
	t.Helper()
	cmd := exec.Command(Tool(t, "promtool"), "check", "metrics")
	cmd.Stdin = bytes.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s\n--- input:\n%s", err, out, text)
	}
}

// Server is a Prometheus server started for a test.
type Server struct {
	URL     string // http://127.0.0.1:PORT
	logFile string
}

// Log is what the server wrote so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.logFile)
	return string(b)
}

// Start runs Prometheus on loopback, with its data in a temporary
// directory, scraping target (HOST:PORT, path /metrics) every second. It
// is stopped when the test ends.
func Start(t testing.TB, target string) *Server {
	t.Helper()
	bin := Tool(t, "prometheus")
	dir := t.TempDir()
	conf := filepath.Join(dir, "prometheus.yml")
	body := fmt.Sprintf("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"+
		"scrape_configs:\n  - job_name: gardend\n    static_configs:\n      - targets: ['%s']\n", target)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeport.Addr(t)
	s := &Server{URL: "http://" + addr, logFile: filepath.Join(dir, "prometheus.log")}
	logf, err := os.Create(s.logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close() // the child keeps its own descriptor
	cmd := exec.Command(bin, "--config.file="+conf, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	// Real I/O: a generous bound, polled.
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready after 60 s: %v\n%s", err, s.Log())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Series is one result of an instant query: its labels and value.
type Series struct {
	Labels map[string]string
	Value  string
}

// Query runs an instant query through the HTTP API (/api/v1/query).
func (s *Server) Query(ctx context.Context, q string) ([]Series, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/api/v1/query?query="+url.QueryEscape(q), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", q, r.Error)
	}
	var out []Series
	for _, x := range r.Data.Result {
		v, _ := x.Value[1].(string)
		out = append(out, Series{Labels: x.Metric, Value: v})
	}
	return out, nil
}

// WaitFor polls q until it returns at least one series or the bound passes
// (scrapes every second; generous for a loaded machine or qemu).
func (s *Server) WaitFor(t testing.TB, q string, bound time.Duration) []Series {
	t.Helper()
	deadline := time.Now().Add(bound)
	var lastErr error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := s.Query(ctx, q)
		cancel()
		if err == nil && len(res) > 0 {
			return res
		}
		lastErr = err
		time.Sleep(500 * time.Millisecond)
	}
	targets := ""
	if resp, err := http.Get(s.URL + "/api/v1/targets"); err == nil {
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		resp.Body.Close()
		targets = b.String()
	}
	t.Fatalf("no series for %q after %s (last error %v)\ntargets: %s\nprometheus log:\n%s", q, bound, lastErr, strings.TrimSpace(targets), s.Log())
	return nil
}
