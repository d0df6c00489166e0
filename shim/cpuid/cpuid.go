// Package cpuid stands in for github.com/klauspost/cpuid/v2 inside gardend
// (go.mod replaces the module with this directory): it reports no CPU
// feature, so its importers take their portable code.
//
// Why: the real package detects the CPU in its init at every start (it
// reads /proc/self/auxv and the ID registers on arm64): 5–8 ms of a nano's
// start under qemu-aarch64 (GODEBUG=inittrace=1), 2,800 of the guest
// instructions qemu translates before main. Its importers are hashers
// gardend does not run on a hot path: lukechampine.com/blake3, which
// go-multihash registers and no gardend peer uses, and, in the full build,
// minio/sha256-simd (through go-libp2p-kbucket), which then hands out Go's
// crypto/sha256 (itself accelerated on amd64 and arm64 by Go's own
// detection). What remains of the API is what those two call.
package cpuid

// FeatureID names a CPU feature.
type FeatureID int

// The features gardend's dependencies ask about.
const (
	UNKNOWN FeatureID = iota
	AVX2
	AVX512BW
	AVX512DQ
	AVX512F
	AVX512VL
	SHA
	SHA2
	SSE4
	SSSE3
)

// CPUInfo answers questions about the CPU: here, always no.
type CPUInfo struct{}

// CPU is the detected CPU, as in the real package.
var CPU CPUInfo

// Supports reports whether the CPU has every one of ids: never here.
func (CPUInfo) Supports(ids ...FeatureID) bool { return false }

// Has reports whether the CPU has id: never here.
func (CPUInfo) Has(id FeatureID) bool { return false }
