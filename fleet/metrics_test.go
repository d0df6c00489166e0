package fleet

import (
	"bytes"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/metrics"
	"gardend/metrics/promtest"
	"gardend/node"
)

// TestPerNanoMetrics: after a nano has reported, the master's collector
// gives its series labelled with its name, the on-board measurement time as
// a gauge, and passes promtool.
func TestPerNanoMetrics(t *testing.T) {
	k := newKit(t, t0)
	master := k.peer("ground", node.RoleMaster, "")
	nano := k.peer("nano-1", node.RoleNano, "")
	nid := nano.Host.ID()
	k.startMaster(master, []peer.AddrInfo{nano.info()}, nil)
	k.startNano(nano, master.info(), node.Contact{})
	eventually(t, "a report", func() bool { return master.mstr.cached(nid) != nil })
	reg := metrics.NewRegistry()
	if err := reg.Register("fleet", master.mstr.Collect); err != nil {
		t.Fatal(err)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := metrics.WriteText(&buf, fams); err != nil {
		t.Fatal(err)
	}
	text := buf.String()
	for _, want := range []string{
		`gardend_nano_report_measured_time_seconds{nano="nano-1"} ` + fmtFloat(float64(t0.Unix())),
		`gardend_nano_info{flavour="`, `nano="nano-1",peer_id="` + nid.String() + `",version="test"} 1`,
		`gardend_nano_report_sequence{nano="nano-1"} `, `gardend_nano_clock_offset_seconds{nano="nano-1"} `,
		`gardend_nano_connected{nano="nano-1"} 1`, `gardend_nano_temperature_celsius{nano="nano-1"} 52`,
		`gardend_nano_boots{nano="nano-1"} 1`, `gardend_fleet_stale_reports_total 0`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q:\n%s", want, text)
		}
	}
	promtest.CheckMetrics(t, buf.Bytes())
}

func fmtFloat(v float64) string {
	var b bytes.Buffer
	metrics.WriteText(&b, []metrics.Family{{Name: "x", Help: "x", Type: metrics.Gauge, Samples: []metrics.Sample{{Value: v}}}})
	s := b.String()
	return strings.TrimSpace(s[strings.LastIndexByte(strings.TrimSpace(s), ' '):])
}
