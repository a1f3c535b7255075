/*
 * Virtual machines and vCPUs: the vendor-neutral core.
 *
 * One generic run loop (vcpu.c) drives every guest; the vendor back ends
 * (svm/, vmx/) sit behind struct hv_ops and only enter the guest and turn
 * an exit into a struct vcpu_exit.  Guest registers the handlers need are
 * cached in struct vcpu, never fetched through the ops table.
 */
#ifndef TERN_VM_H
#define TERN_VM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "kernel/platform/x86.h"
#include "kernel/lib/bus.h"
#include "kernel/kernel.h"
#include "kernel/platform/spinlock.h"
#include "kernel/lib/dirtymap.h"
#include "kernel/lib/stage2.h"

#define VM_NAME_MAX	32
#define VM_MAX_VCPUS	8
#define VM_MAX		16
#define VM_MAX_DEVS	8		/* disk= and nic= devices */
#define VM_DEV_SPEC_MAX	48

enum seg_reg { SEG_ES, SEG_CS, SEG_SS, SEG_DS, SEG_FS, SEG_GS, SEG_LDTR,
	       SEG_TR, SEG_COUNT };

/* Segment attributes use the SVM packed layout (APM Vol. 2 15.5.1):
 * bits 0-3 type, 4 S, 5-6 DPL, 7 P, 8 AVL, 9 L, 10 D/B, 11 G. */
struct vcpu_seg {
	uint16_t sel;
	uint16_t attr;
	uint32_t limit;
	uint64_t base;
};

#define SEG_ATTR_L	(1u << 9)
#define SEG_ATTR_DB	(1u << 10)

/*
 * Architectural state in a vendor-neutral form: what migration moves.
 *
 * The exit contract: after every exit, before any handler runs, the
 * vendor has refreshed exactly these fields from the hardware (SVM: the
 * VMCB save area; VMX: the VMCS guest-state area):
 *
 *   gpr[], rip, rflags, int_shadow,
 *   cr0, cr2, cr3, cr4, efer, cpl,
 *   seg[ES, CS, SS, DS, FS, GS]: sel, attr and base (not the limit).
 *
 * The handlers may change gpr[], rip, rflags and int_shadow; the vendor
 * writes those back before the next entry.  Everything else (descriptor
 * tables, LDTR, TR, the limits, DR6/DR7, PAT, the SYSCALL and SYSENTER
 * MSRs, the TSC offset) is only current after hv->save_state(), and is
 * written to the hardware by hv->load_state().
 */
struct vcpu_state {
	uint64_t gpr[GPR_COUNT];
	uint64_t rip, rflags;
	uint64_t cr0, cr2, cr3, cr4, efer, xcr0;
	uint64_t dr6, dr7, pat;
	uint64_t dr[4];			/* DR0-DR3 (kernel/virt/debugreg.h) */
	struct vcpu_seg seg[SEG_COUNT];
	struct { uint64_t base; uint32_t limit; } gdtr, idtr;
	uint64_t star, lstar, cstar, sfmask, kernel_gs_base;
	uint64_t sysenter_cs, sysenter_esp, sysenter_eip;
	uint64_t tsc_offset;
	uint8_t cpl;
	bool int_shadow;
};

/* The entry stubs (svm/svm_entry.S, vmx/vmx_entry.S) address the GPRs as
 * GPR_OFF(R) from &st.gpr[0]: the C layout must agree. */
#define VCPU_GPR_OFF(r)	(offsetof(struct vcpu_state, gpr[GPR_##r]) - \
			 offsetof(struct vcpu_state, gpr))
_Static_assert(sizeof(((struct vcpu_state *)0)->gpr) == GPR_COUNT * GPR_SIZE,
	       "vcpu_state.gpr: GPR_COUNT registers of GPR_SIZE bytes");
