package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"gardend/config"
	"gardend/node"
	"gardend/relay"
)

func runStatus(_ context.Context, e *env, args []string) int {
	fs := newFlagSet(e, "status", "",
		"Ask the running daemon, over its control socket, for its roles, peer ID,\n"+
			"connected peers, contact state and DTN counts.")
	cfgPath := fs.String("config", "/etc/gardend/gardend.toml", "configuration file (gives the socket path)")
	socket := fs.String("socket", "", "control socket path (overrides --config)")
	asJSON := fs.Bool("json", false, "print the raw JSON")
	if code, ok := parseFlags(e, fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return usageError(e, fs, "unexpected argument %q", fs.Arg(0))
	}
	path, code := controlSocket(e, *cfgPath, *socket)
	if code != exitOK {
		return code
	}
	resp, err := node.AskControl(path, node.ControlRequest{Op: "status"})
	if err == nil && resp.Status == nil {
		err = errors.New("the daemon sent no status")
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "gardend status: %v\n", err)
		return exitFailure
	}
	st := *resp.Status
	var rep *relay.Report
	if len(resp.Data) > 0 {
		rep = new(relay.Report)
		if err := json.Unmarshal(resp.Data, rep); err != nil {
			fmt.Fprintf(e.stderr, "gardend status: relay: %v\n", err)
			return exitFailure
		}
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if rep == nil {
			enc.Encode(st)
			return exitOK
		}
		enc.Encode(struct {
			node.Status
			Relay *relay.Report `json:"relay"`
		}{st, rep})
		return exitOK
	}
	fmt.Fprintf(e.stdout, "gardend %s (%s)\npeer:      %s\nroles:     %s\n", st.Name, st.Time.Format("2006-01-02 15:04:05Z"), st.PeerID, st.Roles)
	fmt.Fprintf(e.stdout, "addresses: %s\nconnected: %d peers\n", strings.Join(st.Addrs, " "), len(st.Connected))
	fmt.Fprintf(e.stdout, "profile:   %s (%s)\n", st.Profile, st.Contact)
	if st.Master != "" {
		fmt.Fprintf(e.stdout, "master:    %s (%s)\n", st.Master, contact(st.MasterConnected))
	}
	var nanos []string
	for p := range st.Nanos {
		nanos = append(nanos, p)
	}
	sort.Strings(nanos)
	suspected := map[string]bool{}
	for _, p := range st.Suspected {
		suspected[p] = true
	}
	for _, p := range nanos {
		state := contact(st.Nanos[p])
		if suspected[p] {
			state += ", SUSPECTED: silent through a planned window"
		}
		fmt.Fprintf(e.stdout, "nano:      %s (%s)\n", p, state)
	}
	for _, m := range st.Members {
		fmt.Fprintf(e.stdout, "member:    %s (%s at incarnation %d since %s)\n", m.Peer, strings.ToUpper(m.State), m.Incarnation, m.Since.Format("15:04:05Z"))
	}
	if strings.Contains(st.Roles, "indexer") {
		fmt.Fprintf(e.stdout, "indexer:   %d heartbeat sessions, %d records\n", st.Sessions, st.Records)
	}
	fmt.Fprintf(e.stdout, "dtn:       %d entries queued\n", st.DTNEntries)
	for p, n := range st.DTNByPeer {
		fmt.Fprintf(e.stdout, "  → %s: %d\n", p, n)
	}
	if rep == nil {
		return exitOK
	}
	for _, h := range rep.Handed {
		fmt.Fprintf(e.stdout, "handed:    %d entries for %s at station %s, for its window ending %s\n", h.Entries, h.Nano, h.Station, h.DeliverBy)
	}
	for _, h := range rep.Held {
		who := h.Peer
		if h.Station != "" {
			who += " (station " + h.Station + ")"
		}
		fmt.Fprintf(e.stdout, "relay:     for %s: %d entries, %d relayed (%d toward the master, %d toward a nano", who, h.Entries, h.Relayed, h.Uplink, h.Downlink)
		if h.Earliest != "" {
			fmt.Fprintf(e.stdout, ", handed over for a window ending %s", h.Earliest)
		}
		fmt.Fprintln(e.stdout, ")")
		from := make([]string, 0, len(h.UplinkFrom))
		for p := range h.UplinkFrom {
			from = append(from, p)
		}
		sort.Strings(from)
		for _, p := range from {
			fmt.Fprintf(e.stdout, "  ↑ from %s: %d\n", p, h.UplinkFrom[p])
		}
	}
	return exitOK
}

func contact(up bool) string {
	if up {
		return "in contact"
	}
	return "out of contact"
}

// controlSocket is --socket, or the control socket the configuration names.
func controlSocket(e *env, cfgPath, socket string) (string, int) {
	if socket != "" {
		return socket, exitOK
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return "", exitConfig
	}
	return cfg.ControlPath(), exitOK
}
