package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/dtn"
	"gardend/hsm"
	"gardend/node"
	"gardend/plan"
)

// fuzzStore is a real store for the fuzz targets' applies.
func fuzzStore(f *testing.F, k *kit) *dtn.Store {
	dir := f.TempDir()
	ks, _, err := hsm.Create(context.Background(), hsm.KeyRef{File: filepath.Join(dir, "id.key")})
	if err != nil {
		f.Fatal(err)
	}
	st, err := dtn.Open(filepath.Join(dir, dtn.FileName), ks, dtn.Options{Policy: Policy(node.DTNPolicy()), Now: k.clock.Now})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close(); ks.Close() })
	return st
}

// FuzzHealthReport feeds arbitrary bodies to the master's judge of a
// report, and applies what it accepts to a real store: a typed refusal or
// a stored report, never a panic.
func FuzzHealthReport(f *testing.F) {
	k := newKit(f, t0)
	m := NewMaster(MasterOptions{Store: fuzzStore(f, k), Codec: k.codec, Now: k.clock.Now})
	body, _ := k.codec.Marshal(&HealthReport{Seq: 1, Measured: 1})
	f.Add(body)
	busy := busyReport()
	body, _ = k.codec.Marshal(&busy)
	f.Add(body)
	from := peer.ID("fuzz-nano")
	f.Fuzz(func(t *testing.T, body []byte) {
		apply, err := m.prepareReport(node.Delivery{From: from, Body: body, Sent: t0, Received: t0})
		if err != nil {
			if _, ok := err.(*node.Refusal); !ok {
				t.Fatalf("untyped refusal %T: %v", err, err)
			}
			return
		}
		if err := m.o.Store.Update(context.Background(), apply.Apply); err != nil {
			t.Fatalf("apply: %v", err)
		}
	})
}

// FuzzPush feeds arbitrary bodies to a nano's judge of a push (decode and
// full validation of elements, plans and settings).
func FuzzPush(f *testing.F) {
	k := newKit(f, tp)
	n := NewNano(NanoOptions{Store: fuzzStore(f, k), Codec: k.codec, Now: k.clock.Now, Station: testStation, PredictSpan: 24 * time.Hour})
	for _, p := range []Push{
		{Kind: KindElements, Version: 1, Content: ommAt("2025-09-04T02:26:37")},
		{Kind: KindPlan, Version: 1, Content: []byte("[[window]]\nstart = 2025-09-05T01:00:00Z\nend = 2025-09-05T01:10:00Z\nrate = 9600\n")},
		{Kind: KindSettings, Version: 1, Content: []byte("log_level = \"debug\"\n[profile]\nguard = \"5s\"\n")},
	} {
		body, _ := k.codec.Marshal(&p)
		f.Add(body)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		apply, err := n.preparePush(node.Delivery{From: "master", Body: body, Received: tp})
		if err != nil {
			if _, ok := err.(*node.Refusal); !ok {
				t.Fatalf("untyped refusal %T: %v", err, err)
			}
			return
		}
		if err := n.o.Store.Update(context.Background(), apply.Apply); err != nil {
			t.Fatalf("apply: %v", err)
		}
	})
}

