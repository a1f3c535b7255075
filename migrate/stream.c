/*
 * The migration stream codec, the parts both ends share: record names,
 * field checks and the order rules (wire format in stream.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "kernel/lib/crc32c.h"
#include "migrate/stream_int.h"

static const char *const rec_names[] = {
	"?", "CONFIG", "ROUND", "RAM", "VCPU", "DEVICE", "END",
};

const char *mig_rec_name(unsigned type)
{
	return type < sizeof(rec_names) / sizeof(rec_names[0]) ? rec_names[type] : "?";
}

size_t mig_bitmap_bytes(uint64_t npages)
{
	return (size_t)((npages + 63) / 64 * 8);
}

size_t mig_ram_record_max(unsigned n)
{
	return MIG_REC_HDR_LEN + RAM_FIXED + (size_t)n * (RAM_ENTRY + MIG_PAGE_SIZE) +
	       MIG_TAG_LEN;
}

int mig_why_set(char *why, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, MIG_REASON_MAX, fmt, ap);
	va_end(ap);
	return err;
}

/* ---- field checks, shared by both ends ---- */

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
}

static int check_name(const char *what, const char *s, size_t len, char *why)
{
	if (len == 0)
		return mig_why_set(why, -EBADMSG, "%s is empty", what);
	if (len > MIG_NAME_MAX)
		return mig_why_set(why, -E2BIG, "%s of %zu bytes (at most %d)", what,
				   len, MIG_NAME_MAX);
	for (size_t i = 0; i < len; i++)
		if (!name_char(s[i]))
			return mig_why_set(why, -EBADMSG, "%s has byte %#x at %zu (only "
					   "A-Z a-z 0-9 . _ -)", what, (uint8_t)s[i], i);
	return 0;
}

static int check_text(const char *what, const char *s, size_t len, size_t max,
		      char *why)
{
	if (len > max)
		return mig_why_set(why, -E2BIG, "%s of %zu bytes (at most %zu)", what,
				   len, max);
	for (size_t i = 0; i < len; i++)
		if ((uint8_t)s[i] < 0x20 || (uint8_t)s[i] > 0x7e)
			return mig_why_set(why, -EBADMSG, "%s has byte %#x at %zu (only "
					   "printable ASCII)", what, (uint8_t)s[i], i);
	return 0;
}

/*
 * A device word: "key=value", 1..MIG_DEVSPEC_MAX bytes of printable ASCII
 * without spaces (vdev_specs joins a VM's words with spaces), the key
 * [a-z]+ and the value not empty.
 */
static int check_devspec(uint32_t i, const char *s, size_t len, char *why)
{
	size_t k = 0;

	if (len == 0)
		return mig_why_set(why, -EBADMSG, "device word %u is empty", i);
	if (len > MIG_DEVSPEC_MAX)
		return mig_why_set(why, -E2BIG, "device word %u of %zu bytes (at most %d)",
				   i, len, MIG_DEVSPEC_MAX);
	for (size_t j = 0; j < len; j++)
		if ((uint8_t)s[j] <= 0x20 || (uint8_t)s[j] > 0x7e)
			return mig_why_set(why, -EBADMSG, "device word %u has byte %#x at "
					   "%zu (only printable ASCII, no spaces)", i,
					   (uint8_t)s[j], j);
	while (k < len && s[k] >= 'a' && s[k] <= 'z')
		k++;
	if (k == 0 || k + 1 >= len || s[k] != '=')
		return mig_why_set(why, -EBADMSG, "device word %u '%.*s' is not "
				   "key=value (key a-z)", i, (int)len, s);
	return 0;
}

/* The device words, each well formed.  The same word twice is allowed
 * ("nic=auto nic=auto" makes two NICs); what cannot be (one disk twice)
 * is refused by the destination's device creation, as by `vm create`. */
static int check_devspecs(const struct mig_config *c, const struct mig_lens *l,
			  char *why)
{
	int rc;

	for (uint32_t i = 0; i < c->ndevspecs; i++)
		if ((rc = check_devspec(i, c->devspecs[i], l->devspec[i], why)))
			return rc;
	return 0;
}

