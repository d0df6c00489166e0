package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"gardend/fleet"
	"gardend/node"
)

func runFleet(_ context.Context, e *env, args []string) int {
	fs := newFlagSet(e, "fleet", "ls|show NANO|push",
		"The ground's view of its nanos and its hold on them, through the running\n"+
			"master's control socket.\n\n"+
			"  ls          every nano: peer, profile, connection, last seen, next window,\n"+
			"              entries queued each way, age of its last health report,\n"+
			"              software and pushed versions in force, suspicion\n"+
			"  show NANO   a nano's latest health report, kept history and push history\n"+
			"  push        queue orbit elements, a contact plan or settings for a nano\n"+
			"              (--nano NAME|PEER and one of --elements, --plan, --settings);\n"+
			"              it is applied at the nano's next pass and confirmed by its\n"+
			"              next health report (see fleet show)")
	cfgPath := fs.String("config", "/etc/gardend/gardend.toml", "configuration file (gives the socket path)")
	socket := fs.String("socket", "", "control socket path (overrides --config)")
	asJSON := fs.Bool("json", false, "ls, show: print JSON")
	nano := fs.String("nano", "", "push, show: the nano, by name or peer ID")
	elements := fs.String("elements", "", "push: orbit elements file (TLE, Alpha-5 or OMM)")
	planFile := fs.String("plan", "", "push: contact plan file (TOML, CSV or ION)")
	settings := fs.String("settings", "", "push: TOML fragment of in-flight settings")
	version := fs.Uint64("version", 0, "push: version to give the push (default: the next one)")
	var action string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		action, args = args[0], args[1:]
		if action == "show" && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
			*nano, args = args[0], args[1:]
		}
	}
	if code, ok := parseFlags(e, fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		if action != "" {
			return usageError(e, fs, "unexpected argument %q", fs.Arg(0))
		}
		action = fs.Arg(0)
		if fs.NArg() > 1 && action == "show" {
			*nano = fs.Arg(1)
		}
	}
	path, code := controlSocket(e, *cfgPath, *socket)
	if code != exitOK {
		return code
	}
	var req node.ControlRequest
	switch action {
	case "ls":
		req.Op = "fleet.ls"
	case "show":
		if *nano == "" {
			return usageError(e, fs, "show needs a nano")
		}
		req.Op = "fleet.show"
		req.Args, _ = json.Marshal(fleet.ShowArgs{Nano: *nano})
	case "push":
		var kind, file string
		n := 0
		for _, f := range []struct{ kind, file string }{{"elements", *elements}, {"plan", *planFile}, {"settings", *settings}} {
			if f.file != "" {
				kind, file = f.kind, f.file
				n++
			}
		}
		if *nano == "" || n != 1 {
			return usageError(e, fs, "push needs --nano and exactly one of --elements, --plan, --settings")
		}
		content, err := readSmall(file)
		if err != nil {
			fmt.Fprintf(e.stderr, "gardend fleet: %v\n", err)
			return exitFailure
		}
		req.Op = "fleet.push"
		req.Args, _ = json.Marshal(fleet.PushArgs{Nano: *nano, Kind: kind, Content: content, Version: *version})
	default:
		return usageError(e, fs, "want ls, show or push")
	}
	resp, err := node.AskControl(path, req)
	if err != nil {
		fmt.Fprintf(e.stderr, "gardend fleet: %v\n", err)
		return exitFailure
	}
	if *asJSON {
		e.stdout.Write(append(resp.Data, '\n'))
		return exitOK
	}
	switch action {
	case "ls":
		var rows []fleet.Row
		if err := json.Unmarshal(resp.Data, &rows); err != nil {
			fmt.Fprintf(e.stderr, "gardend fleet: %v\n", err)
			return exitFailure
		}
		writeFleetTable(e.stdout, rows, time.Now())
	case "show":
		var sr fleet.ShowReport
		if err := json.Unmarshal(resp.Data, &sr); err != nil {
			fmt.Fprintf(e.stderr, "gardend fleet: %v\n", err)
			return exitFailure
		}
		writeShow(e.stdout, &sr)
	case "push":
		var a fleet.PushAnswer
		json.Unmarshal(resp.Data, &a)
		fmt.Fprintf(e.stdout, "queued %s version %d for %s: applied at its next pass, confirmed by its next report (gardend fleet show %s)\n", a.Kind, a.Version, a.Nano, a.Nano)
	}
	return exitOK
}

// readSmall reads a pushed file (the master refuses more than
// fleet.MaxPushContent; reading is bounded a little above, to say so).
func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 256<<10+1))
	if err != nil {
		return nil, err
	}
	if len(data) > 256<<10 {
		return nil, fmt.Errorf("%s: over 256 KiB", path)
	}
	return data, nil
}

