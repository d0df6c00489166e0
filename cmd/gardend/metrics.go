package main

import (
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/dtn"
	"gardend/hsm"
	"gardend/metrics"
	"gardend/node"
	"gardend/relay"
)

// storeScanEvery bounds how often a scrape rescans the DTN store: the scan
// opens every entry, and a master's store may hold thousands.
const storeScanEvery = 10 * time.Second

// nodeCollector exposes the daemon's own state: build and node info,
// uptime, the node's counters and the DTN store's queues.
type nodeCollector struct {
	node    *node.Node
	store   *dtn.Store
	started time.Time
	now     func() time.Time

	mu       sync.Mutex
	scanned  time.Time
	report   dtn.Report
	scanErrs uint64
}

func newNodeCollector(n *node.Node, s *dtn.Store, started time.Time, now func() time.Time) *nodeCollector {
	return &nodeCollector{node: n, store: s, started: started, now: now}
}

func gauge(name, help string, samples ...metrics.Sample) metrics.Family {
	return metrics.Family{Name: name, Help: help, Type: metrics.Gauge, Samples: samples}
}

func one(v float64, labels ...string) metrics.Sample {
	s := metrics.Sample{Value: v}
	for i := 0; i+1 < len(labels); i += 2 {
		s.Labels = append(s.Labels, metrics.Label{Name: labels[i], Value: labels[i+1]})
	}
	return s
}

// collect is the metrics.Collector.
func (c *nodeCollector) collect() []metrics.Family {
	now := c.now()
	st := c.node.Status()
	fams := []metrics.Family{
		gauge("gardend_build_info", "Always 1: the build's version, commit, Go version and flavour as labels.",
			one(1, "version", version, "commit", commit, "goversion", runtime.Version(), "flavour", hsm.Flavour)),
		gauge("gardend_node_info", "Always 1: the node's name, peer ID, roles and connectivity profile as labels.",
			one(1, "name", st.Name, "peer_id", st.PeerID, "roles", st.Roles, "profile", st.Profile)),
		gauge("gardend_start_time_seconds", "When the daemon started, Unix time.", one(float64(c.started.UnixNano())/1e9)),
		gauge("gardend_uptime_seconds", "Seconds since the daemon started.", one(now.Sub(c.started).Seconds())),
		gauge("gardend_connected_peers", "Peers with an open connection.", one(float64(len(st.Connected)))),
		gauge("gardend_suspected_nanos", "Master: nanos silent through a planned window.", one(float64(len(st.Suspected)))),
	}
	if st.Master != "" {
		up := 0.0
		if st.MasterConnected {
			up = 1
		}
		fams = append(fams, gauge("gardend_master_connected", "Nano: 1 while connected to its master.", one(up)))
	}
	if st.Sessions > 0 || st.Records > 0 {
		fams = append(fams, gauge("gardend_indexer_sessions", "Indexer: heartbeat sessions held.", one(float64(st.Sessions))),
			gauge("gardend_indexer_records", "Indexer: peer records held.", one(float64(st.Records))))
	}
	// The node's counters, one family each: they count unrelated events, so
	// summing them under one name with a label would mean nothing.
	names := make([]string, 0, len(st.Metrics))
	for n := range st.Metrics {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fams = append(fams, metrics.Family{Name: "gardend_" + metrics.SanitizeName(n) + "_total", Type: metrics.Counter,
			Help:    "Node counter " + n + " (as in gardend status --json).",
			Samples: []metrics.Sample{one(float64(st.Metrics[n]))}})
	}
	return append(fams, c.storeFamilies(now)...)
}

