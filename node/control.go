package node

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/dtn"
	"gardend/swim"
)

// Status is what `gardend status` shows.
type Status struct {
	Name            string            `json:"name"`
	PeerID          string            `json:"peer_id"`
	Roles           string            `json:"roles"`
	Addrs           []string          `json:"addrs"`
	Connected       []string          `json:"connected"`
	Master          string            `json:"master,omitempty"`
	MasterConnected bool              `json:"master_connected,omitempty"`
	Nanos           map[string]bool   `json:"nanos,omitempty"` // nano → connected
	Sessions        int               `json:"sessions,omitempty"`
	Records         int               `json:"records,omitempty"`
	DTNEntries      int               `json:"dtn_entries"`
	DTNByPeer       map[string]int    `json:"dtn_by_peer,omitempty"`
	PendingCritical []string          `json:"pending_critical,omitempty"`
	Profile         string            `json:"profile"`
	Contact         string            `json:"contact"`             // contact state by the plan
	Suspected       []string          `json:"suspected,omitempty"` // master: nanos silent through a planned window
	Members         []MemberReport    `json:"members,omitempty"`   // peers believed suspect or dead (SWIM gossip)
	Metrics         map[string]uint64 `json:"metrics"`
	Time            time.Time         `json:"time"`
}

// MemberReport is a peer this node believes suspect or dead.
type MemberReport struct {
	Peer        string    `json:"peer"`
	State       string    `json:"state"` // suspect or dead
	Incarnation uint64    `json:"incarnation"`
	Since       time.Time `json:"since"`
}

// Status reports the node's state.
func (n *Node) Status() Status {
	st := Status{Name: n.o.Name, PeerID: n.id.String(), Roles: n.o.Roles.String(),
		DTNEntries: n.store.Len(""), Metrics: n.Metrics.Snapshot(), Time: n.o.Now().UTC()}
	for k, v := range n.h.Refusals() {
		st.Metrics[k] = v
	}
	for _, a := range n.h.Addrs() {
		st.Addrs = append(st.Addrs, a.String())
	}
	for _, p := range n.h.Network().Peers() {
		st.Connected = append(st.Connected, p.String())
	}
	sort.Strings(st.Connected)
	if n.o.Master.ID != "" {
		st.Master, st.MasterConnected = n.o.Master.ID.String(), n.Connected(n.o.Master.ID)
	}
	if len(n.nanos) > 0 {
		st.Nanos = map[string]bool{}
		for p := range n.nanos {
			st.Nanos[p.String()] = n.Connected(p)
		}
	}
	if n.idx != nil {
		st.Sessions = n.Sessions()
		st.Records = n.idx.book.Len()
	}
	st.Profile = n.contact().Profile.Kind.String()
	st.Contact = n.contact().Describe(n.o.Now())
	for _, p := range n.liveness.Suspected() {
		st.Suspected = append(st.Suspected, p.String())
	}
	sort.Strings(st.Suspected)
	for p, ms := range n.members.NotAlive() {
		st.Members = append(st.Members, MemberReport{Peer: p.String(), State: swim.KindName(ms.Kind), Incarnation: ms.Incarnation, Since: ms.Since.UTC()})
	}
	sort.Slice(st.Members, func(i, j int) bool { return st.Members[i].Peer < st.Members[j].Peer })
	for _, d := range n.store.PendingCritical() {
		st.PendingCritical = append(st.PendingCritical, peer.ID(d).String())
	}
	for _, d := range n.store.Destinations() {
		if st.DTNByPeer == nil {
			st.DTNByPeer = map[string]int{}
		}
		st.DTNByPeer[peer.ID(d).String()] = n.store.Len(d)
	}
	return st
}

// ControlRequest is one request on the control socket: one JSON object on
// one line (a bare "status" line is accepted too).
type ControlRequest struct {
	Op    string `json:"op"`              // status, put, catalogue
	Kind  string `json:"kind,omitempty"`  // put: create, update or delete
	ID    string `json:"id,omitempty"`    // put: resource ID
	Owner string `json:"owner,omitempty"` // put: owning peer (default: this node)
	Body  string `json:"body,omitempty"`  // put: the resource document
	// Items, if given to put, are many changes made in one durable
	// transaction (all or none); Kind, ID, Owner and Body are then unused.
	Items []ControlPut `json:"items,omitempty"`
	// Args carry the request of an op served by a room above node (e.g.
	// "fleet.ls"), in that room's own JSON form.
	Args json.RawMessage `json:"args,omitempty"`
}

// ControlPut is one change of a batched put.
type ControlPut struct {
	Kind  string `json:"kind"`
	ID    string `json:"id"`
	Owner string `json:"owner,omitempty"`
	Body  string `json:"body,omitempty"`
}

// ControlResponse wraps every answer.
type ControlResponse struct {
	Error     string     `json:"error,omitempty"`
	Status    *Status    `json:"status,omitempty"`
	Catalogue []Resource `json:"catalogue,omitempty"`
	// Data is the answer of an op served by a room above node.
	Data json.RawMessage `json:"data,omitempty"`
}

