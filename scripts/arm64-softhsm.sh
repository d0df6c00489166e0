#!/usr/bin/env bash
# arm64-softhsm.sh builds a private arm64 sysroot holding SoftHSM and the
# libraries it needs, so the pkcs11 build's tests can run under
# qemu-aarch64-static against a real arm64 PKCS#11 module. Debian's
# libsofthsm2 is not co-installable across architectures (installing the
# arm64 one removes the amd64 one), so the packages are downloaded and
# unpacked here instead of installed. Prints the sysroot path.
set -euo pipefail
root="${1:-$(cd "$(dirname "$0")/.." && pwd)/.cache/sysroot-arm64}"
module="$root/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so"
if [ -e "$module" ]; then echo "$root"; exit 0; fi
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "arm64-softhsm: run as root once (dpkg --add-architecture arm64)" >&2
		exit 1
	fi
	dpkg --add-architecture arm64
	apt-get update -qq
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
(cd "$tmp" && apt-get download -qq libsofthsm2:arm64 softhsm2-common:arm64 libssl3:arm64 \
	libstdc++6:arm64 libgcc-s1:arm64 libc6:arm64 2>/dev/null) || {
	apt-get update -qq
	(cd "$tmp" && apt-get download -qq libsofthsm2:arm64 softhsm2-common:arm64 libssl3:arm64 \
		libstdc++6:arm64 libgcc-s1:arm64 libc6:arm64)
}
mkdir -p "$root"
for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$root"; done
test -e "$module"
echo "$root"
