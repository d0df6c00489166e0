package metrics

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"testing"

	"gardend/metrics/promtest"
)

func sample(v float64, kv ...string) Sample {
	s := Sample{Value: v}
	for i := 0; i+1 < len(kv); i += 2 {
		s.Labels = append(s.Labels, Label{kv[i], kv[i+1]})
	}
	return s
}

func TestTextFormat(t *testing.T) {
	r := NewRegistry()
	r.Register("node", func() []Family {
		return []Family{
			{Name: "gardend_delivery_sent_total", Help: "Entries sent.", Type: Counter, Samples: []Sample{sample(12345678)}},
			{Name: "gardend_dtn_entries", Help: "Queued entries,\nper destination \\ level.", Type: Gauge, Samples: []Sample{
				sample(3, "level", "moderate", "dest", "12D3KooWB"), sample(1, "dest", "12D3KooWA", "level", "critical")}},
			{Name: "gardend_odd", Help: "Odd values.", Type: Gauge, Samples: []Sample{sample(math.NaN(), "v", "a\"b\\c\nd\xff"), sample(math.Inf(1), "v", "inf"), sample(0.25, "v", "q")}},
		}
	})
	// A second collector adds series to a family the first owns (as fleet/
	// will add per-nano series).
	r.Register("fleet", func() []Family {
		return []Family{{Name: "gardend_dtn_entries", Type: Gauge, Samples: []Sample{sample(7, "dest", "12D3KooWC", "level", "critical")}}}
	})
	fams, err := r.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteText(&b, fams); err != nil {
		t.Fatal(err)
	}
	want := `# HELP gardend_delivery_sent_total Entries sent.
# TYPE gardend_delivery_sent_total counter
gardend_delivery_sent_total 12345678
# HELP gardend_dtn_entries Queued entries,\nper destination \\ level.
# TYPE gardend_dtn_entries gauge
gardend_dtn_entries{dest="12D3KooWA",level="critical"} 1
gardend_dtn_entries{dest="12D3KooWB",level="moderate"} 3
gardend_dtn_entries{dest="12D3KooWC",level="critical"} 7
# HELP gardend_odd Odd values.
# TYPE gardend_odd gauge
gardend_odd{v="a\"b\\c\nd` + "\uFFFD" + `"} NaN
gardend_odd{v="inf"} +Inf
gardend_odd{v="q"} 0.25
# HELP gardend_metrics_dropped_total Families or samples left out of a scrape because they could not be written validly.
# TYPE gardend_metrics_dropped_total counter
gardend_metrics_dropped_total 0
`
	if b.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	promtest.CheckMetrics(t, b.Bytes())
}

func TestInvalidInputIsLeftOutAndCounted(t *testing.T) {
	r := NewRegistry()
	r.Register("a", func() []Family {
		return []Family{
			{Name: "gardend_x", Help: "x", Type: Gauge, Samples: []Sample{sample(1, "peer", "p"), sample(2, "peer", "p")}}, // twice
			{Name: "9bad", Type: Gauge, Samples: []Sample{sample(1)}},
			{Name: "gardend_y", Help: "y", Type: Gauge, Samples: []Sample{sample(1, "__name__", "z"), sample(2, "a", "1", "a", "2"), sample(3, "ok", "1")}},
			{Name: "gardend_z", Help: "z", Type: "histogram", Samples: []Sample{sample(1)}},
			{Name: "gardend_w", Type: Gauge, Samples: []Sample{sample(1)}}, // no help
		}
	})
	r.Register("b", func() []Family {
		return []Family{{Name: "gardend_x", Type: Counter, Samples: []Sample{sample(5)}}} // type clash
	})
	if err := r.Register("a", func() []Family { return nil }); err == nil {
		t.Fatal("a name registered twice")
	}
	fams, err := r.Gather()
	if err == nil {
		t.Fatal("no error for invalid input")
	}
	var b bytes.Buffer
	WriteText(&b, fams)
	for _, bad := range []string{"9bad", "__name__", `a="2"`, "gardend_z", "gardend_w", "gardend_x 5", `gardend_x{peer="p"} 2`} {
		if strings.Contains(b.String(), bad) {
			t.Errorf("%q written:\n%s", bad, b.String())
		}
	}
	if !strings.Contains(b.String(), "gardend_metrics_dropped_total 7\n") || !strings.Contains(b.String(), `gardend_y{ok="1"} 3`) {
		t.Fatalf("output:\n%s", b.String())
	}
	promtest.CheckMetrics(t, b.Bytes())
	r.Unregister("b")
	if _, err := r.Gather(); err == nil || strings.Contains(err.Error(), `"b"`) {
		t.Fatalf("after Unregister: %v", err)
	}
}

