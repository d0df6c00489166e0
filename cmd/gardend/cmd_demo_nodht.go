//go:build nodht

package main

// demoCommand is empty: the nano build (-tags nodht, `make cross-nano`)
// leaves the demo out, and `gardend demo` is an unknown command there. A
// ground and two nanos in one process, with the SoftHSM set-up it can run
// (os/exec), are of no use on board and took 0.13 MB of the arm64 nano.
func demoCommand() []command { return nil }
