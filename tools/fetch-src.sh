#!/usr/bin/env bash
# tools/fetch-src.sh PKG DEST
#
# Fetches the Debian source package PKG with `apt-get source --download-only`
# and unpacks it with `dpkg-source -x --skip-patches` (apt-get source has no
# --skip-patches of its own), then moves the upstream tree to DEST without
# Debian's debian/ folder and without Debian's patches applied.
# DEST/.tern-stamp records the exact version; when it exists nothing is
# done, so rebuilds never refetch.  Third-party source lives only under
# build/ and is never committed.
#
# apt checks every file against the checksums in the signed archive index,
# so dpkg-source's "cannot verify inline signature" warning (it lacks the
# uploader's key) is expected; the log is shown only on failure.
set -euo pipefail

if [ $# -ne 2 ]; then
	echo "usage: $0 PKG DEST" >&2
	exit 2
fi
pkg=$1
dest=$2
root=$(cd "$(dirname "$0")/.." && pwd)
stamp="$dest/.tern-stamp"

if [ -f "$stamp" ]; then
	exit 0
fi

# Without a deb-src entry apt knows no source records for the package.
if [ -z "$(apt-cache showsrc "$pkg" 2>/dev/null | sed -n 's/^Version: //p')" ]; then
	echo "fetch-src: no source record for '$pkg' (deb-src entry or apt lists" \
		"missing): run tools/deps.sh as root first" >&2
	exit 1
fi

mkdir -p "$root/build/third_party"
tmp=$(mktemp -d "$root/build/third_party/.fetch-$pkg.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# As root, apt downloads as the unprivileged _apt user, which cannot write
# into a folder owned by root with mode 700 (mktemp's) and then warns
# "Download is performed unsandboxed as root".  The download is verified by
# checksum either way, so as root we ask for no sandbox user explicitly.
apt_opts=(-q)
if [ "$(id -u)" = 0 ]; then
	apt_opts+=(-o APT::Sandbox::User=root)
fi

echo "fetch-src: apt-get source $pkg"
if ! (cd "$tmp" && apt-get "${apt_opts[@]}" source --download-only "$pkg" \
	&& dpkg-source -x --skip-patches ./*.dsc) >"$tmp/fetch.log" 2>&1; then
	cat "$tmp/fetch.log" >&2
	echo "fetch-src: fetching or unpacking $pkg failed" >&2
	exit 1
fi

dsc=$(find "$tmp" -maxdepth 1 -name "*.dsc" | head -n 1)
version=$(sed -n 's/^Version: //p' "$dsc" | head -n 1)
tree=$(find "$tmp" -mindepth 1 -maxdepth 1 -type d | head -n 1)
if [ -z "$version" ] || [ -z "$tree" ]; then
	cat "$tmp/fetch.log" >&2
	echo "fetch-src: could not find the unpacked tree or version" >&2
	exit 1
fi

# Keep the upstream tree only; Debian's packaging is not ours to build.
rm -rf "$tree/debian"
rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
mv "$tree" "$dest"
echo "$pkg $version" >"$stamp"
echo "fetch-src: $pkg $version -> $dest"
