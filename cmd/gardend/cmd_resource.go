package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"gardend/node"
)

func runResource(_ context.Context, e *env, args []string) int {
	fs := newFlagSet(e, "resource", "put|ls",
		"Change or list the catalogue of the running daemon, through its control\n"+
			"socket.\n\n"+
			"  put   create, update or delete a resource; the change is queued for the\n"+
			"        peers that must know it (a nano's master; the nano that owns it)\n"+
			"  ls    list the local catalogue")
	cfgPath := fs.String("config", "/etc/gardend/gardend.toml", "configuration file (gives the socket path)")
	socket := fs.String("socket", "", "control socket path (overrides --config)")
	kind := fs.String("op", "create", "put: create, update or delete")
	id := fs.String("id", "", "put: resource ID")
	owner := fs.String("owner", "", "put: owning peer ID (default: this node)")
	body := fs.String("body", "", "put: the resource document")
	action, code, ok := parseAction(e, fs, args)
	if !ok {
		return code
	}
	path, code := controlSocket(e, *cfgPath, *socket)
	if code != exitOK {
		return code
	}
	var req node.ControlRequest
	switch action {
	case "put":
		if *id == "" {
			return usageError(e, fs, "put needs --id")
		}
		req = node.ControlRequest{Op: "put", Kind: *kind, ID: *id, Owner: *owner, Body: *body}
	case "ls":
		req = node.ControlRequest{Op: "catalogue"}
	default:
		return usageError(e, fs, "want put or ls")
	}
	resp, err := node.AskControl(path, req)
	if err != nil {
		fmt.Fprintf(e.stderr, "gardend resource: %v\n", err)
		return exitFailure
	}
	if action == "ls" {
		tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tOWNER\tBYTES")
		for _, r := range resp.Catalogue {
			fmt.Fprintf(tw, "%s\t%s\t%d\n", r.ID, peerName(string(r.Owner)), len(r.Body))
		}
		tw.Flush()
	}
	return exitOK
}
