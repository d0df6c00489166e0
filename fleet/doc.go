// Package fleet is the ground's hold on its nanos, built over the DTN store
// so it works across gaps: a nano reports its health to its master at every
// pass (moderate, latest-wins entries with a sequence number), and the
// master pushes orbit elements, contact plans and in-flight settings down
// (critical, versioned entries the nano validates fully, applies atomically
// and reports back). The master keeps each nano's latest report, a bounded
// history and the push history in its state database, and shows them to
// operators (fleet ls/show through the control socket) and to Prometheus
// (one labelled series set per nano).
//
// fleet sits above node: it serves its two protocols through node.Carrier
// and reads the node's contacts; node never imports it.
package fleet
