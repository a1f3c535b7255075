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

# The guest's virtio and ext4 modules, in load order (their depends=),
# Debian's mke2fs with the libraries it links (busybox's mke2fs makes
# only ext2), and iperf2 for the guest's TCP stream test.
MODULES="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci
virtio_blk failover net_failover virtio_net crc16 mbcache jbd2 crc32c_generic ext4"
EXTRA_DEBS="e2fsprogs libext2fs2 libcom-err2 libblkid1 libuuid1 libc6 iperf libstdc++6 libgcc-s1"

# Written last: a run cut short fetches everything again.
stamp="$out/.fetched-3"
if [ -s "$out/vmlinuz" ] && [ -x "$out/busybox" ] && [ -e "$stamp" ]; then
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
(cd "$out/debs" && apt-get download -q "$pkg" busybox-static $EXTRA_DEBS)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -x "$out"/debs/"$pkg"_*.deb "$tmp/k"
dpkg-deb -x "$out"/debs/busybox-static_*.deb "$tmp/b"
cp "$tmp"/k/boot/vmlinuz-* "$out/vmlinuz"
cp "$tmp/b/bin/busybox" "$out/busybox"
chmod 0755 "$out/busybox"
basename "$tmp"/k/boot/vmlinuz-* | sed 's/^vmlinuz-//' >"$out/kernel-version"
rm -rf "$out/modules" "$out/extra"
mkdir -p "$out/modules"
: >"$out/modules/order.tmp"
for m in $MODULES; do
	f=$(find "$tmp/k/lib/modules" -name "$m.ko" | head -n1)
	if [ -z "$f" ]; then
		echo "fetch-linux: $pkg has no $m.ko" >&2
		exit 1
	fi
	cp "$f" "$out/modules/"
	echo "$m.ko" >>"$out/modules/order.tmp"
done
mv "$out/modules/order.tmp" "$out/modules/order"
for d in $EXTRA_DEBS; do
	dpkg-deb -x "$(ls "$out"/debs/"${d}"_*.deb | head -n1)" "$tmp/x"
done
mkdir -p "$out/extra/sbin" "$out/extra/bin" "$out/extra/lib/x86_64-linux-gnu" "$out/extra/lib64"
cp "$tmp/x/sbin/mke2fs" "$out/extra/sbin/"
cp "$tmp/x/usr/bin/iperf" "$out/extra/bin/"
# Some packages ship in /lib, some in /usr/lib (the usr-merge is half
# done in bookworm): the guest gets them all in /lib.
lib() {
	f=$(find "$tmp/x/lib" "$tmp/x/usr/lib" -name "$1" 2>/dev/null | head -n1)
	if [ -z "$f" ]; then
		echo "fetch-linux: no $1 in $EXTRA_DEBS" >&2
		exit 1
	fi
	cp -L "$f" "$2"
}
for l in libext2fs.so.2 libcom_err.so.2 libblkid.so.1 libuuid.so.1 libe2p.so.2 libc.so.6 \
	libstdc++.so.6 libm.so.6 libgcc_s.so.1; do
	lib "$l" "$out/extra/lib/x86_64-linux-gnu/"
done
lib ld-linux-x86-64.so.2 "$out/extra/lib64/"
echo "fetch-linux: $(wc -l <"$out/modules/order") modules, mke2fs $(dpkg-deb -f "$(ls "$out"/debs/e2fsprogs_*.deb | head -n1)" Version)"
echo "fetch-linux: vmlinuz $(cat "$out/kernel-version"), $(stat -c %s "$out/vmlinuz") bytes"
touch "$stamp"
