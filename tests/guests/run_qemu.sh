#!/bin/bash
# Run one test guest under plain QEMU (TCG) as a Multiboot kernel, for
# debugging the guests themselves without the hypervisor.
#
#   tests/guests/run_qemu.sh ELF [COMMAND LINE] [-- QEMU ARGS]
#
# Serial output goes to stdout.  Exits with the guest's code (what it
# wrote to port 0xF4), 0 when QEMU stopped another way (e.g. a triple
# fault under -no-reboot), or 124 on the 60 s timeout (TIMEOUT=s).
set -uo pipefail

if [ $# -lt 1 ]; then
	echo "usage: $0 ELF [COMMAND LINE] [-- QEMU ARGS]" >&2
	exit 2
fi
elf=$1
shift
cmdline=""
if [ $# -gt 0 ] && [ "$1" != "--" ]; then
	cmdline=$1
	shift
fi
[ $# -gt 0 ] && [ "$1" = "--" ] && shift

timeout "${TIMEOUT:-60}" qemu-system-i386 -kernel "$elf" -append "$cmdline" \
	-serial stdio -display none -monitor none -nic none -no-reboot \
	-device isa-debug-exit,iobase=0xf4,iosize=0x04 "$@"
rc=$?
# isa-debug-exit makes QEMU exit with (code << 1) | 1.
if [ $rc -ne 124 ] && [ $((rc & 1)) -eq 1 ]; then
	rc=$((rc >> 1))
	printf 'EXIT 0x%02x\n' $rc
fi
exit $rc
