// Package host is gardend's libp2p host, built by hand in host.go from
// go-libp2p's lower-level parts: TCP only, a private-network PSK, Noise
// negotiated eagerly with the first flight (eager.go), yamux, protocols
// negotiated lazily with the first message, the resource manager of package
// limits and a gater. Below the host it reaches each connection's TCP
// socket, to pace it at a radio link's planned rate (tcptune.go), and it
// keeps a peer's connections across planned gaps when asked (session.go).
//
// The host knows nothing of roles, plans or deliveries: package node decides
// which peers are kept and at what rate each is paced, and calls in.
package host
