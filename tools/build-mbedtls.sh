#!/usr/bin/env bash
# tools/build-mbedtls.sh OUTDIR NEWLIB_INC
#
# Builds mbedTLS (Debian source package `mbedtls`, fetched by
# tools/fetch-src.sh into build/third_party/mbedtls, override with
# MBEDTLS_DIR; never edited) twice:
#
#   OUTDIR/kernel/libmbedtls.a  freestanding, with the kernel's flags and
#       Newlib's headers, configured by net/port/include/mbedtls_config_tern.h
#       (MBEDTLS_CONFIG_FILE): TLS 1.2 PSK only, no file system, sockets,
#       clock or platform entropy.  The kernel must provide
#       mbedtls_hardware_poll() (net/entropy.c).
#   OUTDIR/host/libmbedtls.a    for Linux with the host's gcc and mbedTLS's
#       own default configuration (mbedtls/config.h), for tools/ternctl.c.
#
# Each archive holds the crypto, X.509 and TLS objects together.  A stamp
# per build, keyed on the mbedTLS version, the config header, the flags and
# the source list, makes a second run instant.  Warnings from mbedTLS's own
# sources are logged (OUTDIR/*/build.log), not fatal.
set -euo pipefail

if [ $# -ne 2 ]; then
	echo "usage: $0 OUTDIR NEWLIB_INC" >&2
	exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)
newlib_inc=$(cd "$2" && pwd)
mbedtls=${MBEDTLS_DIR:-$root/build/third_party/mbedtls}
port="$root/net/port/include"

if [ ! -f "$newlib_inc/newlib.h" ]; then
	echo "build-mbedtls: $newlib_inc has no newlib.h: run tools/build-newlib.sh" >&2
	exit 1
fi
"$root/tools/fetch-src.sh" mbedtls "$mbedtls"

# Kernel: every library source except the ones that need an operating
# system (sockets, clocks, /dev/urandom) or are the PSA layer (off in the
# config).  The config's #ifdefs empty the rest of what is not wanted.
kernel_skip='^(net_sockets|timing|entropy_poll|psa_.*|havege)\.c$'

kernel_cflags=(-std=gnu11 -O2 -g -ffreestanding -fno-stack-protector -mno-red-zone
	-mcmodel=kernel -fno-pic -fno-pie -nostdinc
	-isystem "$(gcc -print-file-name=include)" -isystem "$newlib_inc"
	-I"$port" -I"$mbedtls/include"
	'-DMBEDTLS_CONFIG_FILE="mbedtls_config_tern.h"')
# The PSK is the raw tern.cfg secret, up to 127 bytes (mbedTLS defaults
# to 32); ternctl is compiled with the same define.
host_cflags=(-std=gnu11 -O2 -g -DMBEDTLS_PSK_MAX_LEN=128 -I"$mbedtls/include")

# build NAME CONFIG_HEADER SKIP_REGEX CFLAGS...
build() {
	local name=$1 config=$2 skip=$3
	shift 3
	local cflags=("$@") dir="$out/$name" files key stamp log start failed pids jobs
	files=$(cd "$mbedtls/library" && ls ./*.c | sed 's|^\./||' | grep -Ev "$skip" || true)
	key=$( {
		cat "$mbedtls/.tern-stamp" "$config"
		[ "$name" = host ] || cat "$newlib_inc/newlib.h"
		printf '%s\n' "${cflags[@]}" "$files" "$(gcc -dumpfullversion)"
	} | sha256sum | cut -c1-16)
	stamp="$dir/.tern-stamp"
	if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ] && [ -f "$dir/libmbedtls.a" ]; then
		# Up to date: newer than what make compared it with (the
		# kernel config header does not change the host build), so
		# make stops re-running this script and relinking its users.
		touch "$dir/libmbedtls.a"
		return 0
	fi
	log="$dir/build.log"
	rm -rf "$dir/obj" "$dir/libmbedtls.a" "$stamp"
	mkdir -p "$dir/obj"
	: >"$log"
	start=$(date +%s)
	echo "build-mbedtls: compiling $(wc -w <<<"$files") files ($name) from $mbedtls"
	pids=()
	jobs=$(nproc 2>/dev/null || echo 2)
	failed=0
	for src in $files; do
		(gcc "${cflags[@]}" -c "$mbedtls/library/$src" -o "$dir/obj/${src%.c}.o" \
			>"$dir/obj/${src%.c}.log" 2>&1 || {
			echo "FAILED: $src" >>"$dir/obj/${src%.c}.log"
			exit 1
		}) &
		pids+=($!)
		if [ ${#pids[@]} -ge "$jobs" ]; then
			wait "${pids[0]}" || failed=1
			pids=("${pids[@]:1}")
		fi
	done
	for pid in "${pids[@]}"; do
		wait "$pid" || failed=1
	done
	cat "$dir"/obj/*.log >>"$log" 2>/dev/null || true
	if [ $failed = 1 ]; then
		echo "build-mbedtls: $name compile failed; errors from $log:" >&2
		grep -B2 -A6 -E 'error|FAILED' "$log" | tail -n 60 >&2
		exit 1
	fi
	ar rcs "$dir/libmbedtls.a" "$dir"/obj/*.o
	echo "$key" >"$stamp"
	echo "build-mbedtls: $name done in $(($(date +%s) - start)) s," \
		"$(grep -c 'warning:' "$log" || true) warning(s) (see $log) -> $dir/libmbedtls.a"
}

build kernel "$port/mbedtls_config_tern.h" "$kernel_skip" "${kernel_cflags[@]}"
build host "$mbedtls/include/mbedtls/config.h" '^$' "${host_cflags[@]}"