func TestSanitizeName(t *testing.T) {
	for in, want := range map[string]string{"delivery_sent": "delivery_sent", "rejected_kad-dht_rate": "rejected_kad_dht_rate",
		"1x": "_1x", "a.b/c": "a_b_c", "": "_", "é": "_"} {
		if got := SanitizeName(in); got != want || !ValidName(got) {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

func TestListenServesMetrics(t *testing.T) {
	r := NewRegistry()
	r.Register("c", func() []Family {
		return []Family{{Name: "gardend_up", Help: "1", Type: Gauge, Samples: []Sample{sample(1)}}}
	})
	ctx, cancel := context.WithCancel(context.Background())
	s, err := Listen(ctx, "127.0.0.1:0", r, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + s.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ContentType || !strings.Contains(string(body), "gardend_up 1\n") {
		t.Fatalf("%d %q\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if resp, err := http.Post("http://"+s.Addr().String()+"/metrics", "text/plain", nil); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %v %v", err, resp)
	}
	if resp, err := http.Get("http://" + s.Addr().String() + "/"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("/: %v %v", err, resp)
	}
	cancel() // the context ends the listener
	s.Close()
	if _, err := http.Get("http://" + s.Addr().String() + "/metrics"); err == nil {
		t.Fatal("still serving after the context ended")
	}
}

func TestReadRequest(t *testing.T) {
	for _, ok := range []string{"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n", "HEAD /metrics?a=b HTTP/1.0\n\n"} {
		req, err := ReadRequest(strings.NewReader(ok))
		if err != nil || req.Path != "/metrics" {
			t.Errorf("%q: %+v %v", ok, req, err)
		}
	}
	for _, bad := range []string{"", "GET /metrics HTTP/1.1\r\n", "GET /metrics\r\n\r\n", "GET metrics HTTP/1.1\r\n\r\n", "get /metrics HTTP/1.1\r\n\r\n",
		"GET /metrics HTTP/2\r\n\r\n", "GET /metrics HTTP/1.1\r\nno colon\r\n\r\n", "GET /metrics HTTP/1.1\r\nX: " + strings.Repeat("a", 9000) + "\r\n\r\n"} {
		if _, err := ReadRequest(strings.NewReader(bad)); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%q accepted: %v", truncate(bad, 40), err)
		}
	}
}

func FuzzReadRequest(f *testing.F) {
	f.Add([]byte("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: gzip\r\n\r\n"))
	f.Add([]byte("HEAD / HTTP/1.0\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := ReadRequest(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if req.Method == "" || !strings.HasPrefix(req.Path, "/") || strings.Contains(req.Path, "?") {
			t.Fatalf("accepted %+v", req)
		}
	})
}

func TestListenerAnswersBadAndHeadRequests(t *testing.T) {
	r := NewRegistry()
	r.Register("c", func() []Family {
		return []Family{{Name: "gardend_up", Help: "1", Type: Gauge, Samples: []Sample{sample(1)}}}
	})
	s, err := Listen(context.Background(), "127.0.0.1:0", r, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ask := func(req string) string {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte(req))
		b, _ := io.ReadAll(c)
		return string(b)
	}
	if got := ask("BREW /pot HTCPCP/1.0\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.1 400 ") {
		t.Fatalf("bad request: %q", got)
	}
	got := ask("HEAD /metrics HTTP/1.1\r\n\r\n")
	if !strings.HasPrefix(got, "HTTP/1.1 200 OK\r\n") || !strings.HasSuffix(got, "\r\n\r\n") || !strings.Contains(got, "Content-Length: ") {
		t.Fatalf("HEAD: %q", got)
	}
	if got := ask("GET /metrics HTTP/1.0\r\n\r\n"); !strings.Contains(got, "\r\n\r\n# HELP ") || !strings.Contains(got, "\n# HELP gardend_up 1\n") {
		t.Fatalf("GET: %q", got)
	}
}

// BenchmarkScrape measures one scrape's gathering and writing for 500
// series (a master with a few dozen nanos), in µs and response bytes.
func BenchmarkScrape(b *testing.B) {
	r := NewRegistry()
	r.Register("many", func() []Family {
		var fams []Family
		for f := range 20 {
			fam := Family{Name: "gardend_family_" + strings.Repeat("x", f%5) + string(rune('a'+f)), Help: "A family.", Type: Gauge}
			for s := range 25 {
				fam.Samples = append(fam.Samples, sample(float64(s)*1.5, "nano", "sat-"+string(rune('a'+s)), "level", "critical"))
			}
			fams = append(fams, fam)
		}
		return fams
	})
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		fams, err := r.Gather()
		if err != nil {
			b.Fatal(err)
		}
		WriteText(&buf, fams)
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "metrics_scrape_500_series_us")
	b.ReportMetric(float64(buf.Len()), "metrics_scrape_500_series_bytes")
}