/* Memory, vCPUs, kind, TSC rate and the counts, before any string. */
static int check_config_numbers(const struct mig_config *c, uint64_t cap, char *why)
{
	uint64_t npages = c->mem_size / MIG_PAGE_SIZE;

	if (c->mem_size == 0 || c->mem_size % MIG_PAGE_SIZE)
		return mig_why_set(why, -EBADMSG, "memory size %#llx is not a positive "
				   "multiple of 4 KiB", (unsigned long long)c->mem_size);
	if (npages > MIG_PAGES_MAX)
		return mig_why_set(why, -E2BIG, "%llu pages of memory (at most %llu)",
				   (unsigned long long)npages, MIG_PAGES_MAX);
	if (npages > cap)
		return mig_why_set(why, -ERANGE, "VM of %llu pages exceeds this host's "
				   "limit of %llu pages", (unsigned long long)npages,
				   (unsigned long long)cap);
	if (c->nvcpus == 0 || c->nvcpus > MIG_VCPUS_MAX)
		return mig_why_set(why, c->nvcpus ? -E2BIG : -EBADMSG, "%u vCPUs "
				   "(1 to %d)", c->nvcpus, MIG_VCPUS_MAX);
	if (c->kind > MIG_KIND_LINUX_PVH)
		return mig_why_set(why, -ERANGE, "guest kind %u (0 Multiboot, 1 Linux, "
				   "2 Linux PVH)", c->kind);
	if (c->tsc_khz && (c->tsc_khz < MIG_TSC_KHZ_MIN || c->tsc_khz > MIG_TSC_KHZ_MAX))
		return mig_why_set(why, -ERANGE, "TSC rate of %u kHz (0 for unknown, or "
				   "%d to %d)", c->tsc_khz, MIG_TSC_KHZ_MIN, MIG_TSC_KHZ_MAX);
	if (c->ncpuid > MIG_CPUID_MAX)
		return mig_why_set(why, -E2BIG, "%u CPUID entries (at most %d)",
				   c->ncpuid, MIG_CPUID_MAX);
	if (c->ndevspecs > MIG_DEVSPECS_MAX)
		return mig_why_set(why, -E2BIG, "%u device words (at most %d)",
				   c->ndevspecs, MIG_DEVSPECS_MAX);
	return 0;
}

int mig_check_config(const struct mig_config *c, const struct mig_lens *l,
		     uint64_t cap, char *why)
{
	int rc;

	if ((rc = check_config_numbers(c, cap, why)) ||
	    (rc = check_name("VM name", c->name, l->name, why)) ||
	    (rc = check_text("kernel path", c->kernel_path, l->path, MIG_PATH_MAX, why)) ||
	    (rc = check_text("initrd path", c->initrd_path, l->initrd, MIG_PATH_MAX, why)) ||
	    (rc = check_text("module list", c->modules, l->modules, MIG_PATH_MAX, why)) ||
	    (rc = check_text("command line", c->cmdline, l->cmdline, MIG_CMDLINE_MAX, why)))
		return rc;
	/* The loader refuses initrd= for a Multiboot kernel (guest_load.c). */
	if (l->initrd && c->kind == MIG_KIND_MULTIBOOT)
		return mig_why_set(why, -EBADMSG, "an initrd for a Multiboot guest");
	return check_devspecs(c, l, why);
}