_Static_assert(VCPU_GPR_OFF(RAX) == GPR_OFF(RAX) && VCPU_GPR_OFF(RCX) == GPR_OFF(RCX) &&
	       VCPU_GPR_OFF(RDX) == GPR_OFF(RDX) && VCPU_GPR_OFF(RBX) == GPR_OFF(RBX) &&
	       VCPU_GPR_OFF(RSP) == GPR_OFF(RSP) && VCPU_GPR_OFF(RBP) == GPR_OFF(RBP) &&
	       VCPU_GPR_OFF(RSI) == GPR_OFF(RSI) && VCPU_GPR_OFF(RDI) == GPR_OFF(RDI) &&
	       VCPU_GPR_OFF(R8) == GPR_OFF(R8) && VCPU_GPR_OFF(R9) == GPR_OFF(R9) &&
	       VCPU_GPR_OFF(R10) == GPR_OFF(R10) && VCPU_GPR_OFF(R11) == GPR_OFF(R11) &&
	       VCPU_GPR_OFF(R12) == GPR_OFF(R12) && VCPU_GPR_OFF(R13) == GPR_OFF(R13) &&
	       VCPU_GPR_OFF(R14) == GPR_OFF(R14) && VCPU_GPR_OFF(R15) == GPR_OFF(R15),
	       "x86.h GPR_OFF() disagrees with struct vcpu_state");

/*
 * Generic exit kinds and the names `vm info` counts them under, listed
 * once.  HANDLED: the vendor finished the exit itself (VMX: CR access,
 * INVLPG, INVD/WBINVD, PML full; SVM: INVD, SMI, INIT; both: a guest
 * exception reflected back into the guest) and the loop only resumes.
 * TASK_SWITCH: a hardware task switch, which Tern does not emulate
 * (raw_info1: the target TSS selector, raw_info2: its source, 0 CALL,
 * 1 IRET, 2 JMP, 3 task gate).  MCE: a machine check arrived while the
 * guest ran; it belongs to the host, never to the guest.  EXCEPTION: an
 * intercepted guest exception (#DB, #AC) that goes back into the guest
 * as it was (exc); intercepting them keeps a guest from wedging its host
 * CPU in an endless microcode delivery loop (CVE-2015-5307, -8104).
 */
#define EXIT_KINDS(X)				\
	X(NONE, "none")				\
	X(CPUID, "cpuid")			\
	X(RDMSR, "rdmsr")			\
	X(WRMSR, "wrmsr")			\
	X(IO, "io")				\
	X(STAGE2, "stage2")			\
	X(HLT, "hlt")				\
	X(HYPERCALL, "hypercall")		\
	X(SHUTDOWN, "shutdown")			\
	X(EXTINT, "extint")			\
	X(NMI, "nmi")				\
	X(XSETBV, "xsetbv")			\
	X(IRQ_WINDOW, "irq-window")		\
	X(UD_INSN, "ud-insn")			\
	X(TASK_SWITCH, "task-switch")		\
	X(MCE, "machine-check")			\
	X(EXCEPTION, "exception")		\
	X(HANDLED, "handled")			\
	X(ENTRY_FAIL, "entry-fail")		\
	X(UNKNOWN, "unknown")

enum exit_kind {
#define EXIT_KIND_ENUM(kind, name)	EXIT_##kind,
	EXIT_KINDS(EXIT_KIND_ENUM)
#undef EXIT_KIND_ENUM
	EXIT_KIND_MAX
};

struct vcpu_exit {
	enum exit_kind kind;
	uint64_t next_rip;	/* 0 when the vendor does not know it */
	union {
		struct {
			uint16_t port;
			uint8_t size;
			bool in, string, rep;
		} io;
		struct {
			uint64_t gpa;
			bool write, fetch, present;
		} s2;
		struct {
			uint32_t insn_len;	/* of the intercepted instruction */
		} insn;
		struct {
			uint8_t vector;
			bool has_error;
			uint32_t error;
		} exc;
	};
	uint64_t raw_reason, raw_info1, raw_info2;	/* for dumps */
	uint8_t insn_bytes[15];
	uint8_t insn_nbytes;		/* decode-assist bytes, 0 if none */
};

/* Handler results (KVM convention, as enum). */
enum { VCPU_RESUME = 1, VCPU_PARK = 0 };

enum event_type { EVENT_EXT_INT = 0, EVENT_NMI = 2, EVENT_EXCEPTION = 3,
		  EVENT_SOFT_INT = 4 };

