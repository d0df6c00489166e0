package fleet

import (
	"testing"
	"time"

	"gardend/dtn"
	"gardend/node"
)

// busyReport is a report from a nano a month in flight with a backlog,
// refusals and all three kinds of push in force: the large end of what
// crosses the link at every pass.
func busyReport() HealthReport {
	return HealthReport{Seq: 4711, Measured: t0.Unix(), Name: "nano-17", Version: "v0.14.0", Flavour: "static", KeyBackend: "pkcs11",
		Uptime: 30 * 86400, Boots: 12, DiskFree: 3_200_000_000, MemFree: 180_000_000,
		Queues:    []QueueStat{{Level: dtn.Critical, Count: 40, Bytes: 16000}, {Level: dtn.Moderate, Count: 1, Bytes: 180}},
		OldestAge: 5400, Refusals: map[string]uint64{"refused_not_master": 3, "rejected_resource_frame": 1},
		DeliveryFailures: 17, Watchdog: "armed",
		InForce:       []Version{{KindElements, 7}, {KindPlan, 2}, {KindSettings, 3}},
		ElementsEpoch: t0.Add(-36 * time.Hour).Unix(), TempMilliC: 41250, HasTemp: true,
		Refused: &PushRefusal{Kind: KindSettings, Version: 4, Reason: "settings: line 2: identity: may not change in flight"}}
}

// reportFrame is the report as it crosses the link: a framed Carried
// message on the health protocol.
func reportFrame(tb testing.TB, k *kit, r HealthReport) []byte {
	body, err := k.codec.Marshal(&r)
	if err != nil {
		tb.Fatal(err)
	}
	frame, err := k.codec.EncodeMessage(&node.Carried{ID: 123456, Sent: t0.UnixMilli(), Body: body})
	if err != nil {
		tb.Fatal(err)
	}
	return frame
}

// TestHealthReportFitsItsBudget: the busy report stays within 300 bytes
// framed (the goal of issue 14).
func TestHealthReportFitsItsBudget(t *testing.T) {
	k := newKit(t, t0)
	if n := len(reportFrame(t, k, busyReport())); n > 300 {
		t.Fatalf("a busy health report is %d bytes framed, over 300", n)
	}
}

// BenchmarkHealthReport reports health_report_bytes: the busy report,
// framed, as it goes on the wire (before Noise and yamux), and encodes it.
func BenchmarkHealthReport(b *testing.B) {
	k := newKit(b, t0)
	r := busyReport()
	var n int
	for b.Loop() {
		n = len(reportFrame(b, k, r))
	}
	b.ReportMetric(float64(n), "health_report_bytes")
}
