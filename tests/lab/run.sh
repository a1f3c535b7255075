#!/usr/bin/env bash
# make run: boot build/esp in QEMU (AMD-V with nested paging under TCG) with
# the serial console on this terminal.  Quit with Ctrl-A X, or `poweroff`.
#
#   TERN_MEM=2G TERN_SMP=4 make run      bigger host
#   TERN_CPU=max make run                another CPU model
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
esp=${TERN_ESP:-$root/build/esp}
mem=${TERN_MEM:-1G}
smp=${TERN_SMP:-2}
cpu=${TERN_CPU:-qemu64,+svm,+npt}
code=/usr/share/OVMF/OVMF_CODE.fd
vars_tmpl=/usr/share/OVMF/OVMF_VARS.fd

for f in "$code" "$vars_tmpl"; do
	[ -f "$f" ] || { echo "run: $f missing: apt-get install ovmf" >&2; exit 1; }
done
command -v qemu-system-x86_64 >/dev/null ||
	{ echo "run: qemu-system-x86_64 missing: apt-get install qemu-system-x86" >&2; exit 1; }
[ -f "$esp/EFI/BOOT/BOOTX64.EFI" ] || { echo "run: no ESP at $esp: run make" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$vars_tmpl" "$tmp/vars.fd"

echo "Tern: booting $esp in QEMU ($cpu, $smp CPUs, $mem); Ctrl-A X quits"
qemu-system-x86_64 -machine q35 -cpu "$cpu" -smp "$smp" -m "$mem" \
	-display none -no-user-config -nodefaults -boot menu=off \
	-drive if=pflash,format=raw,readonly=on,file="$code" \
	-drive if=pflash,format=raw,file="$tmp/vars.fd" \
	-drive format=raw,file=fat:rw:"$esp" \
	-device isa-debug-exit,iobase=0xf4,iosize=0x04 \
	-serial mon:stdio -nic none