struct vcpu_event {
	bool valid;
	uint8_t vector;
	uint8_t type;
	bool has_error;
	uint32_t error;
};

enum vm_state { VM_CREATED, VM_RUNNING, VM_PAUSED, VM_STOPPED, VM_FAILED };

/* Requests posted to a running vCPU from another CPU (vcpu_request). */
#define VCPU_REQ_PAUSE		(1u << 0)
#define VCPU_REQ_STOP		(1u << 1)
#define VCPU_REQ_FLUSH		(1u << 2)
#define VCPU_REQ_EVENT		(1u << 3)	/* an interrupt, NMI, INIT or SIPI */

struct vm;
struct vlapic;
struct irqchip;
struct vdev_type;

/* Where a vCPU is in its life (SDM Vol. 3A 9.4.1, 11.6.1): the boot
 * processor runs from the start; the others wait for INIT and SIPI. */
enum vcpu_mp { VCPU_MP_RUNNABLE, VCPU_MP_WAIT_SIPI };

/* What a vCPU's host CPU is doing, as `vm info` reports it. */
enum vcpu_where { VCPU_IN_HOST, VCPU_IN_GUEST, VCPU_ASLEEP };

struct vcpu {
	struct vm *vm;
	int id;
	uint32_t host_cpu;
	struct vcpu_state st;		/* cached; see the exit contract above */
	struct vcpu_event pending;
	volatile uint32_t requests;
	volatile bool running;		/* inside the run loop */
	volatile bool parked;		/* acknowledged a pause */
	void *vendor;			/* struct svm_vcpu / vmx_vcpu */
	uint8_t *fpu_guest;		/* XSAVE areas, 64-byte aligned */
	uint8_t *fpu_host;
	uint64_t exits[EXIT_KIND_MAX];
	uint64_t exits_total;
	/* Auto-converge: the share of time, in thousandths (0..999), the
	 * guest is held back; set by migration from the management CPU
	 * (vcpu.c: throttle). */
	volatile uint32_t throttle_pm;
	bool tick_on;			/* a LAPIC tick forces exits */
	/* Interrupts (kernel/virt/irq.c).  lapic_lock guards *lapic: other
	 * CPUs deliver into it; the flags below are posted by them. */
	struct vlapic *lapic;
	struct spinlock lapic_lock;
	volatile uint8_t mp_state;	/* enum vcpu_mp */
	volatile bool init_pending, sipi_pending, nmi_pending;
	volatile uint8_t sipi_vector;
	/* Halted (HLT) when it was paused: it goes on waiting for an
	 * interrupt when resumed, here or after a migration. */
	bool halted;
	bool irq_window;		/* exit as soon as it can take an interrupt */
	/* NMI blocking (SDM Vol. 3A 6.7.1): from an NMI's delivery to the
	 * guest's next IRET no other NMI is delivered.  The vendor clears
	 * it when it sees that IRET (VMX: virtual-NMI blocking; SVM: the
	 * IRET intercept); nmi_window asks it for an exit then. */
	bool nmi_masked;
	bool nmi_window;
	uint64_t host_timer_us;		/* the host one-shot armed for, 0: none */
	uint64_t timer_due;		/* guest TSC of the LAPIC timer, 0: none */
	uint64_t dev_due_ns;		/* vCPU 0: device timers (vm_time_ns), 0 */
	bool late_bail;			/* the last entry attempt went round */
	uint64_t irqs_injected;
	volatile uint8_t where;		/* enum vcpu_where, for `vm info` */
	uint64_t mig_tsc;		/* incoming migration: the guest's TSC */
	const char *fpu_fault;		/* vcpu_fpu_enter faulted: on what */
	volatile uint64_t entries;	/* guest entries: "it runs here" (RESUMED) */
};

/* The guest's FPU/XSAVE image: one page, standard format. */
#define VCPU_FPU_AREA	4096

enum dirty_mode { DIRTY_OFF, DIRTY_DBIT, DIRTY_WP, DIRTY_PML };

struct guest_chunk {
	uint64_t hpa;			/* 2 MiB aligned, 2 MiB long */
};

#define GUEST_CHUNK	(2ull << 20)

