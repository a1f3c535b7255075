#!/usr/bin/env bash
# tools/deps.sh [--check]
#
# Installs the Debian packages Tern needs to build and test, and makes sure
# apt has deb-src entries for the system's Debian suites (tools/fetch-src.sh
# uses `apt-get source` to fetch lwIP and mbedTLS; their source is never
# committed).  Idempotent: prints "deps: all present" when nothing is to do.
#
#   --check   only report what is missing; exit 1 if anything is.
set -euo pipefail

PACKAGES=(
	# Toolchain for the kernel, the loader and the host unit tests.
	gcc make binutils
	# UEFI loader: headers, crt0, linker script and libefi/libgnuefi.
	gnu-efi
	# Newlib source tarball (built by tools/build-newlib.sh).
	newlib-source
	# `apt-get source` needs dpkg-source (dpkg-dev) and xz to unpack.
	dpkg-dev xz-utils
	# Emulators: QEMU (SVM, TCG) with OVMF firmware and its iSCSI driver
	# (qemu-block-extra: the peer in tests/bench/linux_io.py); Bochs (VMX, EPT).
	qemu-system-x86 qemu-block-extra ovmf bochs bochs-term bochsbios vgabios
	# Host unit tests.
	libcriterion-dev
	# `make fuzz`: libFuzzer targets for the pure parsers (clang's
	# -fsanitize=fuzzer needs libfuzzer-14-dev's runtime).
	clang-14 libfuzzer-14-dev
	# Test harness scripts.
	python3
	# The Linux test guest (make linux-guest): the static SSE check needs
	# libc.a; tools/fetch-linux.sh uses apt-get download and dpkg-deb
	# (apt, dpkg: always there) and tools/mkinitramfs.py writes the cpio
	# itself.  The kernel and busybox packages are downloaded, never
	# installed.
	libc6-dev
	# Building the FAT ESP image without mounting (mformat, mcopy).
	mtools
	# Lab networking: netns, bridges and tap devices; ping for checks;
	# iperf2, the peer of Tern's `iperf` commands (net_tests.py); nc to
	# watch `make run`'s Linux guest's counter across a migration.
	iproute2 iputils-ping iperf netcat-openbsd
	# A standard TLS-PSK client for the network console tests.
	openssl
	# Storage: tgt's tgtd is the iSCSI target of the lab and the storage
	# tests; libiscsi-bin's iscsi-ls/iscsi-perf are the reference
	# initiator of the storage benchmark.
	tgt libiscsi-bin
)

DEB_SRC_FILE=/etc/apt/sources.list.d/tern-deb-src.sources

check_only=0
case "${1:-}" in
	--check) check_only=1 ;;
	"") ;;
	*) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

codename() {
	local c=""
	if [ -r /etc/os-release ]; then
		# shellcheck source=/dev/null
		c=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
	fi
	echo "$c"
}

# Print "TYPE URI SUITE COMPONENTS... | SIGNED-BY" for every enabled
# entry in the deb822 *.sources files and the one-line *.list files.
list_entries() {
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -r "$f" ] || continue
		awk '
		function flush(   i, j, k, nt, nu, ns, t, u, s) {
			if (enabled != "no" && types != "" && uris != "" && suites != "") {
				nt = split(types, t, " "); nu = split(uris, u, " ")
				ns = split(suites, s, " ")
				for (i = 1; i <= nt; i++) for (j = 1; j <= nu; j++)
					for (k = 1; k <= ns; k++)
						print t[i], u[j], s[k], comps, "|", signed
			}
			types = uris = suites = comps = signed = enabled = ""; last = ""
		}
		/^[ \t]*#/ { next }
		/^[ \t]*$/ { flush(); next }
		/^[ \t]/ {	# continuation line of the previous field
			v = $0; sub(/^[ \t]+/, "", v)
			# An embedded key block: leave Signed-By out of our copy
			# (apt then falls back to its trusted keyrings).
			if (last == "signed-by") signed = ""
			next
		}
		{
			key = tolower(substr($0, 1, index($0, ":") - 1))
			v = substr($0, index($0, ":") + 1); sub(/^[ \t]+/, "", v)
			sub(/[ \t]+$/, "", v); last = key
			if (key == "types") types = v
			else if (key == "uris") uris = v
			else if (key == "suites") suites = v
			else if (key == "components") comps = v
			else if (key == "signed-by") signed = v
			else if (key == "enabled") enabled = tolower(v)
		}
		END { flush() }' "$f"
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -r "$f" ] || continue
		awk '
		/^[ \t]*(#|$)/ { next }
		$1 == "deb" || $1 == "deb-src" {
			t = $1; i = 2; signed = ""
			if ($2 ~ /^\[/) {	# [opt=val ...] block
				while (i <= NF) {
					o = $i; gsub(/[\[\]]/, "", o)
					if (o ~ /^signed-by=/) { sub(/^signed-by=/, "", o); signed = o }
					if ($i ~ /\]$/) { i++; break }
					i++
				}
			}
			line = t " " $i " " $(i + 1)
			for (j = i + 2; j <= NF; j++) line = line " " $j
			print line, "|", signed
		}' "$f"
	done
}