// Control answers one control request.
func (n *Node) Control(ctx context.Context, req ControlRequest) ControlResponse {
	switch req.Op {
	case "status":
		st := n.Status()
		return ControlResponse{Status: &st}
	case "put":
		items := req.Items
		if len(items) == 0 {
			items = []ControlPut{{Kind: req.Kind, ID: req.ID, Owner: req.Owner, Body: req.Body}}
		}
		changes := make([]ResourceChange, 0, len(items))
		for _, it := range items {
			op := map[string]dtn.Op{"create": dtn.OpCreate, "update": dtn.OpUpdate, "delete": dtn.OpDelete}[it.Kind]
			owner := n.id
			if it.Owner != "" {
				p, err := peer.Decode(it.Owner)
				if err != nil {
					return ControlResponse{Error: "owner: " + err.Error()}
				}
				owner = p
			}
			changes = append(changes, ResourceChange{Op: op, ID: it.ID, Owner: owner, Body: []byte(it.Body)})
		}
		if err := n.PutResources(ctx, changes); err != nil {
			return ControlResponse{Error: err.Error()}
		}
		return ControlResponse{}
	case "catalogue":
		cat, err := n.Catalogue()
		if err != nil {
			return ControlResponse{Error: err.Error()}
		}
		return ControlResponse{Catalogue: cat}
	}
	return ControlResponse{Error: fmt.Sprintf("unknown request %q (status, put, catalogue)", req.Op)}
}

// Catalogue lists the local catalogue.
func (n *Node) Catalogue() ([]Resource, error) {
	var out []Resource
	err := n.store.View(func(tx *dtn.Tx) error {
		return tx.ForEach(bucketCatalogue, func(_, v []byte) error {
			var r Resource
			if err := n.c.Unmarshal(v, &r); err != nil {
				return err
			}
			out = append(out, r)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, err
}

// ErrControlRequest is a control-socket line that is not a request.
var ErrControlRequest = errors.New("control request malformed")

// ParseControlRequest reads one control-socket line: a JSON object, or
// the bare word "status".
func ParseControlRequest(line string) (ControlRequest, error) {
	var req ControlRequest
	l := strings.TrimSpace(line)
	if l == "status" {
		req.Op = "status"
		return req, nil
	}
	if err := json.Unmarshal([]byte(l), &req); err != nil {
		return ControlRequest{}, fmt.Errorf("%w: request is not JSON: %v", ErrControlRequest, err)
	}
	return req, nil
}

// ServeControl answers control requests on a unix socket at path, mode
// 0600, until ctx ends or stop. stop returns once the socket is closed and
// removed, so a daemon that calls it before exiting leaves none behind. A
// line that is not a request is answered with the error and told to
// malformed (a metric; nil: nobody counts). A stale socket left by a crash
// is replaced; a live one (another daemon) is an error.
func ServeControl(ctx context.Context, path string, handle func(context.Context, ControlRequest) ControlResponse, malformed func(error)) (stop func(), err error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("control socket %s exists and is not a socket", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("control socket %s is in use: is another gardend running?", path)
		}
		os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	stopped := make(chan struct{})
	var once sync.Once
	stop = func() {
		once.Do(func() { ln.Close() })
		<-stopped
	}
	go func() {
		select {
		case <-ctx.Done():
			once.Do(func() { ln.Close() })
		case <-stopped:
		}
	}()
	go func() {
		defer close(stopped)
		defer os.Remove(path)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				line, err := bufio.NewReader(io.LimitReader(c, 1<<20)).ReadString('\n')
				if err != nil {
					return
				}
				req, err := ParseControlRequest(line)
				if err != nil {
					if malformed != nil {
						malformed(err)
					}
					json.NewEncoder(c).Encode(ControlResponse{Error: err.Error()})
					return
				}
				json.NewEncoder(c).Encode(handle(ctx, req))
			}()
		}
	}()
	return stop, nil
}

// AskControl sends one request to the daemon behind path.
func AskControl(path string, req ControlRequest) (ControlResponse, error) {
	var resp ControlResponse
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return resp, fmt.Errorf("no gardend answering on %s: %w", path, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	line, _ := json.Marshal(req)
	if _, err := c.Write(append(line, '\n')); err != nil {
		return resp, err
	}
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return resp, errors.New("bad answer from the daemon: " + err.Error())
	}
	if resp.Error != "" {
		return resp, errors.New(resp.Error)
	}
	return resp, nil
}

// QueryControl asks the daemon behind path for its status.
func QueryControl(path string) (Status, error) {
	resp, err := AskControl(path, ControlRequest{Op: "status"})
	if err != nil {
		return Status{}, err
	}
	if resp.Status == nil {
		return Status{}, errors.New("the daemon sent no status")
	}
	return *resp.Status, nil
}
