package fleet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/dtn"
	"gardend/node"
	"gardend/plan"
)

// applyDirect runs a push through the nano's own judge, transaction and
// apply, as a delivery from its master would, without a network between.
func applyDirect(t *testing.T, k *kit, nano, master *peerKit, p Push) {
	t.Helper()
	body, err := k.codec.Marshal(&p)
	if err != nil {
		t.Fatal(err)
	}
	d := node.Delivery{From: master.Host.ID(), Body: body, Received: k.clock.Now()}
	w, err := nano.nano.preparePush(d)
	if err != nil {
		t.Fatalf("push %v v%d refused: %v", p.Kind, p.Version, err)
	}
	if err := nano.Store.Update(context.Background(), w.Apply); err != nil {
		t.Fatal(err)
	}
	w.Applied()
}

// csvPlan is a one-window contact plan as CSV.
func csvPlan(start time.Time, d time.Duration) []byte {
	return []byte(fmt.Sprintf("start,end\n%s,%s\n", start.UTC().Format(time.RFC3339), start.Add(d).UTC().Format(time.RFC3339)))
}

// TestConfiguredContactKeepsPushesOnTop: a reload or a re-prediction of
// the configured plan gives the nano a new configured contact; the pushed
// plan and profile timings stay in force on top of it, and a configured
// timing no push names takes effect.
func TestConfiguredContactKeepsPushesOnTop(t *testing.T) {
	k := newKit(t, tp)
	master := k.peer("ground", node.RoleMaster, "")
	nano := k.peer("nano-1", node.RoleNano, "")
	k.startNano(nano, master.info(), node.Contact{})
	applyDirect(t, k, nano, master, Push{Kind: KindPlan, Version: 1, Content: csvPlan(tp.Add(time.Hour), 10*time.Minute)})
	applyDirect(t, k, nano, master, Push{Kind: KindSettings, Version: 1, Content: []byte("[profile]\nguard = \"7s\"\n")})
	pushed := nano.node.Contact().Plan

	conf := node.Contact{Profile: node.ProfileFor(node.ProfileContinuous), Plan: windows(t, tp.Add(3*time.Hour), 2, time.Hour, 5*time.Minute)}
	conf.Profile.Guard, conf.Profile.Grace = 2*time.Second, 9*time.Second
	nano.nano.SetConfigured(conf)

	c := nano.node.Contact()
	if c.Plan == nil || !sameWindows(c.Plan, pushed) {
		t.Errorf("the configured plan replaced plan version 1 in force: %v", c.Plan)
	}
	if c.Profile.Guard != 7*time.Second {
		t.Errorf("guard %v, want the pushed 7s", c.Profile.Guard)
	}
	if c.Profile.Grace != 9*time.Second {
		t.Errorf("grace %v, want the configured 9s (no push names it)", c.Profile.Grace)
	}
}

// TestMasterCopyKeepsConfirmedPlanOnReload: once a nano confirmed a pushed
// plan, a new configured contact for it (a reload on the ground) leaves the
// master's copy on the plan the nano follows.
func TestMasterCopyKeepsConfirmedPlanOnReload(t *testing.T) {
	_, master, nano, nid := continuousPair(t)
	if _, err := master.mstr.Push(context.Background(), nid, KindPlan, csvPlan(tp.Add(time.Hour), 10*time.Minute), 0); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the push confirmed", func() bool {
		s, _ := pushStatus(t, master, nid, KindPlan, 1)
		return s == "applied" && master.node.NanoContact(nid).Plan != nil
	})
	followed := master.node.NanoContact(nid).Plan

	conf := node.Contact{Profile: node.ProfileFor(node.ProfileContinuous)}
	conf.Plan = windows(t, tp.Add(3*time.Hour), 2, time.Hour, 5*time.Minute)
	master.mstr.SetNanoConfigured(nid, conf)
	if got := master.node.NanoContact(nid).Plan; got == nil || !sameWindows(got, followed) {
		t.Fatalf("the configured plan replaced the master's copy of confirmed plan version 1: %v", got)
	}
	if !sameWindows(master.node.NanoContact(nid).Plan, nano.node.Contact().Plan) {
		t.Fatal("the master's copy and the nano disagree after the reload")
	}
}

