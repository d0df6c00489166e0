#!/usr/bin/env bash
# mkimage.sh ARCH GARDEND_BINARY — build (or find in the cache) a Debian 12
# guest image for the flight bench's full-system tests, and print its
# directory. ARCH is amd64 or arm64; GARDEND_BINARY a static gardend for it.
#
# Two layers, each cached under $GARDEND_VM_CACHE (default
# /var/cache/gardend-vm, outside any clone so a fresh CI clone reuses it) by
# the hash of its inputs:
#   base-ARCH-HASH.tar  mmdebstrap minbase + kernel, systemd, udev, iproute2,
#                       dbus (the slow part: ~80 s amd64, ~10 min arm64);
#   img-ARCH-HASH/      rootfs.img (ext4) with the binary, the repository's
#                       unmodified systemd/gardend.service and
#                       systemd/60-gardend-radio.conf, a configuration,
#                       the PSK and a key made by `gardend keygen` inside the
#                       image; vmlinuz, initrd.img from its /boot; psk.key
#                       and peer-id for the host side; build-seconds.
# Needs root, mmdebstrap, e2fsprogs; arm64 also qemu-user-static.
set -euo pipefail
# stdout carries only the image directory; everything else goes to stderr.
exec 3>&1 1>&2
arch=${1:?usage: mkimage.sh amd64|arm64 GARDEND_BINARY}
bin=${2:?usage: mkimage.sh amd64|arm64 GARDEND_BINARY}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
cache=${GARDEND_VM_CACHE:-/var/cache/gardend-vm}
mirror=${GARDEND_VM_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
case $arch in
amd64 | arm64) ;;
*) echo "mkimage: arch $arch: want amd64 or arm64" >&2; exit 2 ;;
esac
packages="linux-image-cloud-$arch,systemd-sysv,udev,iproute2,dbus"

log() { echo "mkimage: $*" >&2; }

# base_recipe writes the base root file system as a tar archive to $1. Its
# own text is part of the base layer's cache key.
base_recipe() {
	local out=$1
	local extra=()
	if [ "$arch" != amd64 ]; then
		# Foreign packages' maintainer scripts run under qemu-user through
		# binfmt_misc.
		extra+=(--architectures="$arch")
	fi
	mmdebstrap --variant=minbase --format=tar --include="$packages" "${extra[@]}" \
		--dpkgopt='path-exclude=/usr/share/man/*' \
		--dpkgopt='path-exclude=/usr/share/doc/*' \
		--dpkgopt='path-exclude=/usr/share/locale/*' \
		--aptopt='Acquire::Retries "3"' \
		"$suite" "$out" "$mirror"
}

# binfmt makes foreign binaries run (mmdebstrap of a foreign root).
binfmt() {
	[ "$arch" = amd64 ] && return 0
	local name=qemu-aarch64
	if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
		mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
	fi
	if [ ! -e /proc/sys/fs/binfmt_misc/$name ]; then
		local conf=/usr/lib/binfmt.d/$name.conf
		[ -r "$conf" ] || { log "no $conf: apt-get install qemu-user-static"; exit 1; }
		grep -v '^#' "$conf" >/proc/sys/fs/binfmt_misc/register
		registered=/proc/sys/fs/binfmt_misc/$name
	fi
}

hash() { sha256sum | cut -c1-16; }

mkdir -p "$cache"
base_key=$( { echo "$arch $suite $mirror $packages"; declare -f base_recipe; } | hash)
base=$cache/base-$arch-$base_key.tar
start=$(date +%s.%N)
if [ ! -s "$base" ]; then
	log "building the base root file system ($arch, key $base_key): minutes"
	registered=
	binfmt
	base_recipe "$base.tmp.$$"
	# Undo a binfmt registration made here.
	if [ -n "$registered" ]; then echo -1 >"$registered"; fi
	mv "$base.tmp.$$" "$base"
	awk "BEGIN{printf \"%.1f\\n\", $(date +%s.%N) - $start}" >"$base.seconds"
	log "base built in $(cat "$base.seconds") s"
fi
base_done=$(date +%s.%N)

