package fleet

import (
	"sort"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/metrics"
)

// Collect is the master's per-nano metrics collector: one series set per
// nano, labelled nano="<name>", from its latest report and the master's own
// view. The time the report was measured on board is a gauge of its own,
// never a sample timestamp: a report may be hours old when it lands, and
// Prometheus refuses or drops old timestamped samples.
func (m *Master) Collect() []metrics.Family {
	type fam struct {
		name, help string
		typ        metrics.Type
		samples    []metrics.Sample
	}
	fams := map[string]*fam{}
	add := func(name, help string, typ metrics.Type, v float64, labels ...string) {
		f := fams[name]
		if f == nil {
			f = &fam{name: name, help: help, typ: typ}
			fams[name] = f
		}
		s := metrics.Sample{Value: v}
		for i := 0; i+1 < len(labels); i += 2 {
			s.Labels = append(s.Labels, metrics.Label{Name: labels[i], Value: labels[i+1]})
		}
		f.samples = append(f.samples, s)
	}
	g, c := metrics.Gauge, metrics.Counter
	b := func(x bool) float64 {
		if x {
			return 1
		}
		return 0
	}
	suspected := map[peer.ID]bool{}
	for _, p := range m.node.Suspected() {
		suspected[p] = true
	}
	nanos := m.node.Nanos()
	sort.Slice(nanos, func(i, j int) bool { return nanos[i] < nanos[j] })
	for _, p := range nanos {
		rc := m.cached(p)
		name := m.nameWith(p, rc) // one look: all of a nano's series under one name
		add("gardend_nano_connected", "Master: 1 while the nano is connected.", g, b(m.node.Connected(p)), "nano", name)
		add("gardend_nano_suspected", "Master: 1 while the nano is suspected (silent through a planned window).", g, b(suspected[p]), "nano", name)
		add("gardend_nano_queued_down_entries", "Master: DTN entries the master holds for the nano.", g, float64(m.o.Store.Len(string(p))), "nano", name)
		if seen := m.node.LastSeen(p); !seen.IsZero() {
			add("gardend_nano_last_seen_time_seconds", "Master: when the nano last gave a sign of life, Unix time.", g, unix(seen), "nano", name)
		}
		if rc == nil {
			continue
		}
		r := rc.Report
		add("gardend_nano_info", "Always 1: the nano's peer ID, software version, flavour and key backend from its latest report.", g, 1,
			"nano", name, "peer_id", p.String(), "version", r.Version, "flavour", r.Flavour, "key_backend", r.KeyBackend)
		add("gardend_nano_report_measured_time_seconds", "When the latest health report was measured on board, Unix time (the nano's clock).", g, float64(r.Measured), "nano", name)
		add("gardend_nano_report_received_time_seconds", "When the latest health report reached the master, Unix time.", g, float64(rc.Received)/1e9, "nano", name)
		add("gardend_nano_report_sequence", "Sequence number of the latest health report.", g, float64(r.Seq), "nano", name)
		add("gardend_nano_uptime_seconds", "The nano's uptime when it reported.", g, float64(r.Uptime), "nano", name)
		add("gardend_nano_boots", "Times the nano has started.", g, float64(r.Boots), "nano", name)
		add("gardend_nano_disk_free_bytes", "Free disk where the nano's state database lives.", g, float64(r.DiskFree), "nano", name)
		add("gardend_nano_memory_available_bytes", "Memory available on the nano.", g, float64(r.MemFree), "nano", name)
		add("gardend_nano_oldest_entry_age_seconds", "Age of the oldest entry the nano had queued.", g, float64(r.OldestAge), "nano", name)
		add("gardend_nano_corrupt_values", "Values that failed authentication in the nano's store.", g, float64(r.Corrupt), "nano", name)
		add("gardend_nano_delivery_failures_total", "The nano's failed delivery attempts since it started.", c, float64(r.DeliveryFailures), "nano", name)
		add("gardend_nano_watchdog_armed", "1 when the nano pets a hardware watchdog.", g, b(r.Watchdog == "armed"), "nano", name)
		if rc.OffsetKnown {
			add("gardend_nano_clock_offset_seconds", "The nano's clock minus the master's, measured on the connection the report came by.", g, float64(rc.ClockOffsetMs)/1000, "nano", name)
		}
		if r.HasTemp {
			add("gardend_nano_temperature_celsius", "The nano's hottest thermal zone.", g, float64(r.TempMilliC)/1000, "nano", name)
		}
		type ql struct{ dest, level string }
		counts, bytes := map[ql]float64{}, map[ql]float64{}
		for _, q := range r.Queues {
			dest := "master"
			if len(q.Dest) > 0 {
				if id, err := peer.IDFromBytes(q.Dest); err == nil {
					dest = id.String()
				} else {
					dest = "other"
				}
			}
			k := ql{dest, q.Level.String()}
			counts[k] += float64(q.Count)
			bytes[k] += float64(q.Bytes)
		}
		for k, v := range counts {
			add("gardend_nano_queued_entries", "DTN entries the nano held, per destination and level, at its report.", g, v, "nano", name, "dest", k.dest, "level", k.level)
			add("gardend_nano_queued_bytes", "Payload bytes the nano held, per destination and level, at its report.", g, bytes[k], "nano", name, "dest", k.dest, "level", k.level)
		}
		for kind, v := range r.Refusals {
			add("gardend_nano_refusals_total", "The nano's refusals and rejections since it started, per kind.", c, float64(v), "nano", name, "kind", kind)
		}
		for _, v := range r.InForce {
			add("gardend_nano_push_version", "Version of each kind of push in force on the nano.", g, float64(v.Version), "nano", name, "kind", v.Kind.String())
		}
	}
	out := make([]metrics.Family, 0, len(fams)+1)
	out = append(out, metrics.Family{Name: "gardend_fleet_stale_reports_total", Help: "Master: health reports ignored because a newer one of the same nano was kept.",
		Type: metrics.Counter, Samples: []metrics.Sample{{Value: float64(m.Stale())}}})
	for _, f := range fams {
		out = append(out, metrics.Family{Name: f.name, Help: f.help, Type: f.typ, Samples: f.samples})
	}
	return out
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
