#!/usr/bin/env bash
# tools/fetch-linux.sh OUTDIR
#
# Fetches the Linux test guest's parts from the host's Debian archive into
# OUTDIR (cached; never committed): Debian's stock kernel (the package
# linux-image-amd64 depends on, e.g. linux-image-6.1.0-NN-amd64) and
# busybox-static, with `apt-get download`, and extracts vmlinuz and the
# busybox binary with dpkg-deb.  Writes OUTDIR/vmlinuz, OUTDIR/busybox and
# OUTDIR/kernel-version.  Nothing is installed on the host.
set -euo pipefail

out=${1:?usage: $0 OUTDIR}
mkdir -p "$out/debs"
out=$(cd "$out" && pwd)

if [ -s "$out/vmlinuz" ] && [ -x "$out/busybox" ]; then
	exit 0
fi

# The metapackage only depends on the versioned image package.
pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
	sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n1)
if [ -z "$pkg" ]; then
	echo "fetch-linux: apt-cache knows no linux-image-amd64 (run apt-get update)" >&2
	exit 1
fi
echo "fetch-linux: $pkg and busybox-static"
(cd "$out/debs" && apt-get download -q "$pkg" busybox-static)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -x "$out"/debs/"$pkg"_*.deb "$tmp/k"
dpkg-deb -x "$out"/debs/busybox-static_*.deb "$tmp/b"
cp "$tmp"/k/boot/vmlinuz-* "$out/vmlinuz"
cp "$tmp/b/bin/busybox" "$out/busybox"
chmod 0755 "$out/busybox"
basename "$tmp"/k/boot/vmlinuz-* | sed 's/^vmlinuz-//' >"$out/kernel-version"
echo "fetch-linux: vmlinuz $(cat "$out/kernel-version"), $(stat -c %s "$out/vmlinuz") bytes"