struct vm {
	char name[VM_NAME_MAX];
	int id;
	enum vm_state state;
	int exit_code;			/* -1 until the guest wrote port 0xf4 */
	char stop_reason[96];
	uint64_t mem_size;
	struct guest_chunk *chunks;
	uint64_t nchunks;
	struct s2_pt s2;
	struct spinlock s2_lock;
	struct bus pio, mmio;
	int nvcpus;
	struct vcpu vcpus[VM_MAX_VCPUS];
	/* Dirty logging. */
	enum dirty_mode dirty_mode;
	struct dirtymap dirty;
	uint64_t dirty_harvests;
	/* Devices. */
	void *uart;
	void *testdev;
	struct irqchip *irqchip;	/* kernel/virt/irq.c */
	void *vpci;			/* PCI bus 0, kernel/devices/vpci.c */
	/* Devices from other subsystems (kernel/devices/vdev.h): the words
	 * the VM was created with, and what they built (inst NULL: not now). */
	int ndevs;
	char dev_specs[VM_MAX_DEVS][VM_DEV_SPEC_MAX];
	struct vm_dev {
		const struct vdev_type *type;
		void *inst;
	} devs[VM_MAX_DEVS];
	char kernel_path[96];
	char initrd_path[96];		/* Linux only; "" for none */
	char cmdline[256];		/* as the operator gave it */
	/* Multiboot only: module files, comma-separated, in the order the
	 * guest sees them (an env= file first: kvm-unit-tests' convention). */
	char module_paths[256];
	/* Set by guest_load: the protocol and the line the guest sees
	 * (Linux: defaults and tsc_early_khz= added, guest_linux.c). */
	enum guest_kind { GUEST_MULTIBOOT, GUEST_LINUX, GUEST_LINUX_PVH } kind;
	uint16_t linux_proto;		/* boot protocol version, 0x020f = 2.15 */
	char boot_cmdline[512];
	/* An outgoing migration holds it: the operator's lifecycle commands
	 * wait for the migration to end (or `migrate cancel`). */
	bool migrating;
	/* An outgoing migration reached COMMIT and then failed: the guest
	 * may run on the destination; `vm resume` wants "force". */
	bool committed_away;
	/* The guest asked for a reset: once every vCPU has left its loop the
	 * management CPU restarts the VM from its kernel (vm_service). */
	volatile bool reset_pending;
	uint32_t resets;
	char last_reset[96];		/* why the guest last reset itself */
};

/* What the chosen back end found on this CPU: filled in once by its
 * probe on the boot CPU, read-only afterwards. */
struct hv_caps {
	char name[80];			/* the back end and its features */
	const struct s2_format *s2fmt;
	unsigned dirty_modes;		/* bit per enum dirty_mode */
};

/*
 * Vendor back end, chosen at boot from the CPUID vendor (svm/svm.c,
 * vmx/vmx.c).  The table is constant; what differs between CPUs of one
 * vendor lives in struct hv_caps (generic) and the vendor's own caps.
 */
struct hv_ops {
	/* Boot CPU: whether guests can run here; fills caps, or why. */
	bool (*probe)(struct hv_caps *caps, char *why, size_t len);
	int (*cpu_enable)(void);	/* on each host CPU that runs guests */
	int (*vcpu_init)(struct vcpu *v);
	void (*vcpu_free)(struct vcpu *v);
	int (*vcpu_run)(struct vcpu *v, struct vcpu_exit *e);
	void (*load_state)(struct vcpu *v);	/* v->st -> hardware */
	void (*save_state)(struct vcpu *v);	/* hardware -> v->st */
	void (*flush_stage2)(struct vcpu *v);
	long (*pml_drain)(struct vcpu *v);	/* optional; 0 without PML */
	/* Benchmark only: a bare enter/exit loop on an initialised vCPU whose
	 * code is "cpuid; jmp back"; returns TSC cycles for iters exits. */
	int64_t (*bench_min_exit)(struct vcpu *v, uint64_t iters);
};

extern const struct hv_ops *hv;
extern const struct hv_caps *hv_caps;

/* hv.c */
int hv_init(void);		/* pick and enable a back end */
bool hv_cpu_usable(uint32_t cpu);
const char *hv_status(void);