// storeFamilies describes the DTN queue per destination and level, from a
// scan at most storeScanEvery old.
func (c *nodeCollector) storeFamilies(now time.Time) []metrics.Family {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.scanned.IsZero() || now.Sub(c.scanned) >= storeScanEvery || now.Before(c.scanned) {
		rep, err := c.store.Stats()
		if err != nil {
			c.scanErrs++
		} else {
			c.report, c.scanned = rep, now
		}
	}
	entries := gauge("gardend_dtn_entries", "Entries queued, per destination peer and level.")
	bytes := gauge("gardend_dtn_bytes", "Bytes queued, per destination peer and level.")
	oldest := gauge("gardend_dtn_oldest_entry_timestamp_seconds", "Creation time of the oldest queued entry, Unix time, per destination peer and level.")
	failures := gauge("gardend_dtn_delivery_failures", "Consecutive failed delivery attempts, per destination peer (0 after a success).")
	next := gauge("gardend_dtn_next_attempt_timestamp_seconds", "When delivery to a destination peer is next tried after failures, Unix time.")
	perDest := map[string]bool{}
	for _, q := range c.report.Queues {
		dest := peer.ID(q.Dest).String()
		l := []string{"dest", dest, "level", q.Level.String()}
		entries.Samples = append(entries.Samples, one(float64(q.Count), l...))
		bytes.Samples = append(bytes.Samples, one(float64(q.Bytes), l...))
		if !q.Oldest.IsZero() {
			oldest.Samples = append(oldest.Samples, one(float64(q.Oldest.UnixNano())/1e9, l...))
		}
		if perDest[dest] { // the store keeps failures per destination, not per level
			continue
		}
		perDest[dest] = true
		failures.Samples = append(failures.Samples, one(float64(q.Failures), "dest", dest))
		if !q.NextAttempt.IsZero() {
			next.Samples = append(next.Samples, one(float64(q.NextAttempt.UnixNano())/1e9, "dest", dest))
		}
	}
	return []metrics.Family{entries, bytes, oldest, failures, next,
		gauge("gardend_dtn_queued_entries", "Entries queued for every destination.", one(float64(c.store.Len("")))),
		gauge("gardend_dtn_corrupt_values", "Stored values that failed authentication at the last scan.", one(float64(c.report.Corrupt))),
		gauge("gardend_dtn_last_scan_timestamp_seconds", "When the store was last scanned for these figures, Unix time.", one(float64(c.scanned.UnixNano())/1e9)),
		{Name: "gardend_dtn_scan_errors_total", Help: "Store scans for metrics that failed.", Type: metrics.Counter, Samples: []metrics.Sample{one(float64(c.scanErrs))}},
	}
}

// relayFamilies are the relay's counters and, on a master, the entries
// handed to each station per nano (from its ledger).
func relayFamilies(r *relay.Relay) func() []metrics.Family {
	return func() []metrics.Family {
		counts := r.Counts()
		names := make([]string, 0, len(counts))
		for n := range counts {
			names = append(names, n)
		}
		sort.Strings(names)
		var fams []metrics.Family
		for _, n := range names {
			fams = append(fams, metrics.Family{Name: "gardend_" + metrics.SanitizeName(n) + "_total", Type: metrics.Counter,
				Help: "Relay counter " + n + " (as in gardend status --json).", Samples: []metrics.Sample{one(float64(counts[n]))}})
		}
		rep, err := r.Status()
		if err != nil {
			return fams
		}
		handed := gauge("gardend_relay_handed_entries", "Master: entries a station holds for a nano, per nano and station (the ledger).")
		for _, h := range rep.Handed {
			handed.Samples = append(handed.Samples, one(float64(h.Entries), "nano", h.Nano, "station", h.Station, "deliver_by", h.DeliverBy))
		}
		held := gauge("gardend_relay_held_entries", "Envelopes held, per next hop and direction.")
		for _, h := range rep.Held {
			held.Samples = append(held.Samples, one(float64(h.Uplink), "next_hop", h.Peer, "direction", "uplink"),
				one(float64(h.Downlink), "next_hop", h.Peer, "direction", "downlink"))
		}
		return append(fams, handed, held)
	}
}