int mig_check_vcpu(const struct mig_vcpu *v, char *why)
{
	bool valid = v->event_flags & MIG_EVENT_VALID;

	if (v->flags & ~(MIG_VCPU_INT_SHADOW | MIG_VCPU_NMI_BLOCKED))
		return mig_why_set(why, -EBADMSG, "vcpu %u: unknown flags %#x", v->index,
				   v->flags);
	if (v->cpl > 3)
		return mig_why_set(why, -EBADMSG, "vcpu %u: CPL %u", v->index, v->cpl);
	if (v->gdtr.limit > 0xffff || v->idtr.limit > 0xffff)
		return mig_why_set(why, -EBADMSG, "vcpu %u: descriptor table limit "
				   "above 0xffff", v->index);
	if (v->event_flags & ~(MIG_EVENT_VALID | MIG_EVENT_HAS_ERROR) ||
	    v->event_type > 7 ||
	    (!valid && (v->event_flags || v->event_vector || v->event_type)) ||
	    (!(v->event_flags & MIG_EVENT_HAS_ERROR) && v->event_error))
		return mig_why_set(why, -EBADMSG, "vcpu %u: malformed pending event",
				   v->index);
	if (v->nmsrs > MIG_MSRS_MAX)
		return mig_why_set(why, -E2BIG, "vcpu %u: %u MSRs (at most %d)", v->index,
				   v->nmsrs, MIG_MSRS_MAX);
	if (v->xsave_len > MIG_XSAVE_MAX)
		return mig_why_set(why, -E2BIG, "vcpu %u: XSAVE image of %u bytes (at "
				   "most %d)", v->index, v->xsave_len, MIG_XSAVE_MAX);
	return 0;
}

int mig_check_device(const struct mig_device *d, size_t name_len, char *why)
{
	int rc = check_name("device name", d->name, name_len, why);

	if (rc)
		return rc;
	if (d->blob_len > MIG_BLOB_MAX)
		return mig_why_set(why, -E2BIG, "device %s: state of %u bytes (at most "
				   "%d)", d->name, d->blob_len, MIG_BLOB_MAX);
	return 0;
}

/* ---- order rules, shared by both ends; each changes o only on success ---- */

void mig_ord_init(struct mig_order *o, uint32_t flags)
{
	memset(o, 0, sizeof(*o));
	o->flags = flags;
	o->phase = MIG_PH_CONFIG;
}

static int ord_phase(const struct mig_order *o, unsigned type, char *why)
{
	static const char *const after[] = {
		[MIG_PH_HEADER] = "before the stream header",
		[MIG_PH_CONFIG] = "before CONFIG",
		[MIG_PH_RAM] = "in the RAM section",
		[MIG_PH_VCPU] = "after VCPU",
		[MIG_PH_DEVICE] = "after DEVICE",
		[MIG_PH_DONE] = "after END",
	};

	return mig_why_set(why, -EPROTO, "%s %s", mig_rec_name(type), after[o->phase]);
}

/* Leaving a round: it must have carried what its ROUND record said. */
static int ord_close_round(const struct mig_order *o, char *why)
{
	if (o->rounds && o->round_seen != o->round_pages)
		return mig_why_set(why, -EPROTO, "round %u announced %llu pages but "
				   "carried %llu", o->rounds - 1,
				   (unsigned long long)o->round_pages,
				   (unsigned long long)o->round_seen);
	return 0;
}

int mig_ord_config(struct mig_order *o, uint64_t npages, uint32_t nvcpus,
		   char *why)
{
	if (o->phase != MIG_PH_CONFIG)
		return ord_phase(o, MIG_REC_CONFIG, why);
	o->npages = npages;
	o->nvcpus = nvcpus;
	o->phase = MIG_PH_RAM;
	return 0;
}

int mig_ord_round(struct mig_order *o, const struct mig_round *r, char *why)
{
	int rc;

	if (o->phase != MIG_PH_RAM)
		return ord_phase(o, MIG_REC_ROUND, why);
	if (r->flags & ~MIG_ROUND_FINAL)
		return mig_why_set(why, -EBADMSG, "round %u: unknown flags %#x", r->round,
				   r->flags);
	if ((rc = ord_close_round(o, why)))
		return rc;
	if (o->final)
		return mig_why_set(why, -EPROTO, "round %u after the final round",
				   r->round);
	if (o->rounds && !(o->flags & MIG_F_LIVE))
		return mig_why_set(why, -EPROTO, "a second round in a quick migration");
	if (r->round != o->rounds)
		return mig_why_set(why, -EPROTO, "round %u where round %u was due",
				   r->round, o->rounds);
	if (r->pages > o->npages)
		return mig_why_set(why, -ERANGE, "round %u of %llu pages, but the VM "
				   "has %llu", r->round, (unsigned long long)r->pages,
				   (unsigned long long)o->npages);
	o->rounds++;
	o->round_pages = r->pages;
	o->round_seen = 0;
	o->final = r->flags & MIG_ROUND_FINAL;
	return 0;
}