/* vm.c */
struct vm *vm_find(const char *name);
/* initrd: NULL or "" for none (Linux kernels only). */
int vm_create(const char *name, uint64_t mem, const char *kernel, const char *initrd,
	      const char *cmdline, int nvcpus, char *err, size_t errlen);
/* The same with Multiboot modules: NULL/"" or "A,B,..." (ESP paths). */
int vm_create_mods(const char *name, uint64_t mem, const char *kernel, const char *initrd,
		   const char *modules, const char *cmdline, int nvcpus, char *err,
		   size_t errlen);
/* disk=/nic= words (kernel/devices/vdev.h) for a VM just created; on
 * failure the VM is destroyed and err says why. */
int vm_add_devices(struct vm *vm, const char *const *specs, int n, char *err, size_t errlen);
int vm_start(struct vm *vm, char *err, size_t errlen);
int vm_pick_cpu(uint32_t *cpu);	/* a guest-capable CPU no vCPU occupies */
int vm_free_cpus(void);		/* how many such CPUs there are */
bool vm_vcpu_on_cpu(const struct vcpu *v);
int vm_pause(struct vm *vm);
int vm_resume(struct vm *vm);
int vm_stop(struct vm *vm, const char *why);
int vm_destroy(struct vm *vm);
void vm_services_start(void);	/* the restart of guests that reset */
void vm_foreach(void (*fn)(struct vm *vm, void *ctx), void *ctx);
void *vm_gpa_to_hva(struct vm *vm, uint64_t gpa, size_t len);
int vm_read_gpa(struct vm *vm, uint64_t gpa, void *buf, size_t len);
int vm_write_gpa(struct vm *vm, uint64_t gpa, const void *buf, size_t len);
const char *vm_state_name(enum vm_state s);
void vm_guest_stopped(struct vm *vm, enum vm_state st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The guest asked for a reset (ACPI RESET_REG, 0xcf9, the keyboard
 * controller, a triple fault): this VM alone restarts from its kernel. */
void vm_guest_reset(struct vm *vm, const char *why);

/* vcpu.c: the one run loop */
void vcpu_loop(void *arg);
void vcpu_inject_exception(struct vcpu *v, uint8_t vector, bool has_error,
			   uint32_t error);
int vcpu_request(struct vcpu *v, uint32_t req, bool on, uint64_t timeout_us);
/* The vendors' vcpu_run: the guest's FPU state in (enter) and out (leave)
 * right around the entry instruction, nothing else in between.  enter
 * returns -EFAULT (host state back, v->fpu_fault says what) when loading
 * the guest's state faulted: the vendor must not enter the guest. */
int vcpu_fpu_enter(struct vcpu *v);
void vcpu_fpu_leave(struct vcpu *v);
const char *exit_kind_name(enum exit_kind k);

/* cpuid.c, msr.c: the guest-visible CPU policy */
void cpuid_policy(struct vcpu *v, uint32_t leaf, uint32_t sub, uint32_t out[4]);
int msr_read(struct vcpu *v, uint32_t msr, uint64_t *val);
int msr_write(struct vcpu *v, uint32_t msr, uint64_t val);
extern const uint32_t msr_migrated[];
extern const size_t msr_nmigrated;
int msr_state_get(const struct vcpu_state *st, uint32_t msr, uint64_t *val);
int msr_state_set(struct vcpu *v, uint32_t msr, uint64_t val);

/* mmio.c: emulate the instruction behind a stage-2 fault on a device */
int mmio_emulate(struct vcpu *v, const struct vcpu_exit *e);
int gva_to_gpa(struct vcpu *v, uint64_t gva, bool write, uint64_t *gpa);

/* dirty.c */
int dirty_start(struct vm *vm, enum dirty_mode mode);
long dirty_harvest(struct vm *vm, uint64_t *out);
void dirty_stop(struct vm *vm);
bool dirty_wp_fault(struct vcpu *v, uint64_t gpa);
const char *dirty_mode_name(enum dirty_mode m);
enum dirty_mode dirty_best_mode(void);	/* PML, else D-bit, else WP */

#endif
