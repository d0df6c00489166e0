#!/usr/bin/env bash
# setup.sh installs what gardend's builds and tests need, when missing:
# Debian packages (as root) and the Go modules. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
want() { # want <command-or-path> <package>
	if ! command -v "$1" >/dev/null 2>&1 && [ ! -e "$1" ]; then need+=("$2"); fi
}
want gcc gcc
want softhsm2-util softhsm2
want pkcs11-tool opensc
want qemu-aarch64-static qemu-user-static
want aarch64-linux-gnu-gcc gcc-aarch64-linux-gnu
want riscv64-linux-gnu-gcc gcc-riscv64-linux-gnu
want arm-linux-gnueabihf-gcc gcc-arm-linux-gnueabihf
# The cross C libraries are only "recommended" by the cross compilers, and
# this script installs without recommendations: name them.
want /usr/aarch64-linux-gnu/include/stdio.h libc6-dev-arm64-cross
want /usr/riscv64-linux-gnu/include/stdio.h libc6-dev-riscv64-cross
want /usr/arm-linux-gnueabihf/include/stdio.h libc6-dev-armhf-cross
want openssl openssl # reads keygen's key files in a test
want ip iproute2
want sysctl procps
want systemd-analyze systemd
want ping iputils-ping
# promtool checks /metrics output; the prometheus server (same package) scrapes
# a running daemon in a test.
want promtool prometheus
# Full-system guests (make vm-test, vm-test-arm64): qemu-system, the image
# builder and its file system tools.
want qemu-system-x86_64 qemu-system-x86
want qemu-system-aarch64 qemu-system-arm
want mmdebstrap mmdebstrap
want mkfs.ext4 e2fsprogs
want fallocate util-linux
want arch-test arch-test # mmdebstrap of the arm64 guest's root

if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "setup: missing packages: ${need[*]}" >&2
		echo "setup: run as root (or: sudo apt-get install -y ${need[*]})" >&2
		exit 1
	fi
	echo "setup: installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! command -v go >/dev/null 2>&1; then
	if [ -x /usr/local/go/bin/go ]; then
		export PATH="/usr/local/go/bin:$PATH"
	else
		echo "setup: Go is not installed (want Go $(sed -n 's/^go //p' go.mod) or newer)" >&2
		exit 1
	fi
fi
go mod download