int mig_ord_ram(struct mig_order *o, uint32_t n, char *why)
{
	if (o->phase != MIG_PH_RAM)
		return ord_phase(o, MIG_REC_RAM, why);
	if (!o->rounds)
		return mig_why_set(why, -EPROTO, "RAM before the first ROUND");
	if (n > o->round_pages - o->round_seen)
		return mig_why_set(why, -EPROTO, "round %u announced %llu pages and "
				   "got more", o->rounds - 1,
				   (unsigned long long)o->round_pages);
	o->round_seen += n;
	o->pages += n;
	return 0;
}

/* The vCPU section starts after at least one round, which it closes. */
static int ord_leave_ram(const struct mig_order *o, unsigned type, char *why)
{
	if (o->phase != MIG_PH_RAM)
		return 0;
	if (!o->rounds)
		return mig_why_set(why, -EPROTO, "%s before any RAM", mig_rec_name(type));
	return ord_close_round(o, why);
}

int mig_ord_vcpu(struct mig_order *o, uint32_t index, char *why)
{
	int rc;

	if (o->phase != MIG_PH_RAM && o->phase != MIG_PH_VCPU)
		return ord_phase(o, MIG_REC_VCPU, why);
	if ((rc = ord_leave_ram(o, MIG_REC_VCPU, why)))
		return rc;
	if (index >= o->nvcpus)
		return mig_why_set(why, -ERANGE, "vcpu %u beyond the %u vCPUs of the VM",
				   index, o->nvcpus);
	if (o->vcpu_mask & (1ull << index))
		return mig_why_set(why, -EPROTO, "vcpu %u sent twice", index);
	o->vcpu_mask |= 1ull << index;
	o->phase = MIG_PH_VCPU;
	return 0;
}

static uint64_t all_vcpus(const struct mig_order *o)
{
	return o->nvcpus >= 64 ? ~0ull : (1ull << o->nvcpus) - 1;
}

/* The lowest vCPU not yet sent; call only when one is missing. */
static unsigned missing_vcpu(const struct mig_order *o)
{
	unsigned i = 0;

	while (o->vcpu_mask & (1ull << i))
		i++;
	return i;
}

int mig_ord_device(struct mig_order *o, const char *name, char *why)
{
	if (o->phase != MIG_PH_VCPU && o->phase != MIG_PH_DEVICE)
		return o->phase == MIG_PH_RAM ?
		       mig_why_set(why, -EPROTO, "DEVICE before the vCPUs") :
		       ord_phase(o, MIG_REC_DEVICE, why);
	if (o->vcpu_mask != all_vcpus(o))
		return mig_why_set(why, -EPROTO, "DEVICE before vcpu %u",
				   missing_vcpu(o));
	for (uint32_t i = 0; i < o->ndevices; i++)
		if (!strcmp(o->devices[i], name))
			return mig_why_set(why, -EPROTO, "device %s sent twice", name);
	if (o->ndevices == MIG_DEVICES_MAX)
		return mig_why_set(why, -E2BIG, "more than %d devices", MIG_DEVICES_MAX);
	memcpy(o->devices[o->ndevices++], name, MIG_NAME_MAX + 1);
	o->phase = MIG_PH_DEVICE;
	return 0;
}

int mig_ord_end(struct mig_order *o, char *why)
{
	int rc;

	if (o->phase < MIG_PH_RAM || o->phase > MIG_PH_DEVICE)
		return ord_phase(o, MIG_REC_END, why);
	if ((rc = ord_leave_ram(o, MIG_REC_END, why)))
		return rc;
	if (o->vcpu_mask != all_vcpus(o))
		return mig_why_set(why, -ENOENT, "vcpu %u of %u never sent",
				   missing_vcpu(o), o->nvcpus);
	o->phase = MIG_PH_DONE;
	return 0;
}

