#!/usr/bin/env bash
# tools/build-lwip.sh OUTDIR NEWLIB_INC
#
# Compiles lwIP (NO_SYS=1, raw API, IPv4) with the kernel's flags into
# OUTDIR/liblwip.a.  The source comes from Debian via tools/fetch-src.sh into
# build/third_party/lwip (override with LWIP_DIR) and is never edited; the
# port headers are net/port/include/{lwipopts.h,arch/cc.h}.
# A stamp keyed on those headers, the lwIP version, the flags and the source
# list makes a second run instant; any header change rebuilds everything.
# Warnings from lwIP's own sources are logged (OUTDIR/build.log), not fatal.
set -euo pipefail

if [ $# -ne 2 ]; then
	echo "usage: $0 OUTDIR NEWLIB_INC" >&2
	exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)
newlib_inc=$(cd "$2" && pwd)
lwip=${LWIP_DIR:-$root/build/third_party/lwip}
port="$root/net/port/include"

if [ ! -f "$newlib_inc/newlib.h" ]; then
	echo "build-lwip: $newlib_inc has no newlib.h: run tools/build-newlib.sh" >&2
	exit 1
fi
"$root/tools/fetch-src.sh" lwip "$lwip"

# Sources, relative to $lwip/src.
srcs=('core/*.c' 'core/ipv4/*.c' netif/ethernet.c apps/lwiperf/lwiperf.c)

cflags=(-std=gnu11 -O2 -g -ffreestanding -fno-stack-protector -mno-red-zone
	-mcmodel=kernel -fno-pic -fno-pie -nostdinc
	-isystem "$(gcc -print-file-name=include)" -isystem "$newlib_inc"
	-I"$port" -I"$lwip/src/include")

# The mbedTLS glue (altcp_tls_mbedtls*.c) joins when the mbedTLS source has
# been fetched (tools/build-mbedtls.sh), compiled against its headers and
# the kernel's mbedTLS configuration.
mbedtls=${MBEDTLS_DIR:-$root/build/third_party/mbedtls}
mbedtls_key=""
if [ -f "$mbedtls/.tern-stamp" ]; then
	srcs+=(apps/altcp_tls/altcp_tls_mbedtls.c apps/altcp_tls/altcp_tls_mbedtls_mem.c)
	cflags+=(-I"$mbedtls/include" '-DMBEDTLS_CONFIG_FILE="mbedtls_config_tern.h"'
		-DLWIP_ALTCP_TLS_MBEDTLS=1)
	mbedtls_key=$(cat "$mbedtls/.tern-stamp" "$port/mbedtls_config_tern.h")
fi

# shellcheck disable=SC2048,SC2086 # the patterns are globbed inside src/
files=$(cd "$lwip/src" && ls ${srcs[*]})
key=$( {
	cat "$lwip/.tern-stamp" "$port/lwipopts.h" "$port/arch/cc.h"
	cat "$newlib_inc/newlib.h"
	echo "$mbedtls_key"
	printf '%s\n' "${cflags[@]}" "$files" "$(gcc -dumpfullversion)"
} | sha256sum | cut -c1-16)
stamp="$out/.tern-stamp"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ] && [ -f "$out/liblwip.a" ]; then
	exit 0
fi

log="$out/build.log"
rm -rf "$out/obj" "$out/liblwip.a" "$stamp"
mkdir -p "$out/obj"
: >"$log"
start=$(date +%s)
echo "build-lwip: compiling $(wc -w <<<"$files") files from $lwip"

# One object per source, named after its path (core/ipv4/ip4.c ->
# core_ipv4_ip4.o) so equal basenames cannot collide.
compile_one() {
	local src=$1 obj
	obj="$out/obj/$(tr / _ <<<"${src%.c}").o"
	gcc "${cflags[@]}" -c "$lwip/src/$src" -o "$obj" >"$obj.log" 2>&1 || {
		echo "FAILED: $src" >>"$obj.log"
		return 1
	}
}
pids=()
jobs=$(nproc 2>/dev/null || echo 2)
failed=0
for src in $files; do
	compile_one "$src" &
	pids+=($!)
	if [ ${#pids[@]} -ge "$jobs" ]; then
		wait "${pids[0]}" || failed=1
		pids=("${pids[@]:1}")
	fi
done
for pid in "${pids[@]}"; do
	wait "$pid" || failed=1
done
cat "$out"/obj/*.log >>"$log" 2>/dev/null || true
if [ $failed = 1 ]; then
	echo "build-lwip: compile failed; errors from $log:" >&2
	grep -B2 -A6 -E 'error|FAILED' "$log" | tail -n 60 >&2
	exit 1
fi

ar rcs "$out/liblwip.a" "$out"/obj/*.o
nwarn=$(grep -c 'warning:' "$log" || true)
echo "$key" >"$stamp"
echo "build-lwip: done in $(($(date +%s) - start)) s, $nwarn warning(s)" \
	"(see $log) -> $out/liblwip.a"
