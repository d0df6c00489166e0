package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/config"
	"gardend/dtn"
	"gardend/hsm"
)

func runDTN(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet(e, "dtn", "stats|ls",
		"Inspect the DTN store: what this node still owes to whom.\n\n"+
			"  stats   per destination and level: entries, bytes, oldest, next attempt\n"+
			"  ls      every entry, without payloads, in delivery order\n\n"+
			"The database is opened read-only. While a daemon holds it, ask the daemon\n"+
			"instead (gardend status). Name the node with --config, or --data-dir and\n"+
			"--key.")
	cfgPath := fs.String("config", "", "configuration file (gives data_dir and key)")
	dataDir := fs.String("data-dir", "", "data directory holding "+dtn.FileName)
	key := fs.String("key", "", "identity that unlocks the database: pkcs11: URI or key file")
	action, code, ok := parseAction(e, fs, args)
	if !ok {
		return code
	}
	if action != "stats" && action != "ls" {
		return usageError(e, fs, "want one of: stats, ls")
	}
	if *cfgPath != "" {
		c, err := config.Load(*cfgPath)
		if err != nil {
			fmt.Fprintln(e.stderr, err)
			return exitConfig
		}
		if *dataDir == "" {
			*dataDir = c.DataDir
		}
		if *key == "" {
			*key = c.Key
		}
	}
	if *dataDir == "" || *key == "" {
		return usageError(e, fs, "name the node with --config, or with --data-dir and --key")
	}
	ref, err := hsm.ParseKeyRef(*key)
	if err != nil {
		return usageError(e, fs, "--key: %v", err)
	}
	ks, err := hsm.Open(ctx, ref)
	if err != nil {
		fmt.Fprintf(e.stderr, "gardend dtn: %v\n", err)
		return exitFailure
	}
	defer ks.Close()
	s, err := dtn.Open(filepath.Join(*dataDir, dtn.FileName), ks, dtn.Options{ReadOnly: true})
	if errors.Is(err, dtn.ErrLocked) {
		fmt.Fprintf(e.stderr, "gardend dtn: %v\n", err)
		return exitFailure
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "gardend dtn: %v\n", err)
		return exitFailure
	}
	defer s.Close()
	var rep dtn.Report
	if action == "stats" {
		rep, err = s.Stats()
	} else {
		rep, err = s.List()
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "gardend dtn: %v\n", err)
		return exitFailure
	}
	now := time.Now()
	if action == "stats" {
		printStats(e.stdout, rep, now)
	} else {
		printList(e.stdout, rep, now)
	}
	if rep.Corrupt > 0 {
		fmt.Fprintf(e.stderr, "warning: %d stored values failed authentication (tampered or damaged) and were skipped\n", rep.Corrupt)
	}
	return exitOK
}

// peerName shows a destination as a peer ID when it is one.
func peerName(dest string) string {
	if id, err := peer.IDFromBytes([]byte(dest)); err == nil {
		return id.String()
	}
	return fmt.Sprintf("%q", dest)
}

func age(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return now.Sub(t).Truncate(time.Second).String()
}

func printStats(w io.Writer, rep dtn.Report, now time.Time) {
	if len(rep.Queues) == 0 {
		fmt.Fprintln(w, "DTN store empty: nothing owed to anyone")
		return
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DESTINATION\tLEVEL\tENTRIES\tBYTES\tOLDEST\tNEXT ATTEMPT\tFAILURES")
	for _, q := range rep.Queues {
		next := "now"
		if q.NextAttempt.After(now) {
			next = "in " + q.NextAttempt.Sub(now).Truncate(time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%d\n", peerName(q.Dest), q.Level, q.Count, q.Bytes, age(now, q.Oldest), next, q.Failures)
	}
	tw.Flush()
}

func printList(w io.Writer, rep dtn.Report, now time.Time) {
	if len(rep.Entries) == 0 {
		fmt.Fprintln(w, "DTN store empty: nothing owed to anyone")
		return
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DESTINATION\tPOS\tID\tLEVEL\tOP\tPROTOCOL\tRESOURCE\tBYTES\tAGE\tATTEMPTS")
	for _, en := range rep.Entries {
		res := en.ResourceID
		if res == "" {
			res = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t%d\t%s\t%d\n", peerName(en.Dest), en.Ref.Pos, en.Ref.ID,
			en.Level, en.Op, en.Protocol, strings.ReplaceAll(res, "\t", " "), en.Size, age(now, en.Created), en.Attempts)
	}
	tw.Flush()
}
