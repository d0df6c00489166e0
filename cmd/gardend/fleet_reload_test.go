package main

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/config"
	"gardend/fleet"
	"gardend/plan"
)

// loader is what runRun's SIGHUP reload reads: the file, validated.
func loader(path string) func() (*config.Config, error) {
	return func() (*config.Config, error) {
		c, err := config.Load(path)
		if err != nil {
			return nil, err
		}
		return c, c.Validate()
	}
}

// TestReloadKeepsPushesInForce runs a real ground and nano, pushes a plan
// and settings (log level, guard), then reloads both from their files: the
// nano keeps the pushed plan, guard and log level on top of the file (a
// grace the file now sets takes effect), and the ground keeps its copy of
// the plan the nano confirmed.
func TestReloadKeepsPushesInForce(t *testing.T) {
	dir := t.TempDir()
	pskFile, key, nanoKey, groundID, nanoID, groundAddr := groundAndNanoFiles(t, dir)
	gcfg := masterOfOneConfig(t, dir, key, pskFile, groundAddr, nanoID, "profile = \"continuous\"\n")
	ncfg := nanoConfig(t, dir, "sat-1", nanoKey, pskFile, groundID, groundAddr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	gc, err := loader(gcfg)()
	if err != nil {
		t.Fatal(err)
	}
	glv := new(slog.LevelVar)
	g, err := startDaemon(ctx, gc, log, tuning{level: glv})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	nc, err := loader(ncfg)()
	if err != nil {
		t.Fatal(err)
	}
	lv := new(slog.LevelVar)
	lv.UnmarshalText([]byte(nc.LogLevel))
	n, err := startDaemon(ctx, nc, log, tuning{level: lv})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()

	nid, _ := peer.Decode(nanoID)
	now := time.Now().UTC()
	planCSV := "start,end\n" + now.Add(time.Hour).Format(time.RFC3339) + "," + now.Add(70*time.Minute).Format(time.RFC3339) + "\n"
	if _, err := g.masterFleet.Push(ctx, nid, fleet.KindPlan, []byte(planCSV), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := g.masterFleet.Push(ctx, nid, fleet.KindSettings, []byte("log_level = \"debug\"\n[profile]\nguard = \"7s\"\n"), 0); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if g.node.NanoContact(nid).Plan != nil && n.nanoFleet.InForce()[fleet.KindSettings] > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pushes not applied and confirmed: in force %v", n.nanoFleet.InForce())
		}
	}
	pushed := n.node.Contact().Plan

	// The file now sets a grace (no push names it) and keeps log_level warn.
	b, _ := os.ReadFile(ncfg)
	if err := os.WriteFile(ncfg, append(b, "[profile]\ngrace = \"9s\"\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := n.reload(loader(ncfg), lv); err != nil {
		t.Fatal(err)
	}
	if err := g.reload(loader(gcfg), glv); err != nil {
		t.Fatal(err)
	}
	c := n.node.Contact()
	if c.Plan == nil || !sameWindows(c.Plan.Windows(), pushed.Windows()) {
		t.Errorf("nano: the reload replaced pushed plan version 1 with %v", c.Plan)
	}
	if c.Profile.Guard != 7*time.Second || lv.Level() != slog.LevelDebug {
		t.Errorf("nano: guard %v, log level %v after the reload; want the pushed 7s, DEBUG", c.Profile.Guard, lv.Level())
	}
	if c.Profile.Grace != 9*time.Second {
		t.Errorf("nano: grace %v after the reload; want the file's 9s", c.Profile.Grace)
	}
	if mp := g.node.NanoContact(nid).Plan; mp == nil || !sameWindows(mp.Windows(), pushed.Windows()) {
		t.Errorf("ground: the reload replaced its copy of the plan the nano confirmed with %v", mp)
	}
}

func sameWindows(a, b []plan.Window) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Start.Equal(b[i].Start) || !a[i].End.Equal(b[i].End) {
			return false
		}
	}
	return true
}