guest=$here/guest
img_key=$( { echo "$base_key"; sha256sum "$bin" "$repo/systemd/gardend.service" "$repo/systemd/60-gardend-radio.conf" "$here/mkimage.sh" "$guest"/* | cut -d' ' -f1; } | hash)
img=$cache/img-$arch-$img_key
if [ -s "$img/rootfs.img" ]; then
	echo "$img" >&3
	exit 0
fi
log "building the gardend image ($arch, key $img_key)"
work=$(mktemp -d "$cache/work-$arch.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir "$root"
tar -C "$root" -xf "$base"

install -m 0755 "$bin" "$root/usr/bin/gardend"
install -m 0644 "$repo/systemd/gardend.service" "$root/usr/lib/systemd/system/gardend.service"
# The board's radio sysctl file, as the Buildroot package installs it.
install -D -m 0644 "$repo/systemd/60-gardend-radio.conf" "$root/usr/lib/sysctl.d/60-gardend-radio.conf"
useradd --root "$root" --system --home-dir /var/lib/gardend --no-create-home \
	--shell /usr/sbin/nologin --user-group gardend
# Read the ids from the image's files: a foreign root's getent would need
# binfmt.
gid=$(awk -F: '$1 == "gardend" {print $3}' "$root/etc/group")
uid=$(awk -F: '$1 == "gardend" {print $3}' "$root/etc/passwd")
install -d -m 0750 -o root -g "$gid" "$root/etc/gardend"
install -d -m 0700 -o "$uid" -g "$gid" "$root/var/lib/gardend"
# The PSK: made here, kept beside the image for the ground.
psk="/key/swarm/psk/1.0.0/
/base16/
$(head -c 32 /dev/urandom | od -An -tx1 -v | tr -d ' \n')"
printf '%s\n' "$psk" >"$work/psk.key"
install -m 0640 -o root -g "$gid" "$work/psk.key" "$root/etc/gardend/psk.key"
# A nano configuration that runs on its own; each test run's seed disk
# replaces it with one naming its ground.
cat >"$work/gardend.toml" <<TOML
name = "vm-nano"
roles = ["nano"]
data_dir = "/var/lib/gardend"
listen = ["/ip4/0.0.0.0/tcp/4001"]
psk_file = "/etc/gardend/psk.key"
key = "/var/lib/gardend/identity.key"
log_level = "info"

[master]
peer_id = "12D3KooWJDioB5uqnoQaKeSiPCkVFABp46QwYxPgYxP2kygmVFL5"
addrs = ["/ip4/192.0.2.10/tcp/4001"]

[profile]
kind = "continuous"
TOML
install -m 0640 -o root -g "$gid" "$work/gardend.toml" "$root/etc/gardend/gardend.toml"

# The identity: gardend keygen inside the image, as the service user.
run_in_root=()
if [ "$arch" = arm64 ]; then
	cp /usr/bin/qemu-aarch64-static "$root/qemu-user"
	run_in_root=(/qemu-user)
fi
chroot --userspec="$uid:$gid" "$root" "${run_in_root[@]}" /usr/bin/gardend keygen --config /etc/gardend/gardend.toml >"$work/peer-id" 2>/dev/null
rm -f "$root/qemu-user"

# Test-image-only units: the agent, the seed, the network, the report.
install -m 0755 "$guest/gardend-vm-agent" "$root/usr/local/sbin/gardend-vm-agent"
for u in "$guest"/*.service; do
	install -m 0644 "$u" "$root/etc/systemd/system/$(basename "$u")"
done
systemctl --root="$root" enable gardend.service gardend-vm-agent.service gardend-vm-seed.service \
	gardend-vm-net.service gardend-vm-report.service >/dev/null 2>&1
# No getty on the console: the bench reads it, nobody logs in.
systemctl --root="$root" mask serial-getty@ttyS0.service serial-getty@ttyAMA0.service getty@tty1.service >/dev/null 2>&1
echo "gardend-vm" >"$root/etc/hostname"

mkdir "$work/img"
cp "$root"/boot/vmlinuz-* "$work/img/vmlinuz"
cp "$root"/boot/initrd.img-* "$work/img/initrd.img"
mkfs.ext4 -q -F -L gardend-root -d "$root" "$work/img/rootfs.img" 1G
cp "$work/psk.key" "$work/peer-id" "$work/img/"
# Seconds the base took when it was built, and this layer.
base_s=$(cat "$base.seconds" 2>/dev/null || echo 0)
awk "BEGIN{printf \"%.1f %.1f\\n\", $base_s, $(date +%s.%N) - $base_done}" >"$work/img/build-seconds"
rm -rf "$img"
mv "$work/img" "$img"
# Keep the two newest images and bases per architecture.
ls -1dt "$cache"/img-"$arch"-* 2>/dev/null | tail -n +3 | xargs -r rm -rf
ls -1t "$cache"/base-"$arch"-*.tar 2>/dev/null | tail -n +3 | while read -r old; do rm -f "$old" "$old.seconds"; done
log "image ready (base and layer seconds: $(cat "$img/build-seconds"))"
echo "$img" >&3