func ago(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return now.Sub(t).Truncate(time.Second).String() + " ago"
}

func writeFleetTable(w io.Writer, rows []fleet.Row, now time.Time) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPEER\tPROFILE\tCONNECTED\tLAST SEEN\tNEXT AOS\tNEXT LOS\tQUEUED DOWN/UP\tREPORT AGE\tSOFTWARE\tVERSIONS\tSUSPECTED")
	for _, r := range rows {
		aos, los := "-", "-"
		if !r.NextAOS.IsZero() {
			aos, los = r.NextAOS.UTC().Format("01-02 15:04:05"), r.NextLOS.UTC().Format("01-02 15:04:05")
		}
		age := "-"
		if r.ReportAge != nil {
			age = (time.Duration(*r.ReportAge) * time.Second).String()
		}
		var vs []string
		for k, v := range r.Versions {
			vs = append(vs, fmt.Sprintf("%s=%d", k, v))
		}
		sort.Strings(vs)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\t%s\t%d/%d\t%s\t%s\t%s\t%v\n", r.Name, shortPeer(r.Peer), r.Profile, r.Connected,
			ago(r.LastSeen, now), aos, los, r.QueuedDown, r.QueuedUp, age, dash(r.Software), dash(strings.Join(vs, ",")), r.Suspected)
	}
	tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func shortPeer(p string) string {
	if len(p) > 16 {
		return "…" + p[len(p)-12:]
	}
	return p
}

func writeShow(w io.Writer, sr *fleet.ShowReport) {
	fmt.Fprintf(w, "nano %s (%s), profile %s, connected %v, suspected %v\n", sr.Row.Name, sr.Row.Peer, sr.Row.Profile, sr.Row.Connected, sr.Row.Suspected)
	if l := sr.Latest; l != nil {
		r := l.Report
		fmt.Fprintf(w, "latest report: #%d measured %s on board, received %s\n", r.Seq, time.Unix(r.Measured, 0).UTC().Format(time.RFC3339), time.Unix(0, l.Received).UTC().Format(time.RFC3339))
		fmt.Fprintf(w, "  software %s (%s), key backend %s, uptime %s, boots %d\n", r.Version, r.Flavour, r.KeyBackend, time.Duration(r.Uptime)*time.Second, r.Boots)
		fmt.Fprintf(w, "  disk free %d B, memory available %d B", r.DiskFree, r.MemFree)
		if r.HasTemp {
			fmt.Fprintf(w, ", temperature %.1f °C", float64(r.TempMilliC)/1000)
		}
		fmt.Fprintln(w)
		if l.OffsetKnown {
			fmt.Fprintf(w, "  clock offset to the master %d ms (measured on the connection)\n", l.ClockOffsetMs)
		}
		fmt.Fprintf(w, "  watchdog %s, delivery failures %d, corrupt values %d, oldest entry %s\n", dash(r.Watchdog), r.DeliveryFailures, r.Corrupt, time.Duration(r.OldestAge)*time.Second)
		for _, q := range r.Queues {
			dest := "master"
			if len(q.Dest) > 0 {
				dest = "other peer"
			}
			fmt.Fprintf(w, "  queued for %s, %s: %d entries, %d B\n", dest, q.Level, q.Count, q.Bytes)
		}
		var ks []string
		for k := range r.Refusals {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		for _, k := range ks {
			fmt.Fprintf(w, "  %s: %d\n", k, r.Refusals[k])
		}
		for _, v := range r.InForce {
			fmt.Fprintf(w, "  %s version %d in force\n", v.Kind, v.Version)
		}
		if r.ElementsEpoch != 0 {
			fmt.Fprintf(w, "  elements epoch %s\n", time.Unix(r.ElementsEpoch, 0).UTC().Format(time.RFC3339))
		}
		if r.Refused != nil {
			fmt.Fprintf(w, "  last push refused: %s version %d: %s\n", r.Refused.Kind, r.Refused.Version, r.Refused.Reason)
		}
	} else {
		fmt.Fprintln(w, "no health report yet")
	}
	fmt.Fprintf(w, "history: %d reports kept\n", len(sr.History))
	if len(sr.Pushes) == 0 {
		fmt.Fprintln(w, "no pushes")
		return
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PUSHED\tKIND\tVERSION\tBYTES\tSTATUS\tREASON")
	for _, p := range sr.Pushes {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n", time.Unix(0, p.Pushed).UTC().Format(time.RFC3339), p.KindS, p.Version, p.Size, p.Status, dash(p.Reason))
	}
	tw.Flush()
}