# Debian archive entries only: suites named after this release (bookworm,
# bookworm-updates, bookworm-security, ...). Third-party repositories use
# their own suite names (cloud-sdk-bookworm, nodistro) and are skipped.
debian_entries() {
	local cn
	cn=$(codename)
	[ -n "$cn" ] || cn=bookworm
	list_entries | awk -v cn="$cn" '$3 == cn || index($3, cn "-") == 1'
}

# True when every Debian "deb" URI+suite pair already has a deb-src twin.
deb_src_present() {
	[ -e "$DEB_SRC_FILE" ] && return 0
	local entries missing
	entries=$(debian_entries)
	missing=$(awk '
		$1 == "deb" { want[$2 " " $3] = 1 }
		$1 == "deb-src" { have[$2 " " $3] = 1 }
		END { n = 0; for (k in want) if (!(k in have)) n++; print n }
	' <<<"$entries")
	[ "$missing" = 0 ]
}

# deb822 text for the deb-src twins of the Debian "deb" entries, one stanza
# per URI (suites and components kept as the system has them).
deb_src_text() {
	echo "# Written by tern tools/deps.sh: source entries for apt-get source"
	echo "# (lwIP, mbedTLS), mirroring the system's Debian deb entries."
	debian_entries | awk '
		$1 == "deb" {
			split($0, halves, " [|] ?"); signed = halves[2]
			comps = ""
			for (i = 4; i <= NF && $i != "|"; i++) comps = comps (comps ? " " : "") $i
			key = $2
			if (!(key in suites)) { order[++n] = key; suites[key] = "" }
			if (index(" " suites[key] " ", " " $3 " ") == 0)
				suites[key] = suites[key] (suites[key] ? " " : "") $3
			split(comps, c, " ")
			for (j in c) if (index(" " cs[key] " ", " " c[j] " ") == 0)
				cs[key] = cs[key] (cs[key] ? " " : "") c[j]
			if (signed != "") sb[key] = signed
		}
		END {
			for (i = 1; i <= n; i++) {
				k = order[i]
				printf "\nTypes: deb-src\nURIs: %s\nSuites: %s\nComponents: %s\n", k, suites[k], cs[k]
				if (k in sb) printf "Signed-By: %s\n", sb[k]
			}
		}'
}

# apt's list files for source indices are named ..._source_Sources[.lz4|...].
source_lists_present() {
	compgen -G "/var/lib/apt/lists/*_source_Sources*" >/dev/null
}

# One dpkg-query call for all packages (a call per package is slow).
installed=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${PACKAGES[@]}" \
	2>/dev/null | awk '$2 == "ii" { print $1 }' || true)
missing=()
for p in "${PACKAGES[@]}"; do
	grep -qxF "$p" <<<"$installed" || missing+=("$p")
done

need_src=0
deb_src_present || need_src=1
need_update=0
if [ $need_src = 1 ] || ! source_lists_present || [ ${#missing[@]} -gt 0 ]; then
	need_update=1
fi

if [ ${#missing[@]} -eq 0 ] && [ $need_src = 0 ] && [ $need_update = 0 ]; then
	echo "deps: all present"
	exit 0
fi

if [ $check_only = 1 ]; then
	[ ${#missing[@]} -gt 0 ] && echo "deps: missing packages: ${missing[*]}"
	[ $need_src = 1 ] && echo "deps: missing deb-src entry ($DEB_SRC_FILE)"
	[ $need_src = 0 ] && ! source_lists_present &&
		echo "deps: apt source lists not downloaded (apt-get update needed)"
	exit 1
fi

if [ "$(id -u)" != 0 ]; then
	echo "deps: must run as root. Run:" >&2
	if [ $need_src = 1 ]; then
		# The deb-src file is generated from the system's entries.
		echo "  sudo $0" >&2
	else
		echo "  sudo apt-get update" >&2
		[ ${#missing[@]} -eq 0 ] ||
			echo "  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}" >&2
	fi
	exit 1
fi

if [ $need_src = 1 ]; then
	text=$(deb_src_text)
	if ! grep -q '^URIs:' <<<"$text"; then
		echo "deps: no Debian deb entries found in /etc/apt; cannot add deb-src" >&2
		exit 1
	fi
	printf '%s\n' "$text" >"$DEB_SRC_FILE"
	echo "deps: wrote $DEB_SRC_FILE"
fi

# One update, after the deb-src file exists, so source indices come too.
echo "deps: apt-get update"
apt-get update -qq
if [ ${#missing[@]} -gt 0 ]; then
	echo "deps: installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
echo "deps: done"