// TestPushedElementsPredictedAnew: pushed elements are predicted
// PredictSpan (7 days) ahead when applied; predicted anew later, from the
// nano's clock, both the nano's plan and the master's copy of it have
// windows beyond that span, and agree to the second.
func TestPushedElementsPredictedAnew(t *testing.T) {
	k, master, nano, nid := continuousPair(t)
	if _, err := master.mstr.Push(context.Background(), nid, KindElements, ommAt("2025-09-04T02:26:37"), 0); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the elements confirmed", func() bool {
		s, _ := pushStatus(t, master, nid, KindElements, 1)
		return s == "applied" && master.node.NanoContact(nid).Plan != nil
	})

	day8 := tp.Add(8 * 24 * time.Hour)
	k.clock.Set(day8)
	if err := nano.nano.Repredict(); err != nil {
		t.Fatal(err)
	}
	if err := master.mstr.Repredict(); err != nil {
		t.Fatal(err)
	}
	np, mp := nano.node.Contact().Plan, master.node.NanoContact(nid).Plan
	for who, p := range map[string]*plan.Plan{"nano": np, "master's copy": mp} {
		if _, ok := p.NextStart(day8.Add(6 * 24 * time.Hour)); !ok {
			t.Errorf("%s: no window 14 days after the push, predicted anew at day 8", who)
		}
	}
	if !sameWindows(np, mp) {
		t.Error("the nano's plan and the master's copy disagree after predicting anew")
	}
	if got := nano.nano.InForce()[KindElements]; got != 1 {
		t.Errorf("elements version %d in force, want 1", got)
	}
}