// FuzzSettings feeds arbitrary fragments to the settings parser: a
// *PushError or settings, never a panic.
func FuzzSettings(f *testing.F) {
	f.Add([]byte("log_level = \"debug\"\nhealth_interval = \"5m\"\nstore_quota = 2000000\n[profile]\nguard = \"5s\"\n"))
	f.Add([]byte("[identity]\nkey = 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSettings(data)
		if err != nil {
			if _, ok := err.(*PushError); !ok {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			return
		}
		if s == nil {
			t.Fatal("nil settings without an error")
		}
	})
}

// FuzzParsePlan feeds arbitrary content to the parser of a pushed contact
// plan (TOML, ION or CSV, told apart by content): a typed error —
// *plan.ParseError, plan.ErrEmpty or plan.ErrBackwards — or a plan whose
// windows are ordered, apart and each longer than nothing.
func FuzzParsePlan(f *testing.F) {
	f.Add([]byte("[[window]]\nstart = 2025-09-05T01:00:00Z\nend = 2025-09-05T01:10:00Z\nrate = 9600\n"))
	f.Add([]byte("a contact +60 +600 1 2 1200\na contact +300 +900 1 2 1200\n"))
	f.Add([]byte("start,end,rate\n2025-09-05T01:00:00Z,2025-09-05T01:10:00Z,9600\n"))
	f.Add([]byte("start,end\n2025-09-05T01:10:00Z,2025-09-05T01:00:00Z\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePlan(data, tp)
		if err != nil {
			var pe *plan.ParseError
			if !errors.As(err, &pe) && !errors.Is(err, plan.ErrEmpty) && !errors.Is(err, plan.ErrBackwards) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			return
		}
		ws := p.Windows()
		if len(ws) == 0 {
			t.Fatal("a plan without a window")
		}
		for i, w := range ws {
			if !w.End.After(w.Start) || i > 0 && !w.Start.After(ws[i-1].End) {
				t.Fatalf("window %d of %v", i, ws)
			}
		}
	})
}

// FuzzMasterControl feeds arbitrary control-socket lines to the socket's
// reader and the fleet requests among them (fleet.ls, fleet.show,
// fleet.push with their JSON arguments) to a real master: a typed error
// or an answer the client can decode; a push answered without an error is
// in the nano's push log, queued, with its version and size.
func FuzzMasterControl(f *testing.F) {
	k := newKit(f, tp)
	mp, np := k.peer("master", node.RoleMaster, ""), k.peer("nano", node.RoleNano, "")
	nanoID := np.ID()
	m := NewMaster(MasterOptions{Store: mp.Store, Codec: k.codec, Now: k.clock.Now, Station: testStation, Names: map[peer.ID]string{nanoID: "sat-1"}})
	n, err := node.New(node.Options{Name: "master", Roles: node.RoleMaster, Host: mp.Host, Key: mp.Key, Store: mp.Store, Codec: k.codec,
		Now: k.clock.Now, Nanos: []peer.AddrInfo{np.info()}, Carriers: m.Carriers()})
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	if err := m.Start(ctx, n); err != nil { // the node built, not started: no loop runs
		f.Fatal(err)
	}
	for _, req := range []node.ControlRequest{
		{Op: "fleet.push", Args: mustJSON(f, PushArgs{Nano: "sat-1", Kind: "settings", Content: []byte("log_level = \"debug\"\n")})},
		{Op: "fleet.push", Args: mustJSON(f, PushArgs{Nano: nanoID.String(), Kind: "plan", Version: 7,
			Content: []byte("[[window]]\nstart = 2025-09-05T01:00:00Z\nend = 2025-09-05T01:10:00Z\n")})},
		{Op: "fleet.push", Args: mustJSON(f, PushArgs{Nano: "sat-1", Kind: "elements", Content: ommAt("2025-09-04T02:26:37")})},
		{Op: "fleet.show", Args: mustJSON(f, ShowArgs{Nano: "sat-1"})},
		{Op: "fleet.ls"},
	} {
		f.Add(string(mustJSON(f, req)) + "\n")
	}
	f.Fuzz(func(t *testing.T, line string) {
		req, err := node.ParseControlRequest(line)
		if err != nil {
			if !errors.Is(err, node.ErrControlRequest) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			return
		}
		if !strings.HasPrefix(req.Op, "fleet.") {
			return // the node's own requests: node.FuzzControl
		}
		resp := m.Control(ctx, req)
		b, err := json.Marshal(resp)
		if err != nil {
			t.Fatalf("answer does not encode: %v", err)
		}
		var back node.ControlResponse
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("answer %s does not decode: %v", b, err)
		}
		if req.Op != "fleet.push" || resp.Error != "" {
			return
		}
		var a PushArgs
		var ans PushAnswer
		if err := json.Unmarshal(req.Args, &a); err != nil || json.Unmarshal(resp.Data, &ans) != nil {
			t.Fatalf("push answered %s to %s", resp.Data, req.Args)
		}
		log, err := m.Pushes(nanoID)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range log {
			if p.KindS == ans.Kind && p.Version == ans.Version && p.Size == len(a.Content) && p.Status == "queued" {
				return
			}
		}
		t.Fatalf("push %+v answered %+v, not in the log %+v", a, ans, log)
	})
}

func mustJSON(f *testing.F, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		f.Fatal(err)
	}
	return b
}
