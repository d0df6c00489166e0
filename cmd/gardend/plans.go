package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/config"
	"gardend/fleet"
	"gardend/node"
	"gardend/plan"
	"gardend/relay"
)

// plans are a process's contact plans as configured: its own and, on the
// ground, each nano's. With [[stations]], what the node itself may reach
// is narrowed to its own antenna's windows (a nano: each station in passes
// over it, its master only over the master's own antenna), while the relay
// routes over every station's.
type plans struct {
	own       node.Contact
	nanos     map[peer.ID]node.Contact
	ownAll    *plan.Contacts             // nano: its windows over every station
	nanoAll   map[peer.ID]*plan.Contacts // master: each nano's over every station
	peerPlans map[peer.ID]*plan.Plan     // nano: when each station (and its master) is in reach
	stations  map[string]peer.ID         // by name; a master's own antenna under its own ID
	calls     []peer.AddrInfo            // the stations a node dials or is dialled by (not itself, not its master)
}

// loadPlans reads or predicts every plan cfg names, for the process self
// with roles (master: its nano's master, for a nano or a station).
func loadPlans(cfg *config.Config, self, master peer.ID, roles node.Roles, now time.Time) (plans, error) {
	var p plans
	var err error
	if p.own, p.ownAll, err = loadContact(cfg, cfg.Profile.Kind, cfg.Profile.PlanFile, cfg.Profile.Elements(), now); err != nil {
		return p, fmt.Errorf("profile: %w", err)
	}
	if p.nanos, p.nanoAll, err = nanoContacts(cfg, now); err != nil {
		return p, err
	}
	if len(cfg.Stations) == 0 {
		return p, nil
	}
	if roles.Has(node.RoleMaster) {
		master = self
	}
	p.stations = map[string]peer.ID{}
	antenna := "" // the station that is the master's own antenna, if any
	for i, gs := range cfg.Stations {
		ai, err := addrInfo(config.Peer{PeerID: gs.PeerID, Addrs: gs.Addrs})
		if err != nil {
			return p, fmt.Errorf("stations[%d]: %w", i+1, err)
		}
		p.stations[gs.Name] = ai.ID
		if ai.ID == master {
			antenna = gs.Name
		} else if ai.ID != self {
			p.calls = append(p.calls, ai)
		}
	}
	never := new(plan.Plan)
	switch {
	case roles.Has(node.RoleNano):
		if p.ownAll == nil {
			return p, errors.New("profile: a nano with [[stations]] needs plan_file or elements_file")
		}
		p.peerPlans = map[peer.ID]*plan.Plan{master: never}
		for name, id := range p.stations {
			p.peerPlans[id] = p.ownAll.StationPlan(name) // the master's own antenna under its ID
		}
	case roles.Has(node.RoleMaster) || roles.Has(node.RoleStation):
		mine := antenna
		if !roles.Has(node.RoleMaster) {
			gs, err := cfg.OwnStation()
			if err != nil {
				return p, err
			}
			mine = gs.Name
		}
		for id, all := range p.nanoAll {
			c := p.nanos[id]
			c.Plan = never
			if mine != "" {
				c.Plan = all.StationPlan(mine)
			}
			p.nanos[id] = c
		}
	}
	return p, nil
}

// apply sets plans on a running node and its relay. What fleet pushes put
// in force stays on top of them: a nano's own contact goes through its
// fleet side nf, a master's copy of each nano's plan through mf (either
// may be nil).
func (p plans) apply(n *node.Node, r *relay.Relay, nf *fleet.Nano, mf *fleet.Master) {
	if nf != nil {
		nf.SetConfigured(p.own)
	} else {
		n.SetContact(p.own)
	}
	for id, c := range p.nanos {
		if mf != nil {
			mf.SetNanoConfigured(id, c)
		} else {
			n.SetNanoContact(id, c)
		}
	}
	if p.peerPlans != nil {
		n.SetPeerPlans(p.peerPlans)
	}
	if r == nil {
		return
	}
	if p.ownAll != nil && n.Roles().Has(node.RoleNano) {
		r.SetContacts(n.ID(), p.ownAll)
	}
	for id, all := range p.nanoAll {
		r.SetContacts(id, all)
	}
}

// relayContacts are the windows a relay routes over.
func (p plans) relayContacts(self peer.ID, roles node.Roles) map[peer.ID]*plan.Contacts {
	out := map[peer.ID]*plan.Contacts{}
	if roles.Has(node.RoleNano) && p.ownAll != nil {
		out[self] = p.ownAll
	}
	if roles.Has(node.RoleMaster) {
		for id, all := range p.nanoAll {
			out[id] = all
		}
	}
	return out
}