// TestSettingsPushesSurviveRestart: settings pushes each change only what
// they name, and what is stored is the whole in force: a nano restarted
// after two pushes (and killed inside a third's transaction) runs with both
// pushes' settings, as before the restart.
func TestSettingsPushesSurviveRestart(t *testing.T) {
	k := newKit(t, tp)
	dir := t.TempDir()
	master := k.peer("ground", node.RoleMaster, "")
	nano := k.peer("nano-1", node.RoleNano, dir)
	k.startNano(nano, master.info(), node.Contact{})
	applyDirect(t, k, nano, master, Push{Kind: KindSettings, Version: 1, Content: []byte("health_interval = \"15m\"\n[profile]\nguard = \"3s\"\n")})
	applyDirect(t, k, nano, master, Push{Kind: KindSettings, Version: 2, Content: []byte("[profile]\nheartbeat_interval = \"7s\"\n")})
	type state struct {
		interval, guard, heartbeat time.Duration
	}
	stateOf := func(p *peerKit) state {
		p.nano.mu.Lock()
		iv := p.nano.interval
		p.nano.mu.Unlock()
		pr := p.node.Contact().Profile
		return state{iv, pr.Guard, pr.HeartbeatInterval}
	}
	want := state{15 * time.Minute, 3 * time.Second, 7 * time.Second}
	if got := stateOf(nano); got != want {
		t.Fatalf("before the restart: %+v, want %+v", got, want)
	}
	// Version 3 killed inside its transaction: it never commits.
	body, _ := k.codec.Marshal(&Push{Kind: KindSettings, Version: 3, Content: []byte("[profile]\nguard = \"5s\"\n")})
	w, err := nano.nano.preparePush(node.Delivery{From: master.Host.ID(), Body: body, Received: k.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	nano.Store.Update(context.Background(), func(tx *dtn.Tx) error {
		if err := w.Apply(tx); err != nil {
			return err
		}
		return errors.New("killed")
	})
	nano.close()

	again := k.peer("nano-1", node.RoleNano, dir)
	k.startNano(again, master.info(), node.Contact{})
	if got := again.nano.InForce()[KindSettings]; got != 2 {
		t.Fatalf("settings version %d in force after the restart, want 2", got)
	}
	if got := stateOf(again); got != want {
		t.Fatalf("after the restart: %+v, want %+v (settings version 2 in force both times)", got, want)
	}
	// The operators' copy on board is the whole in force too.
	b, err := os.ReadFile(filepath.Join(dir, "fleet", "settings"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseSettings(b)
	if err != nil {
		t.Fatal(err)
	}
	if s.HealthInterval.Duration != 15*time.Minute || s.Profile.Guard.Duration != 3*time.Second || s.Profile.HeartbeatInterval.Duration != 7*time.Second {
		t.Fatalf("the copy in the data directory is not the settings in force:\n%s", b)
	}
}

// TestPushedRetryTimingsRefused: the DTN store's backoff is fixed when it
// opens, so a pushed profile.retry_base or retry_ceiling could change
// nothing: it is refused, named, on the ground and on board. Settings an
// older version stored in force with one of them keep the rest in force.
func TestPushedRetryTimingsRefused(t *testing.T) {
	for _, name := range []string{"retry_base", "retry_ceiling"} {
		content := []byte("log_level = \"info\"\n[profile]\n" + name + " = \"1h\"\n")
		_, err := ParseSettings(content)
		var pe *PushError
		if !errors.As(err, &pe) || pe.Field != "profile."+name || pe.Line != 3 {
			t.Errorf("%s: %v, want a PushError naming profile.%s on line 3", name, err, name)
		}
	}

	k := newKit(t, tp)
	dir := t.TempDir()
	master := k.peer("ground", node.RoleMaster, "")
	nano := k.peer("nano-1", node.RoleNano, dir)
	nid := nano.Host.ID()
	k.startMaster(master, []peer.AddrInfo{nano.info()}, nil)
	bad := []byte("[profile]\nretry_base = \"1h\"\n")
	var pe *PushError
	if _, err := master.mstr.Push(context.Background(), nid, KindSettings, bad, 0); !errors.As(err, &pe) || pe.Field != "profile.retry_base" {
		t.Fatalf("the ground took a pushed retry_base: %v", err)
	}
	if n := master.Store.Len(string(nid)); n != 0 {
		t.Fatalf("%d entries queued for the nano", n)
	}

	k.startNano(nano, master.info(), node.Contact{})
	body, _ := k.codec.Marshal(&Push{Kind: KindSettings, Version: 1, Content: bad})
	if _, err := nano.nano.preparePush(node.Delivery{From: master.Host.ID(), Body: body, Received: k.clock.Now()}); err == nil {
		t.Fatal("the nano took a pushed retry_base")
	}
	if got := nano.nano.InForce()[KindSettings]; got != 0 {
		t.Fatalf("settings version %d in force after a refusal", got)
	}

	// Settings stored in force by an older version, retry_base among them.
	old, _ := k.codec.Marshal(&inForce{Version: 4, Content: []byte("health_interval = \"15m\"\n[profile]\nretry_base = \"1h\"\n"), Applied: k.clock.Now().UnixNano()})
	if err := nano.Store.Update(context.Background(), func(tx *dtn.Tx) error {
		return tx.Put(bucketNano, key(tx, "inforce", KindSettings.String()), old)
	}); err != nil {
		t.Fatal(err)
	}
	nano.close()
	again := k.peer("nano-1", node.RoleNano, dir)
	k.startNano(again, master.info(), node.Contact{})
	again.nano.mu.Lock()
	iv := again.nano.interval
	again.nano.mu.Unlock()
	if v := again.nano.InForce()[KindSettings]; v != 4 || iv != 15*time.Minute {
		t.Fatalf("after the restart: settings version %d, health interval %v; want 4, 15m", v, iv)
	}
}

// TestPushHistoryEvictsSettledFirst: the push history is bounded, but a
// push still queued and the applied push the master's copy of the plan
// follows outlive any number of later entries (here ground refusals).
func TestPushHistoryEvictsSettledFirst(t *testing.T) {
	k := newKit(t, tp)
	master := k.peer("ground", node.RoleMaster, "")
	nano := k.peer("nano-1", node.RoleNano, "")
	nid := nano.Host.ID()
	k.startMaster(master, []peer.AddrInfo{nano.info()}, map[peer.ID]node.Contact{nid: {Profile: node.ProfileFor(node.ProfileContinuous)}})
	ctx := context.Background()
	refusals := func() {
		for i := 0; i < maxPushLog; i++ {
			if _, err := master.mstr.Push(ctx, nid, KindSettings, []byte("log_level = \"loud\"\n"), 0); err == nil {
				t.Fatal("a bad log level was taken")
			}
		}
	}
	// The nano is not running yet: the plan stays queued.
	if _, err := master.mstr.Push(ctx, nid, KindPlan, csvPlan(tp.Add(time.Hour), 10*time.Minute), 0); err != nil {
		t.Fatal(err)
	}
	refusals()
	if s, _ := pushStatus(t, master, nid, KindPlan, 1); s != "queued" {
		t.Fatalf("plan version 1, still queued (%d entries for the nano), is %q in the push history", master.Store.Len(string(nid)), s)
	}
	if pushes, _ := master.mstr.Pushes(nid); len(pushes) != maxPushLog {
		t.Fatalf("%d entries in the push history, want %d", len(pushes), maxPushLog)
	}

	k.startNano(nano, master.info(), node.Contact{})
	// The master's attempts while the nano was down back off on the kit's
	// clock, and the last of them may fail after the nano started (under
	// qemu it did): simulated time passes while the test waits, so the
	// master's next attempt always comes.
	eventually(t, "plan version 1 confirmed", func() bool {
		if s, _ := pushStatus(t, master, nid, KindPlan, 1); s == "applied" {
			return true
		}
		k.clock.Add(100 * time.Millisecond)
		return false
	})
	refusals()
	log, err := master.mstr.pushLog(nid)
	if err != nil {
		t.Fatal(err)
	}
	kept := false
	for _, pr := range log.Pushes {
		kept = kept || (pr.Kind == KindPlan && pr.Version == 1 && pr.Status == "applied" && pr.Content != nil)
	}
	if !kept || len(log.Pushes) != maxPushLog {
		t.Fatalf("%d entries; the applied plan the master's copy follows kept: %v", len(log.Pushes), kept)
	}
}

// continuousPair starts a master and one nano in continuous contact, on the
// kit's clock.
func continuousPair(t *testing.T) (k *kit, master, nano *peerKit, nid peer.ID) {
	k = newKit(t, tp)
	master = k.peer("ground", node.RoleMaster, "")
	nano = k.peer("nano-1", node.RoleNano, "")
	nid = nano.Host.ID()
	continuous := node.Contact{Profile: node.ProfileFor(node.ProfileContinuous)}
	k.startMaster(master, []peer.AddrInfo{nano.info()}, map[peer.ID]node.Contact{nid: continuous})
	k.startNano(nano, master.info(), continuous)
	return k, master, nano, nid
}
