# Tern: one Makefile for the loader, the kernel, host tools and the tests.
#
#   make            build everything (ESP tree at build/esp/)
#   make run        install what is missing, build, boot the lab
#   make test       every test suite (unit, QEMU, Bochs)
#   make deps       install the Debian packages (idempotent)
#   make fuzz       libFuzzer on the stream codec, the iSCSI initiator, the
#                   boot planners, the APIC models and the L2 switch with
#                   virtio-net, FUZZ_SECONDS (60) each
#   make test-unit | test-harness | test-qemu | test-svm | test-net | test-netcon | test-migrate |
#        test-entropy | test-storage | test-bochs | test-linux | test-linux-bochs
#                   one suite
#
# Third-party code (Newlib, lwIP) is fetched with Debian's tools and built
# under build/ by the scripts in tools/; stamps make rebuilds skip it.

SHELL		:= /bin/bash
B		:= build
ESP		:= $(B)/esp
GEN		:= $(B)/gen
CC		:= gcc
LD		:= ld
OBJCOPY		:= objcopy
PYTHON		:= python3

VERSION		:= $(shell git describe --always --dirty --tags 2>/dev/null || echo unknown)
VERSION		:= 0.1.0-$(VERSION)

WARN		:= -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes
GCC_INC		:= $(shell $(CC) -print-file-name=include)
NEWLIB		:= $(B)/newlib/install/x86_64-elf
NEWLIB_STAMP	:= $(B)/newlib/.tern-stamp
LWIP_LIB	:= $(B)/lwip/liblwip.a
MBEDTLS_KLIB	:= $(B)/mbedtls/kernel/libmbedtls.a
MBEDTLS_HLIB	:= $(B)/mbedtls/host/libmbedtls.a
TERNCTL		:= $(B)/tools/ternctl

# ---- kernel ----
# -mcmodel=kernel: linked at -2 GiB.  -mno-red-zone: interrupts use the
# current stack.  Frame pointers feed the exception handler's stack trace.
KCFLAGS		:= -std=gnu11 -O2 -g -ffreestanding -fno-stack-protector \
		   -mno-red-zone -mcmodel=kernel -fno-pic -fno-pie \
		   -fno-omit-frame-pointer -nostdinc -isystem $(GCC_INC) \
		   -isystem $(NEWLIB)/include -iquote . -I$(GEN) $(WARN) -MMD -MP
KASFLAGS	:= -iquote . -I$(GEN) -MMD -MP

