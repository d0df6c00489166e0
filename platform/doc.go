// Package platform holds what gardend needs from the operating system, behind
// small functions built on golang.org/x/sys: atomic file writes, and later
// free disk space, memory, clock sanity and the hardware watchdog.
package platform
