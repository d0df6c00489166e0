package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/node"
)

// Row is one nano in `gardend fleet ls`.
type Row struct {
	Name       string            `json:"name"`
	Peer       string            `json:"peer"`
	Profile    string            `json:"profile"`
	Connected  bool              `json:"connected"`
	LastSeen   time.Time         `json:"last_seen,omitzero"`
	NextAOS    time.Time         `json:"next_aos,omitzero"` // the current window's start when in one
	NextLOS    time.Time         `json:"next_los,omitzero"`
	QueuedDown int               `json:"queued_down"`            // entries this master holds for the nano
	QueuedUp   uint64            `json:"queued_up"`              // entries the nano held for its master at its last report
	ReportAge  *float64          `json:"report_age_s,omitempty"` // seconds since the last report was measured on board
	Software   string            `json:"software,omitempty"`
	Versions   map[string]uint64 `json:"versions,omitempty"` // push versions in force
	Suspected  bool              `json:"suspected"`
}

// ShowReport is `gardend fleet show NANO`.
type ShowReport struct {
	Row     Row          `json:"nano"`
	Latest  *Received    `json:"latest,omitempty"`
	History []Received   `json:"history,omitempty"`
	Pushes  []PushRecord `json:"pushes,omitempty"`
}

// PushArgs are the arguments of a fleet.push request.
type PushArgs struct {
	Nano    string `json:"nano"` // name or peer ID
	Kind    string `json:"kind"` // elements, plan, settings
	Content []byte `json:"content"`
	Version uint64 `json:"version,omitempty"` // 0: the next one
}

// PushAnswer answers a fleet.push.
type PushAnswer struct {
	Nano    string `json:"nano"`
	Kind    string `json:"kind"`
	Version uint64 `json:"version"`
}

// ShowArgs are the arguments of a fleet.show request.
type ShowArgs struct {
	Nano string `json:"nano"`
}

// Rows lists every nano of this master, by name.
func (m *Master) Rows() []Row {
	now := m.o.Now()
	suspected := map[peer.ID]bool{}
	for _, p := range m.node.Suspected() {
		suspected[p] = true
	}
	var out []Row
	for _, p := range m.node.Nanos() {
		c := m.node.NanoContact(p)
		rc := m.cached(p)
		r := Row{Name: m.nameWith(p, rc), Peer: p.String(), Profile: c.Profile.Kind.String(), Connected: m.node.Connected(p),
			LastSeen: m.node.LastSeen(p), QueuedDown: m.o.Store.Len(string(p)), Suspected: suspected[p]}
		if c.Plan != nil {
			if w, ok := c.Plan.Current(now, c.Profile.Guard); ok {
				r.NextAOS, r.NextLOS = w.Start, w.End
			} else if w, ok := c.Plan.NextStart(now); ok {
				r.NextAOS, r.NextLOS = w.Start, w.End
			}
		}
		if rc != nil {
			age := now.Sub(time.Unix(rc.Report.Measured, 0)).Seconds()
			r.ReportAge = &age
			r.Software = rc.Report.Version
			if rc.Report.Flavour != "" {
				r.Software += " (" + rc.Report.Flavour + ")"
			}
			for _, q := range rc.Report.Queues {
				if len(q.Dest) == 0 {
					r.QueuedUp += q.Count
				}
			}
			for _, v := range rc.Report.InForce {
				if r.Versions == nil {
					r.Versions = map[string]uint64{}
				}
				r.Versions[v.Kind.String()] = v.Version
			}
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Show gathers what the master knows of one nano.
func (m *Master) Show(nano string) (*ShowReport, error) {
	p, err := m.Resolve(nano)
	if err != nil {
		return nil, err
	}
	var sr ShowReport
	for _, r := range m.Rows() {
		if r.Peer == p.String() {
			sr.Row = r
		}
	}
	if sr.Latest, err = m.Latest(p); err != nil {
		return nil, err
	}
	if sr.History, err = m.History(p); err != nil {
		return nil, err
	}
	if sr.Pushes, err = m.Pushes(p); err != nil {
		return nil, err
	}
	return &sr, nil
}

// Control answers the fleet's requests on the control socket: fleet.ls,
// fleet.show, fleet.push.
func (m *Master) Control(ctx context.Context, req node.ControlRequest) node.ControlResponse {
	answer := func(v any, err error) node.ControlResponse {
		if err != nil {
			return node.ControlResponse{Error: err.Error()}
		}
		data, err := json.Marshal(v)
		if err != nil {
			return node.ControlResponse{Error: err.Error()}
		}
		return node.ControlResponse{Data: data}
	}
	switch req.Op {
	case "fleet.ls":
		return answer(m.Rows(), nil)
	case "fleet.show":
		var a ShowArgs
		if err := json.Unmarshal(req.Args, &a); err != nil {
			return answer(nil, fmt.Errorf("fleet.show: %w", err))
		}
		return answer(m.Show(a.Nano))
	case "fleet.push":
		var a PushArgs
		if err := json.Unmarshal(req.Args, &a); err != nil {
			return answer(nil, fmt.Errorf("fleet.push: %w", err))
		}
		k, ok := ParseKind(a.Kind)
		if !ok {
			return answer(nil, fmt.Errorf("fleet.push: kind %q is not elements, plan or settings", a.Kind))
		}
		p, err := m.Resolve(a.Nano)
		if err != nil {
			return answer(nil, err)
		}
		v, err := m.Push(ctx, p, k, a.Content, a.Version)
		return answer(PushAnswer{Nano: m.Name(p), Kind: k.String(), Version: v}, err)
	}
	return answer(nil, fmt.Errorf("unknown fleet request %q (fleet.ls, fleet.show, fleet.push)", req.Op))
}