# Pure modules: no hardware, so the kernel, the unit tests and the fuzzers
# build the same files: kernel/lib/, storage/lib/ (iSCSI and SCSI codecs)
# the device models' state machines (kernel/devices/model/) and the
# migration stream codec (migrate/stream*.c).  The other files of
# migrate/ are kernel-only.  Every project header is included by its path
# from the top ("kernel/virt/vm.h", "migrate/stream.h") through -iquote .
MIG_PURE_SRCS	:= $(sort $(wildcard migrate/stream*.c) migrate/savearea.c migrate/downtime.c)
LIB_SRCS	:= $(sort $(wildcard kernel/lib/*.c kernel/devices/model/*.c storage/lib/*.c \
		   net/switch/*.c)) $(MIG_PURE_SRCS)
# kernel/: platform/ (CPUs, memory, APIC, time, ACPI, serial), virt/ (VMs,
# the vCPU loop, the vendor ops, CPUID/MSR/MMIO, the dirty log), devices/
# (device models), mgmt/ (console and commands), lib/ (pure), main.c.
KERNEL_CSRCS	:= $(sort $(wildcard kernel/*.c kernel/platform/*.c kernel/virt/*.c \
		   kernel/devices/*.c kernel/mgmt/*.c svm/*.c vmx/*.c net/*.c net/stack/*.c \
		   net/port/*.c storage/*.c) \
		   $(filter-out $(MIG_PURE_SRCS),$(wildcard migrate/*.c))) \
		   $(LIB_SRCS)
KERNEL_ASRCS	:= $(sort $(wildcard kernel/platform/*.S svm/*.S vmx/*.S))
KERNEL_OBJS	:= $(patsubst %.c,$(B)/k/%.o,$(KERNEL_CSRCS)) \
		   $(patsubst %.S,$(B)/k/%.o,$(KERNEL_ASRCS))

# ---- UEFI loader (GNU-EFI) ----
EFI_INC		:= /usr/include/efi
BCFLAGS		:= -std=gnu11 -O2 -fpic -fshort-wchar -ffreestanding \
		   -fno-stack-protector -mno-red-zone -maccumulate-outgoing-args \
		   -DGNU_EFI_USE_MS_ABI -nostdinc -isystem $(GCC_INC) \
		   -isystem $(NEWLIB)/include -I$(EFI_INC) -I$(EFI_INC)/x86_64 \
		   -iquote . -I$(GEN) $(WARN) -Wno-missing-prototypes -MMD -MP
BOOT_SRCS	:= $(sort $(wildcard boot/*.c)) kernel/lib/config.c kernel/lib/elf.c
BOOT_OBJS	:= $(patsubst %.c,$(B)/b/%.o,$(BOOT_SRCS))

# ---- host unit tests (Criterion, sanitizers on) ----
UCFLAGS		:= -std=gnu11 -O1 -g -fsanitize=address,undefined \
		   -fno-sanitize-recover=undefined -fno-omit-frame-pointer \
		   -iquote . -I$(GEN) $(WARN) -MMD -MP
UNIT_SRCS	:= $(sort $(wildcard tests/unit/*.c)) $(LIB_SRCS)
UNIT_OBJS	:= $(patsubst %.c,$(B)/u/%.o,$(UNIT_SRCS))
UNIT_BIN	:= $(B)/tests/unit-tests

.PHONY: all esp deps deps-check run test test-unit test-harness fuzz fuzz-bzimage fuzz-vnet test-qemu test-vtx test-svm test-net test-netcon test-entropy \
	test-migrate test-storage test-bochs linux-guest esp-linux test-linux test-linux-io test-linux-mig test-linux-save test-linux-bochs \
	clean distclean third-party
.DEFAULT_GOAL := all

all: esp $(UNIT_BIN) third-party $(TERNCTL)

# ---- generated version header (rewritten only when it changes) ----
$(GEN)/version.h: FORCE
	@mkdir -p $(GEN)
	@printf '%s\n' '#define TERN_VERSION "$(VERSION)"' \
		'#define TERN_VERSION_W L"$(VERSION)"' \
		'#define TERN_BUILD_DATE "$(shell date -u +%Y-%m-%d)"' \
		'#define TERN_COMPILER "gcc $(shell $(CC) -dumpfullversion)"' > $@.tmp
	@cmp -s $@.tmp $@ && rm $@.tmp || mv $@.tmp $@
FORCE:

# ---- third party ----
$(NEWLIB_STAMP): tools/build-newlib.sh
	tools/build-newlib.sh $(B)/newlib

# mbedTLS twice: freestanding for the kernel, and for the host (ternctl).
$(MBEDTLS_KLIB) $(MBEDTLS_HLIB) &: tools/build-mbedtls.sh tools/fetch-src.sh \
		$(NEWLIB_STAMP) net/port/include/mbedtls_config_tern.h
	tools/build-mbedtls.sh $(B)/mbedtls $(NEWLIB)/include

# After mbedTLS: lwIP's altcp TLS glue is built against it.
$(LWIP_LIB): tools/build-lwip.sh tools/fetch-src.sh $(NEWLIB_STAMP) \
		net/port/include/lwipopts.h net/port/include/arch/cc.h $(MBEDTLS_KLIB)
	tools/fetch-src.sh lwip $(B)/third_party/lwip
	tools/build-lwip.sh $(B)/lwip $(NEWLIB)/include

third-party: $(NEWLIB_STAMP) $(LWIP_LIB) $(MBEDTLS_KLIB) $(MBEDTLS_HLIB)

# ---- host tools ----
# ternctl's line editor is the serial console's (pure, kernel/lib/), sized
# for a network command line (CMD_LINE_MAX) and a longer history.
$(TERNCTL): tools/ternctl.c kernel/lib/lineedit.c kernel/lib/lineedit.h $(MBEDTLS_HLIB)
	@mkdir -p $(dir $@)
	@echo "  CC [host] $<"
	@$(CC) -std=gnu11 -O2 -g $(WARN) -DMBEDTLS_PSK_MAX_LEN=128 \
		-DLEDIT_MAX=1024 -DLEDIT_HIST=200 -iquote . \
		-I$(B)/third_party/mbedtls/include $(filter %.c,$^) $(MBEDTLS_HLIB) -o $@

# ---- kernel ----
# The lwIP glue sees lwIP's and mbedTLS's headers (fetched under build/).
STACK_CFLAGS	:= -Inet/port/include -I$(B)/third_party/lwip/src/include \
		   -I$(B)/third_party/mbedtls/include \
		   '-DMBEDTLS_CONFIG_FILE="mbedtls_config_tern.h"'
STACK_OBJS	:= $(patsubst %.c,$(B)/k/%.o,$(wildcard net/stack/*.c net/port/*.c migrate/mig_*.c \
		   storage/*.c))
$(B)/k/net/stack/%.o: KCFLAGS += $(STACK_CFLAGS)
# The port layer's own glue (net/port/README.md).
$(B)/k/net/port/%.o: KCFLAGS += $(STACK_CFLAGS)
# The migration engine talks TCP through lwIP as well.
$(B)/k/migrate/mig_%.o: KCFLAGS += $(STACK_CFLAGS)
# So does the iSCSI initiator (storage/, not its pure storage/lib/).
$(patsubst %.c,$(B)/k/%.o,$(wildcard storage/*.c)): KCFLAGS += $(STACK_CFLAGS)
# Explicit targets: a recipe-less pattern rule would add no prerequisite.
$(STACK_OBJS): $(LWIP_LIB)

$(B)/k/%.o: %.c $(NEWLIB_STAMP) $(GEN)/version.h
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(KCFLAGS) -c $< -o $@

$(B)/k/%.o: %.S
	@mkdir -p $(dir $@)
	@echo "  AS      $<"
	@$(CC) $(KASFLAGS) -c $< -o $@

# The guest's FPU/SSE/AVX registers are loaded in the CPU from
# vcpu_fpu_enter to vcpu_fpu_leave (kernel/virt/vcpu.c), right around the
# VM entry instruction in svm/ and vmx/.  The rest of the kernel uses SSE
# freely (Newlib, GCC's memcpy and struct copies), so any SSE instruction
# there would corrupt a guest register silently: the vendor back ends and
# the run loop are built -mgeneral-regs-only, and the build fails if an
# XMM/YMM/ZMM register appears in their objects (inline asm included).
NOSSE_CSRCS	:= $(sort $(wildcard svm/*.c vmx/*.c)) kernel/virt/vcpu.c
NOSSE_OBJS	:= $(patsubst %.c,$(B)/k/%.o,$(NOSSE_CSRCS)) \
		   $(patsubst %.S,$(B)/k/%.o,$(sort $(wildcard svm/*.S vmx/*.S)))
$(patsubst %.c,$(B)/k/%.o,$(NOSSE_CSRCS)): KCFLAGS += -mgeneral-regs-only

$(B)/check-no-sse.stamp: $(NOSSE_OBJS)
	@echo "  NOSSE   $(words $^) objects around guest entry"
	@for o in $^; do \
		if objdump -d --no-show-raw-insn $$o | grep -E '%[xyz]mm[0-9]'; then \
			echo "error: $$o uses SSE/AVX registers; it runs while the guest's" \
			     "FPU state is loaded (Makefile: NOSSE_OBJS)" >&2; exit 1; \
		fi; \
	done
	@touch $@

$(B)/kernel.elf: $(KERNEL_OBJS) linker.ld $(NEWLIB_STAMP) $(LWIP_LIB) $(MBEDTLS_KLIB) \
		$(B)/check-no-sse.stamp
	@echo "  LD      $@"
	@$(LD) -nostdlib -static -z max-page-size=4096 -z noexecstack \
		-T linker.ld -Map $(B)/kernel.map -o $@ $(KERNEL_OBJS) \
		$(LWIP_LIB) $(MBEDTLS_KLIB) $(NEWLIB)/lib/libc.a $(NEWLIB)/lib/libm.a

# ---- loader ----
$(B)/b/%.o: %.c $(NEWLIB_STAMP) $(GEN)/version.h
	@mkdir -p $(dir $@)
	@echo "  CC [efi] $<"
	@$(CC) $(BCFLAGS) -c $< -o $@

$(B)/loader.so: $(BOOT_OBJS)
	@echo "  LD      $@"
	@$(LD) -nostdlib -znocombreloc -shared -Bsymbolic \
		-T /usr/lib/elf_x86_64_efi.lds /usr/lib/crt0-efi-x86_64.o \
		$(BOOT_OBJS) -L/usr/lib -lefi -lgnuefi -o $@

$(B)/BOOTX64.EFI: $(B)/loader.so
	$(OBJCOPY) -j .text -j .sdata -j .data -j .dynamic -j .dynsym \
		-j .rel -j .rela -j .rel.* -j .rela.* -j .reloc \
		--target efi-app-x86_64 --subsystem=10 $< $@

# ---- test guests (Multiboot ELF32, tests/guests/) ----
GUESTS		:= hello cpuid msr ports mmio dirty crash isolate bench migverify apic sse debug storm mbtest vhostile
GUEST_SRCS	:= $(shell find tests/guests -name '*.[chS]' -o -name '*.ld' -o -name '*.sh') \
		   kernel/lib/migverify.h

$(B)/guests/.stamp: $(GUEST_SRCS)
	@echo "  GUESTS  $(B)/guests"
	@tests/guests/build.sh $(B)/guests
	@touch $@

$(ESP)/tern/guests/%.elf: $(B)/guests/.stamp
	@mkdir -p $(dir $@)
	@$(OBJCOPY) --strip-debug $(B)/guests/$*.elf $@

# The mbtest guest's environment module (KEY=VALUE lines).
$(ESP)/tern/guests/mbtest.env: tests/guests/mbtest.env
	@mkdir -p $(dir $@)
	@cp $< $@

# ---- Linux test guest (tests/linux/; never committed) ----
# Debian's stock kernel and busybox-static from the host's apt archive
# (tools/fetch-linux.sh, cached in build/linux/), an initramfs built by
# tools/mkinitramfs.py.  Only the Linux suite's ESP (build/esp-linux/, a
# copy of build/esp/ plus tern/linux/) carries them: vmlinuz is ~8 MB.
LINUX_DIR	:= $(B)/linux
LINUX_ESP	:= $(B)/esp-linux

$(LINUX_DIR)/vmlinuz: tools/fetch-linux.sh
	@tools/fetch-linux.sh $(LINUX_DIR)
	@touch $@

$(LINUX_DIR)/ssecheck: tests/linux/ssecheck.c
	@mkdir -p $(dir $@)
	$(CC) -static -O2 -Wall -Wextra -Werror -o $@ $<

# rio: O_DIRECT disk load and a TCP sender for tests/bench/linux_io.py.
$(LINUX_DIR)/rio: tests/linux/rio.c
	@mkdir -p $(dir $@)
	$(CC) -static -O2 -Wall -Wextra -Werror -pthread -o $@ $<

# seqsrv (a TCP sequence stream, the guest's clock) and dwriter (fsync'ed
# checksummed records on a disk): the guest side of linux_mig_tests.py.
$(LINUX_DIR)/seqsrv: tests/linux/seqsrv.c
	@mkdir -p $(dir $@)
	$(CC) -static -O2 -Wall -Wextra -Werror -o $@ $<

$(LINUX_DIR)/dwriter: tests/linux/dwriter.c
	@mkdir -p $(dir $@)
	$(CC) -static -O2 -Wall -Wextra -Werror -o $@ $<

$(LINUX_DIR)/initrd.gz: tools/mkinitramfs.py tests/linux/init $(LINUX_DIR)/ssecheck \
		$(LINUX_DIR)/rio $(LINUX_DIR)/seqsrv $(LINUX_DIR)/dwriter $(LINUX_DIR)/vmlinuz
	@$(PYTHON) tools/mkinitramfs.py $@ --busybox $(LINUX_DIR)/busybox \
		--init tests/linux/init --bin $(LINUX_DIR)/ssecheck --bin $(LINUX_DIR)/rio \
		--bin $(LINUX_DIR)/seqsrv --bin $(LINUX_DIR)/dwriter \
		--modules $(LINUX_DIR)/modules --tree $(LINUX_DIR)/extra

# The uncompressed kernel for PVH boots (no in-guest decompression: that
# alone takes minutes under Bochs): the bzImage's XZ payload, an ELF64.
$(LINUX_DIR)/vmlinux: tools/extract-vmlinux.py $(LINUX_DIR)/vmlinuz
	@$(PYTHON) tools/extract-vmlinux.py $(LINUX_DIR)/vmlinuz $@

linux-guest: $(LINUX_DIR)/vmlinuz $(LINUX_DIR)/vmlinux $(LINUX_DIR)/initrd.gz

esp-linux: esp linux-guest
	@rm -rf $(LINUX_ESP)
	@cp -r $(ESP) $(LINUX_ESP)
	@mkdir -p $(LINUX_ESP)/tern/linux
	@cp $(LINUX_DIR)/vmlinuz $(LINUX_DIR)/vmlinux $(LINUX_DIR)/initrd.gz \
		$(LINUX_ESP)/tern/linux/
	@cat tests/linux/tern-cfg-vms >>$(LINUX_ESP)/tern/tern.cfg

# ---- ESP tree ----
esp: $(ESP)/EFI/BOOT/BOOTX64.EFI $(ESP)/tern/kernel.elf $(ESP)/tern/tern.cfg \
	$(patsubst %,$(ESP)/tern/guests/%.elf,$(GUESTS)) $(ESP)/tern/guests/mbtest.env

$(ESP)/EFI/BOOT/BOOTX64.EFI: $(B)/BOOTX64.EFI
	@mkdir -p $(dir $@)
	cp $< $@

$(ESP)/tern/kernel.elf: $(B)/kernel.elf
	@mkdir -p $(dir $@)
	$(OBJCOPY) --strip-debug $< $@

# The default configuration is installed once; an operator's edits stay.
$(ESP)/tern/tern.cfg: | kernel/tern.cfg.default
	@mkdir -p $(dir $@)
	cp kernel/tern.cfg.default $@

# ---- unit tests ----
$(B)/u/%.o: %.c $(GEN)/version.h
	@mkdir -p $(dir $@)
	@echo "  CC [host] $<"
	@$(CC) $(UCFLAGS) -c $< -o $@

# The CHAP tests take MD5 from the host mbedTLS build (its default
# configuration has MBEDTLS_MD5_C), the same library ternctl links.
$(B)/u/tests/unit/test_iscsi_chap.o: UCFLAGS += -I$(B)/third_party/mbedtls/include
$(B)/u/tests/unit/test_iscsi_chap.o: $(MBEDTLS_HLIB)
# The ISN tests take HMAC-SHA-256 from the same library.
$(B)/u/tests/unit/test_tcp_isn.o: UCFLAGS += -I$(B)/third_party/mbedtls/include
$(B)/u/tests/unit/test_tcp_isn.o: $(MBEDTLS_HLIB)

# The record MAC of the migration data link (HMAC-SHA-256 from mbedTLS) is
# kernel code without hardware: the stream tests link it with the host's.
UNIT_OBJS	+= $(B)/u/migrate/mig_mac.o
$(B)/u/migrate/mig_mac.o $(B)/u/tests/unit/test_migmac.o: \
	UCFLAGS += -I$(B)/third_party/mbedtls/include
$(B)/u/migrate/mig_mac.o $(B)/u/tests/unit/test_migmac.o: $(MBEDTLS_HLIB)

$(UNIT_BIN): $(UNIT_OBJS) $(MBEDTLS_HLIB)
	@mkdir -p $(dir $@)
	$(CC) -fsanitize=address,undefined -o $@ $(UNIT_OBJS) $(MBEDTLS_HLIB) -lcriterion -lm

# ---- fuzzing (libFuzzer, clang-14 from tools/deps.sh; not in `make test`) ----
# Each target compiles the same pure sources as the kernel and the unit
# tests, and runs FUZZ_SECONDS: fuzz_migstream on the migration stream
# decoder, fuzz_iscsi on the iSCSI initiator (session, PDU receiver, text,
# CHAP, sense and CDB parsers) against a hostile target, fuzz_bzimage on the
# Linux boot protocol planner (hostile bzImages), fuzz_apic on the LAPIC and
# IOAPIC models (hostile register writes and records), fuzz_vring on the
# virtqueue device side and the virtio-blk parser (hostile guest RAM),
# fuzz_vpci on the PCI host bridge and virtio-pci transport.  Seeds come from
# small programs using the real encoders; what the fuzzers find stays in
# build/fuzz/corpus-<target> across runs; crashes go to build/fuzz/artifacts/.
FUZZ_SECONDS	?= 60
FUZZ_CC		:= clang-14
FUZZ_DIR	:= $(B)/fuzz
FUZZ_CFLAGS	:= -std=gnu11 -O1 -g -fno-omit-frame-pointer -I. $(WARN)
FUZZ_SAN	:= -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_OPTS	:= -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=10 \
		   -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=$(FUZZ_DIR)/artifacts/
FUZZ_MIG_SRCS	:= tests/fuzz/fuzz_migstream.c $(MIG_PURE_SRCS) kernel/lib/crc32c.c
FUZZ_MIG_HDRS	:= $(wildcard migrate/*.h) kernel/lib/crc32c.h tests/unit/mig_reseal.h
ISCSI_PURE_SRCS	:= $(addprefix storage/lib/,iscsi_pdu.c iscsi_session.c iscsi_text.c \
		   iscsi_chap.c scsi_sense.c scsi_cdb.c) kernel/lib/crc32c.c
FUZZ_ISCSI_HDRS	:= $(wildcard storage/lib/*.h) kernel/lib/crc32c.h tests/fuzz/fuzz_iscsi.h \
		   tests/unit/iscsi_fake.h

$(FUZZ_DIR)/fuzz_migstream: $(FUZZ_MIG_SRCS) $(FUZZ_MIG_HDRS)
	@mkdir -p $(dir $@)
	@command -v $(FUZZ_CC) >/dev/null || { echo "make fuzz: $(FUZZ_CC) missing; run tools/deps.sh"; exit 1; }
	@echo "  CC [fuzz] $@"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) $(FUZZ_MIG_SRCS) -o $@

$(FUZZ_DIR)/mig_seeds: tests/fuzz/mig_seeds.c $(MIG_PURE_SRCS) kernel/lib/crc32c.c $(FUZZ_MIG_HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC [host] $@"
	@$(CC) -std=gnu11 -O1 -g -I. $(WARN) tests/fuzz/mig_seeds.c \
		$(MIG_PURE_SRCS) kernel/lib/crc32c.c -o $@

$(FUZZ_DIR)/fuzz_iscsi: tests/fuzz/fuzz_iscsi.c $(ISCSI_PURE_SRCS) $(FUZZ_ISCSI_HDRS)
	@mkdir -p $(dir $@)
	@command -v $(FUZZ_CC) >/dev/null || { echo "make fuzz: $(FUZZ_CC) missing; run tools/deps.sh"; exit 1; }
	@echo "  CC [fuzz] $@"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) tests/fuzz/fuzz_iscsi.c $(ISCSI_PURE_SRCS) -o $@

# The seed generator plays a target against the harness itself.
$(FUZZ_DIR)/iscsi_seeds: tests/fuzz/iscsi_seeds.c tests/fuzz/fuzz_iscsi.c $(ISCSI_PURE_SRCS) \
		$(FUZZ_ISCSI_HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC [host] $@"
	@$(CC) -std=gnu11 -O1 -g -I. $(WARN) tests/fuzz/iscsi_seeds.c \
		tests/fuzz/fuzz_iscsi.c $(ISCSI_PURE_SRCS) -o $@

FUZZ_BZI_SRCS	:= kernel/lib/bzimage.c
FUZZ_BZI_HDRS	:= kernel/lib/bzimage.h kernel/lib/byteorder.h

$(FUZZ_DIR)/fuzz_bzimage: tests/fuzz/fuzz_bzimage.c $(FUZZ_BZI_SRCS) $(FUZZ_BZI_HDRS)
	@mkdir -p $(dir $@)
	@command -v $(FUZZ_CC) >/dev/null || { echo "make fuzz: $(FUZZ_CC) missing; run tools/deps.sh"; exit 1; }
	@echo "  CC [fuzz] $@"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) tests/fuzz/fuzz_bzimage.c $(FUZZ_BZI_SRCS) -o $@

$(FUZZ_DIR)/bzimage_seeds: tests/fuzz/bzimage_seeds.c kernel/lib/byteorder.h
	@mkdir -p $(dir $@)
	@echo "  CC [host] $@"
	@$(CC) -std=gnu11 -O1 -g -I. $(WARN) tests/fuzz/bzimage_seeds.c -o $@

# The PVH planner: hostile vmlinux ELF images (notes, program headers).
FUZZ_PVH_SRCS	:= kernel/lib/pvh.c kernel/lib/bzimage.c
FUZZ_PVH_HDRS	:= kernel/lib/pvh.h kernel/lib/bzimage.h kernel/lib/elf.h kernel/lib/byteorder.h

$(FUZZ_DIR)/fuzz_pvh: tests/fuzz/fuzz_pvh.c $(FUZZ_PVH_SRCS) $(FUZZ_PVH_HDRS)
	@mkdir -p $(dir $@)
	@command -v $(FUZZ_CC) >/dev/null || { echo "make fuzz: $(FUZZ_CC) missing; run tools/deps.sh"; exit 1; }
	@echo "  CC [fuzz] $@"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) tests/fuzz/fuzz_pvh.c $(FUZZ_PVH_SRCS) -o $@

$(FUZZ_DIR)/pvh_seeds: tests/fuzz/pvh_seeds.c kernel/lib/byteorder.h
	@mkdir -p $(dir $@)
	@echo "  CC [host] $@"
	@$(CC) -std=gnu11 -O1 -g -I. $(WARN) tests/fuzz/pvh_seeds.c -o $@

.PHONY: fuzz-pvh
fuzz-pvh: $(FUZZ_DIR)/fuzz_pvh $(FUZZ_DIR)/pvh_seeds
	@rm -rf $(FUZZ_DIR)/seeds-pvh
	@mkdir -p $(FUZZ_DIR)/seeds-pvh $(FUZZ_DIR)/corpus-pvh $(FUZZ_DIR)/artifacts
	$(FUZZ_DIR)/pvh_seeds $(FUZZ_DIR)/seeds-pvh
	$(FUZZ_DIR)/fuzz_pvh $(FUZZ_OPTS) $(FUZZ_DIR)/corpus-pvh $(FUZZ_DIR)/seeds-pvh

# The interrupt controllers: operation sequences on a LAPIC and an IOAPIC
# (no seed generator: the operations are 8-byte records libFuzzer finds
# from an empty corpus).  One target alone: make fuzz-apic.
FUZZ_APIC_SRCS	:= kernel/devices/model/vlapic.c kernel/devices/model/vioapic.c \
		   kernel/devices/model/vpic.c kernel/devices/model/irqrec.c
FUZZ_APIC_HDRS	:= $(wildcard kernel/devices/model/*.h) kernel/lib/byteorder.h

$(FUZZ_DIR)/fuzz_apic: tests/fuzz/fuzz_apic.c $(FUZZ_APIC_SRCS) $(FUZZ_APIC_HDRS)
	@mkdir -p $(dir $@)
	@command -v $(FUZZ_CC) >/dev/null || { echo "make fuzz: $(FUZZ_CC) missing; run tools/deps.sh"; exit 1; }
	@echo "  CC [fuzz] $@"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) tests/fuzz/fuzz_apic.c $(FUZZ_APIC_SRCS) -o $@

.PHONY: fuzz-apic
fuzz-apic: $(FUZZ_DIR)/fuzz_apic
	@mkdir -p $(FUZZ_DIR)/corpus-apic $(FUZZ_DIR)/artifacts
	$(FUZZ_DIR)/fuzz_apic $(FUZZ_OPTS) $(FUZZ_DIR)/corpus-apic

# The save area's header block (migrate/savearea.c, `vm restore` reads it
# from a shared LUN): decode refuses or round-trips byte for byte.
FUZZ_SA_SRCS	:= tests/fuzz/fuzz_savearea.c migrate/savearea.c kernel/lib/crc32c.c

$(FUZZ_DIR)/fuzz_savearea: $(FUZZ_SA_SRCS) migrate/savearea.h kernel/lib/crc32c.h
	@mkdir -p $(dir $@)
	@command -v $(FUZZ_CC) >/dev/null || { echo "make fuzz: $(FUZZ_CC) missing; run tools/deps.sh"; exit 1; }
	@echo "  CC [fuzz] $@"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) $(FUZZ_SA_SRCS) -o $@

.PHONY: fuzz-savearea
fuzz-savearea: $(FUZZ_DIR)/fuzz_savearea
	@mkdir -p $(FUZZ_DIR)/corpus-savearea $(FUZZ_DIR)/artifacts
	$(FUZZ_DIR)/fuzz_savearea $(FUZZ_OPTS) $(FUZZ_DIR)/corpus-savearea

# A restored vCPU state (kernel/lib/vcpu_check.c): refused with a reason,
# or nothing in it could make the host's XSETBV/XRSTOR/MOV DR fault.
FUZZ_VC_SRCS	:= tests/fuzz/fuzz_vcpu_check.c kernel/lib/vcpu_check.c kernel/lib/msr_rules.c

$(FUZZ_DIR)/fuzz_vcpu_check: $(FUZZ_VC_SRCS) kernel/lib/vcpu_check.h kernel/lib/msr_rules.h
	@mkdir -p $(dir $@)
	@command -v $(FUZZ_CC) >/dev/null || { echo "make fuzz: $(FUZZ_CC) missing; run tools/deps.sh"; exit 1; }
	@echo "  CC [fuzz] $@"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) $(FUZZ_VC_SRCS) -o $@

.PHONY: fuzz-vcpu-check
fuzz-vcpu-check: $(FUZZ_DIR)/fuzz_vcpu_check
	@mkdir -p $(FUZZ_DIR)/corpus-vcpu-check $(FUZZ_DIR)/artifacts
	$(FUZZ_DIR)/fuzz_vcpu_check $(FUZZ_OPTS) $(FUZZ_DIR)/corpus-vcpu-check

# The PCI host bridge and the virtio-pci transport: operation sequences
# on config space (ports and ECAM), BAR 4 and the device side, and hostile
# records; the seeds ask for a Linux-like driver bring-up first ("UP"),
# then a reload of its records with the input XORed in ("XL").
FUZZ_VPCI_SRCS	:= kernel/devices/model/pci_host.c kernel/devices/model/virtio_pci.c
FUZZ_VPCI_HDRS	:= kernel/devices/model/pci_host.h kernel/devices/model/virtio_pci.h \
		   kernel/lib/byteorder.h kernel/lib/pci_caps.h kernel/lib/virtq.h

$(FUZZ_DIR)/fuzz_vpci: tests/fuzz/fuzz_vpci.c $(FUZZ_VPCI_SRCS) $(FUZZ_VPCI_HDRS)
	@mkdir -p $(dir $@)
	@command -v $(FUZZ_CC) >/dev/null || { echo "make fuzz: $(FUZZ_CC) missing; run tools/deps.sh"; exit 1; }
	@echo "  CC [fuzz] $@"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) tests/fuzz/fuzz_vpci.c $(FUZZ_VPCI_SRCS) -o $@

.PHONY: fuzz-vpci
fuzz-vpci: $(FUZZ_DIR)/fuzz_vpci
	@mkdir -p $(FUZZ_DIR)/corpus-vpci $(FUZZ_DIR)/seeds-vpci $(FUZZ_DIR)/artifacts
	@printf UP > $(FUZZ_DIR)/seeds-vpci/bringup
	@printf 'UPXL\0\0\0\0' > $(FUZZ_DIR)/seeds-vpci/reload
	$(FUZZ_DIR)/fuzz_vpci $(FUZZ_OPTS) $(FUZZ_DIR)/corpus-vpci $(FUZZ_DIR)/seeds-vpci

# The device side of virtqueues and the virtio-blk parser: guest RAM with
# hostile rings and requests (no seed generator: the input is XORed onto a
# template of good requests, so mutations start from a working queue), and
# the disk's migration record (first byte 0xff; the seeds pick templates).
FUZZ_VRING_SRCS	:= kernel/devices/model/vring.c kernel/devices/model/vblk.c
FUZZ_VRING_HDRS	:= kernel/devices/model/vring.h kernel/devices/model/vblk.h kernel/lib/byteorder.h

$(FUZZ_DIR)/fuzz_vring: tests/fuzz/fuzz_vring.c $(FUZZ_VRING_SRCS) $(FUZZ_VRING_HDRS)
	@mkdir -p $(dir $@)
	@command -v $(FUZZ_CC) >/dev/null || { echo "make fuzz: $(FUZZ_CC) missing; run tools/deps.sh"; exit 1; }
	@echo "  CC [fuzz] $@"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) tests/fuzz/fuzz_vring.c $(FUZZ_VRING_SRCS) -o $@

.PHONY: fuzz-vring
fuzz-vring: $(FUZZ_DIR)/fuzz_vring
	@mkdir -p $(FUZZ_DIR)/corpus-vring $(FUZZ_DIR)/seeds-vring $(FUZZ_DIR)/artifacts
	@for t in 0 1 2 6 8 14; do printf "\\377\\$$(printf %o $$t)" \
		> $(FUZZ_DIR)/seeds-vring/record-$$t; done
	$(FUZZ_DIR)/fuzz_vring $(FUZZ_OPTS) $(FUZZ_DIR)/corpus-vring $(FUZZ_DIR)/seeds-vring

# The L2 switch and the virtio-net model: hostile frames, ports, chains
# and control commands over a fake RAM (no seeds: byte-coded operations).
FUZZ_VNET_SRCS	:= net/switch/l2sw.c net/switch/vnet.c \
		   kernel/devices/model/vring.c
FUZZ_VNET_HDRS	:= $(wildcard net/switch/*.h) kernel/devices/model/vring.h \
		   kernel/lib/byteorder.h

$(FUZZ_DIR)/fuzz_vnet: tests/fuzz/fuzz_vnet.c $(FUZZ_VNET_SRCS) $(FUZZ_VNET_HDRS)
	@mkdir -p $(dir $@)
	@command -v $(FUZZ_CC) >/dev/null || { echo "make fuzz: $(FUZZ_CC) missing; run tools/deps.sh"; exit 1; }
	@echo "  CC [fuzz] $@"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) tests/fuzz/fuzz_vnet.c \
		$(FUZZ_VNET_SRCS) -o $@

.PHONY: fuzz-vnet
fuzz-vnet: $(FUZZ_DIR)/fuzz_vnet
	@mkdir -p $(FUZZ_DIR)/corpus-vnet $(FUZZ_DIR)/artifacts
	$(FUZZ_DIR)/fuzz_vnet $(FUZZ_OPTS) $(FUZZ_DIR)/corpus-vnet

# One target alone: make fuzz-bzimage.
fuzz-bzimage: $(FUZZ_DIR)/fuzz_bzimage $(FUZZ_DIR)/bzimage_seeds
	@rm -rf $(FUZZ_DIR)/seeds-bzimage
	@mkdir -p $(FUZZ_DIR)/seeds-bzimage $(FUZZ_DIR)/corpus-bzimage $(FUZZ_DIR)/artifacts
	$(FUZZ_DIR)/bzimage_seeds $(FUZZ_DIR)/seeds-bzimage
	$(FUZZ_DIR)/fuzz_bzimage $(FUZZ_OPTS) \
		$(FUZZ_DIR)/corpus-bzimage $(FUZZ_DIR)/seeds-bzimage

fuzz: $(FUZZ_DIR)/fuzz_migstream $(FUZZ_DIR)/mig_seeds $(FUZZ_DIR)/fuzz_iscsi $(FUZZ_DIR)/iscsi_seeds \
		fuzz-bzimage fuzz-apic fuzz-pvh fuzz-vring fuzz-vnet fuzz-vpci fuzz-savearea \
		fuzz-vcpu-check
	@rm -rf $(FUZZ_DIR)/seeds-migstream $(FUZZ_DIR)/seeds-iscsi
	@mkdir -p $(FUZZ_DIR)/seeds-migstream $(FUZZ_DIR)/corpus-migstream \
		$(FUZZ_DIR)/seeds-iscsi $(FUZZ_DIR)/corpus-iscsi $(FUZZ_DIR)/artifacts
	$(FUZZ_DIR)/mig_seeds $(FUZZ_DIR)/seeds-migstream
	$(FUZZ_DIR)/fuzz_migstream $(FUZZ_OPTS) \
		$(FUZZ_DIR)/corpus-migstream $(FUZZ_DIR)/seeds-migstream
	$(FUZZ_DIR)/iscsi_seeds $(FUZZ_DIR)/seeds-iscsi
	$(FUZZ_DIR)/fuzz_iscsi $(FUZZ_OPTS) \
		$(FUZZ_DIR)/corpus-iscsi $(FUZZ_DIR)/seeds-iscsi

# ---- entry points ----
deps:
	tools/deps.sh

deps-check:
	@tools/deps.sh --check >/dev/null 2>&1 || tools/deps.sh

run: deps-check
	$(MAKE) all esp-linux
	$(PYTHON) tests/lab/run.py

test: deps-check
	$(MAKE) all
	$(MAKE) test-unit test-harness test-qemu test-svm test-net test-netcon test-entropy test-migrate \
		test-storage test-linux test-linux-io test-linux-mig test-linux-save test-vtx

test-unit: $(UNIT_BIN)
	$(UNIT_BIN) --jobs 2

# The lab harness's command exchange against a scripted console (no
# emulator): log batches split at every byte around a typed command.
test-harness:
	$(PYTHON) tests/lab/harness_tests.py

test-qemu: esp
	$(PYTHON) tests/lab/boot_tests.py --qemu-only

test-svm: esp
	$(PYTHON) tests/lab/guest_tests.py

test-net: esp
	$(PYTHON) tests/lab/net_tests.py

# Two-host lab in a network namespace: TLS console, ternctl, hostile
# clients, once per NIC model (virtio-net, e1000e).
test-netcon: esp $(TERNCTL)
	$(PYTHON) tests/lab/netcon_tests.py

# RFC 6528 ISNs seen from the namespace, the jitter source's measured
# min-entropy (QEMU TCG and Bochs), TLS refused after `entropy stuck`.
test-entropy: esp $(TERNCTL)
	$(PYTHON) tests/lab/entropy_tests.py

# Live and quick migration between lab hosts (verified page by page),
# cancels, cut links, a killed destination, pre-flight refusals; then
# hostile streams from an independent encoder.
test-migrate: esp $(TERNCTL)
	$(PYTHON) tests/lab/migrate_tests.py
	$(PYTHON) tests/lab/mig_hostile_tests.py

# The iSCSI initiator against tgtd in the lab (data checked on the backing
# files), CHAP, digests, tgtd killed mid-write, two hosts fencing each
# other, and a hostile fake target.
test-storage: esp $(TERNCTL)
	$(PYTHON) tests/lab/storage_tests.py

# Debian's own kernel under Tern (AMD-V in QEMU): boots to the banner
# today; the checks past it switch on with --expect (tests/lab/linux_tests.py).
test-linux: esp-linux
	$(PYTHON) tests/lab/linux_tests.py --esp $(LINUX_ESP) --expect full
	$(PYTHON) tests/lab/linux_tests.py --esp $(LINUX_ESP) --expect full --vcpus 2 \
		--clock-secs 20 --only 'linux_boot'
	$(PYTHON) tests/lab/linux_tests.py --esp $(LINUX_ESP) --pvh --expect shell \
		--only 'linux_boot'

# Debian's kernel under Intel VT-x (Bochs), booted by PVH from the
# uncompressed vmlinux (decompressing the bzImage's XZ payload alone takes
# ~450 s there): one vCPU, to the busybox shell and its checks.
# The same kernel with virtio disks on tgtd's LUNs and virtio NICs on
# Tern's switch, two hosts in the lab namespace (tests/lab/linux_io_tests.py).
test-linux-io: esp-linux $(TERNCTL)
	$(PYTHON) tests/lab/linux_io_tests.py --esp $(LINUX_ESP)

# Live and quick migration of a 2-vCPU Linux guest with its virtio disk
# (tgtd) and NIC: a TCP stream, pings, fsync'ed disk records, refusals,
# faults (tests/lab/linux_mig_tests.py).
test-linux-mig: esp-linux $(TERNCTL)
	$(PYTHON) tests/lab/linux_mig_tests.py --esp $(LINUX_ESP)

# Quick migration through shared storage: `vm save` to a LUN on tern-a,
# tern-a killed, `vm restore` on tern-b (tests/lab/linux_save_tests.py).
test-linux-save: esp-linux $(TERNCTL)
	$(PYTHON) tests/lab/linux_save_tests.py --esp $(LINUX_ESP)

test-linux-bochs: esp-linux
	$(LINUX_BOCHS)

# Intel VT-x under Bochs: boot check, the guest suite on a PML-capable
# model, the fallback on a model without PML (a shorter subset), and a
# live migration of a guest from the host to itself (127.0.0.1).
# Intel VT-x under Bochs: boot check, the guest suite on a PML-capable
# model, then BOCHS_REST: the fallback on a model without PML (its
# cpuid and dirty-log tests) and a live migration of a guest from the
# host to itself (127.0.0.1).
BOCHS_REST	= $(PYTHON) tests/lab/guest_tests.py --bochs corei7_haswell_4770 \
		  --only 'cpuid|dirty|pml' && \
		  $(PYTHON) tests/lab/migrate_tests.py --bochs corei7_skylake_x
LINUX_BOCHS	= $(PYTHON) tests/lab/linux_tests.py --esp $(LINUX_ESP) --pvh \
		  --bochs corei7_skylake_x --expect shell --only 'linux_boot'

test-bochs: esp
	$(PYTHON) tests/lab/boot_tests.py --bochs-only
	$(PYTHON) tests/lab/guest_tests.py --bochs corei7_skylake_x
	$(BOCHS_REST)

# make test's VT-x part: the guest suite alone (its console-latency bounds
# want the second core free), then the rest of the Bochs suites two at a
# time (Bochs is one thread each).  No make below this point: two makes
# in one build tree would race.
test-vtx: esp esp-linux
	$(PYTHON) tests/lab/boot_tests.py --bochs-only
	$(PYTHON) tests/lab/guest_tests.py --bochs corei7_skylake_x
	$(PYTHON) tests/lab/parallel.py "$(BOCHS_REST)" "$(LINUX_BOCHS)"

clean:
	rm -rf $(B)/k $(B)/b $(B)/u $(B)/tests $(B)/gen $(B)/*.elf $(B)/*.so \
		$(B)/*.EFI $(B)/*.map $(ESP)

distclean:
	rm -rf $(B)

-include $(shell find $(B)/k $(B)/b $(B)/u -name '*.d' 2>/dev/null)
