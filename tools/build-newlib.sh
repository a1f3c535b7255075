#!/usr/bin/env bash
# tools/build-newlib.sh [OUTDIR]
#
# Builds Newlib (libc.a, libm.a) for the Tern kernel from Debian's
# newlib-source tarball, with the host gcc and the kernel's code model.
# Result: OUTDIR/install/x86_64-elf/{include,lib/libc.a,lib/libm.a}.
# OUTDIR defaults to build/newlib.  A stamp keyed on the tarball and the
# flags below makes a second run instant; the log is OUTDIR/build.log.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/build/newlib}
mkdir -p "$out"
out=$(cd "$out" && pwd)

tarball=$(find /usr/src/newlib -maxdepth 1 -name "newlib-*.tar.xz" 2>/dev/null |
	sort -V | tail -n 1 || true)
if [ -z "$tarball" ]; then
	echo "build-newlib: no /usr/src/newlib/newlib-*.tar.xz: run tools/deps.sh" >&2
	exit 1
fi

gcc_inc=$(gcc -print-file-name=include)

# The kernel is linked at 0xffffffff80000000: -mcmodel=kernel lets code
# address symbols there with sign-extended 32-bit relocations.
# -mno-red-zone: interrupts and exceptions arrive on the current stack.
# -nostdinc + gcc's own include dir: no glibc headers may leak in; newlib's
# build adds its own header dirs ahead of these.
cflags="-O2 -g -ffreestanding -fno-stack-protector -mno-red-zone"
cflags+=" -mcmodel=kernel -fno-pic -fno-pie -nostdinc -isystem $gcc_inc"

# --disable-newlib-supplied-syscalls: the kernel supplies the hooks
# (write, sbrk, ...; no leading underscore for this target).
# --enable-newlib-nano-malloc: small allocator, enough for a kernel heap.
# Float printf stays enabled (defaults otherwise).
conf=(--target=x86_64-elf --prefix="$out/install"
	--disable-multilib --disable-newlib-supplied-syscalls
	--enable-newlib-nano-malloc)

key=$(printf '%s\n' "$(basename "$tarball")" "$(sha256sum <"$tarball")" \
	"$cflags" "${conf[*]}" "$(gcc -dumpfullversion)" | sha256sum | cut -c1-16)
stamp="$out/.tern-stamp"
lib="$out/install/x86_64-elf/lib"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ] &&
	[ -f "$lib/libc.a" ] && [ -f "$lib/libm.a" ]; then
	exit 0
fi

log="$out/build.log"
rm -rf "$out/src" "$out/obj" "$out/install" "$stamp"
mkdir -p "$out/src" "$out/obj"
: >"$log"

fail() {
	echo "build-newlib: $1 failed; last lines of $log:" >&2
	tail -n 40 "$log" >&2
	exit 1
}

echo "build-newlib: building $(basename "$tarball") in $out"
start=$(date +%s)
tar -xf "$tarball" -C "$out/src" --strip-components=1 >>"$log" 2>&1 || fail "unpack"
t_unpack=$(date +%s)

(cd "$out/obj" && "$out/src/configure" "${conf[@]}" \
	CC_FOR_TARGET=gcc AR_FOR_TARGET=ar AS_FOR_TARGET=as LD_FOR_TARGET=ld \
	NM_FOR_TARGET=nm RANLIB_FOR_TARGET=ranlib OBJDUMP_FOR_TARGET=objdump \
	STRIP_FOR_TARGET=strip CFLAGS_FOR_TARGET="$cflags") >>"$log" 2>&1 ||
	fail "configure"
t_conf=$(date +%s)

# Only the newlib target: libgloss's board support is of no use here.
jobs=$(nproc 2>/dev/null || echo 2)
make -C "$out/obj" -j"$jobs" all-target-newlib >>"$log" 2>&1 || fail "make"
make -C "$out/obj" install-target-newlib >>"$log" 2>&1 || fail "make install"

for f in "$lib/libc.a" "$lib/libm.a" "$out/install/x86_64-elf/include/stdio.h"; do
	[ -f "$f" ] || fail "install check ($f missing)"
done
echo "$key" >"$stamp"
end=$(date +%s)
echo "build-newlib: done in $((end - start)) s (unpack $((t_unpack - start)) s," \
	"configure $((t_conf - t_unpack)) s, make $((end - t_conf)) s)" \
	"-> $out/install/x86_64-elf"
