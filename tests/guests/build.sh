#!/bin/bash
# Build every test guest into OUTDIR/NAME.elf (Multiboot v1, ELF32 i386).
#
#   tests/guests/build.sh OUTDIR
#
# Rebuilds everything when any source, the linker script or this script
# is newer than any output; otherwise does nothing.  Fails on the first
# error with a message on stderr.
set -euo pipefail

if [ $# -ne 1 ]; then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi

SRC=$(cd "$(dirname "$0")" && pwd)
OUT=$1
OBJ=$OUT/obj
CC=${CC:-gcc}
LD=${LD:-ld}
GUESTS="hello cpuid msr ports mmio dirty crash isolate bench migverify apic sse debug storm mbtest vhostile"

CFLAGS="-std=gnu11 -m32 -march=i686 -ffreestanding -fno-pic -fno-pie \
 -fno-stack-protector -fno-asynchronous-unwind-tables -fno-builtin \
 -fno-tree-loop-distribute-patterns -fno-delete-null-pointer-checks \
 -nostdinc -isystem $($CC -print-file-name=include) -I$SRC/rt \
 -O2 -g -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes \
 -mno-sse -mno-mmx -mgeneral-regs-only"
RT="rt/entry.S rt/rt.c rt/mb.c"

die() {
	echo "tests/guests/build.sh: $*" >&2
	exit 1
}

up_to_date() {
	local g newer
	for g in $GUESTS; do
		[ -f "$OUT/$g.elf" ] || return 1
		# migverify shares its header layout with the kernel's checker.
		newer=$(find "$SRC" "$SRC/../../kernel/lib/migverify.h" -type f \
			\( -name '*.[chS]' -o -name '*.ld' -o -name '*.sh' \) \
			-newer "$OUT/$g.elf" -print -quit)
		[ -z "$newer" ] || return 1
	done
	return 0
}

compile() {	# src obj
	$CC $CFLAGS -c "$SRC/$1" -o "$2" || die "compiling $1 failed"
}

# Multiboot 0.6.96 3.1: the header is 32-bit aligned in the first 8192
# bytes.  od prints aligned words from offset 0, so a hit is aligned.
check_header() {
	od -An -v -tx4 -N8192 "$1" | grep -w 1badb002 >/dev/null ||
		die "$1: no Multiboot header in the first 8 KiB"
}

up_to_date && exit 0
mkdir -p "$OBJ" || die "cannot create $OBJ"

# Compile everything in parallel, then link each guest.
rt_objs=""
pids=""
for s in $RT; do
	o=$OBJ/rt_$(basename "${s%.*}").o
	compile "$s" "$o" &
	pids="$pids $!"
	rt_objs="$rt_objs $o"
done
for g in $GUESTS; do
	compile "$g.c" "$OBJ/$g.o" &
	pids="$pids $!"
done
failed=0
for p in $pids; do
	wait "$p" || failed=1
done
[ $failed -eq 0 ] || die "build failed"

for g in $GUESTS; do
	$LD -m elf_i386 -nostdlib -T "$SRC/guest.ld" -Map "$OBJ/$g.map" \
		-o "$OUT/$g.elf.tmp" $rt_objs "$OBJ/$g.o" ||
		die "linking $g failed"
	check_header "$OUT/$g.elf.tmp"
	mv -f "$OUT/$g.elf.tmp" "$OUT/$g.elf"
done
