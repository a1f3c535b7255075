/*
 * Multiboot v1 boot information: startup banner, command line and
 * memory map.  The info block comes from the loader, so every walk is
 * bounded and an entry's `size` is checked before use.
 */
#include "guest.h"

#define MMAP_MAX_ENTRIES	128
#define MMAP_MIN_SIZE		20	/* addr + len + type */
#define CMDLINE_MAX		1024

static const struct mb_info *boot_info;

static const char *mmap_type_name(uint32_t type)
{
	switch (type) {
	case 1: return "available";
	case 2: return "reserved";
	case 3: return "acpi";
	case 4: return "nvs";
	case 5: return "bad";
	default: return "other";
	}
}

/* Next entry after `e` (NULL: the first), or NULL at the end. */
static const struct mb_mmap_entry *mmap_next(const struct mb_info *info,
					     const struct mb_mmap_entry *e)
{
	uint32_t start, end, next;

	if (!info || !(info->flags & MB_INFO_MMAP))
		return NULL;
	start = info->mmap_addr;
	end = start + info->mmap_length;
	if (end < start)
		return NULL;
	next = e ? (uint32_t)(uintptr_t)e + e->size + 4 : start;
	if (next < start || next > end || end - next < MMAP_MIN_SIZE + 4)
		return NULL;
	e = (const struct mb_mmap_entry *)(uintptr_t)next;
	if (e->size < MMAP_MIN_SIZE || e->size > end - next - 4)
		return NULL;
	return e;
}

bool guest_mmap_covers(const struct mb_info *info, uint64_t base, uint64_t len)
{
	const struct mb_mmap_entry *e = NULL;
	unsigned int n = 0;

	while ((e = mmap_next(info, e)) && n++ < MMAP_MAX_ENTRIES)
		if (e->type == MB_MMAP_AVAILABLE && e->addr <= base &&
		    e->addr + e->len >= base + len)
			return true;
	return false;
}

static void print_mmap(const struct mb_info *info)
{
	const struct mb_mmap_entry *e = NULL;
	unsigned int n = 0;

	if (info->flags & MB_INFO_MEM)
		guest_printf("mem_lower=%u KiB mem_upper=%u KiB\n",
			     info->mem_lower, info->mem_upper);
	if (!(info->flags & MB_INFO_MMAP)) {
		guest_puts("mmap: none\n");
		return;
	}
	while ((e = mmap_next(info, e)) && n < MMAP_MAX_ENTRIES)
		guest_printf("mmap[%u]: 0x%016llx-0x%016llx %s (%u)\n", n++,
			     (unsigned long long)e->addr,
			     (unsigned long long)(e->addr + e->len),
			     mmap_type_name(e->type), e->type);
}

const char *guest_cmdline(const struct mb_info *info)
{
	const char *s;
	size_t n;

	if (!info || !(info->flags & MB_INFO_CMDLINE) || !info->cmdline)
		return "";
	s = (const char *)(uintptr_t)info->cmdline;
	for (n = 0; n < CMDLINE_MAX; n++)
		if (!s[n])
			return s;
	return "";	/* unterminated: ignore rather than run off */
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/*
 * Find the token starting with `prefix` of exactly `plen` bytes (when
 * whole) or beginning with it (when !whole).  Tokens are blank-separated;
 * loaders put the kernel path first, so position does not matter.
 */
static const char *find_token(const char *s, const char *prefix, bool whole)
{
	size_t plen = strlen(prefix), tlen;

	while (*s) {
		while (is_space(*s))
			s++;
		for (tlen = 0; s[tlen] && !is_space(s[tlen]); tlen++)
			;
		if (tlen && tlen >= plen && !memcmp(s, prefix, plen) &&
		    (!whole || tlen == plen))
			return s;
		s += tlen;
	}
	return NULL;
}

bool guest_cmdline_has(const char *cmdline, const char *word)
{
	return find_token(cmdline, word, true) != NULL;
}

/* Parse "key=N" (decimal, or hex with 0x); false if absent or malformed. */
bool guest_cmdline_u64(const char *cmdline, const char *key, uint64_t *val)
{
	char prefix[32];
	size_t klen = strlen(key);
	const char *p;
	uint64_t v = 0, next;
	unsigned int base = 10, digit, ndigits = 0;

	if (klen + 2 > sizeof(prefix))
		return false;
	memcpy(prefix, key, klen);
	prefix[klen] = '=';
	prefix[klen + 1] = '\0';
	p = find_token(cmdline, prefix, false);
	if (!p)
		return false;
	p += klen + 1;
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		base = 16;
		p += 2;
	}
	for (; *p && !is_space(*p); p++, ndigits++) {
		if (*p >= '0' && *p <= '9')
			digit = (unsigned int)(*p - '0');
		else if (base == 16 && *p >= 'a' && *p <= 'f')
			digit = (unsigned int)(*p - 'a' + 10);
		else if (base == 16 && *p >= 'A' && *p <= 'F')
			digit = (unsigned int)(*p - 'A' + 10);
		else
			return false;
		/* v * base + digit, with overflow detected without division */
		next = (base == 16 ? v << 4 : (v << 3) + (v << 1)) + digit;
		if ((base == 16 && v >> 60) || (base == 10 && v > 0x1999999999999999ull) ||
		    next < digit)
			return false;
		v = next;
	}
	if (!ndigits)
		return false;
	*val = v;
	return true;
}

const struct mb_info *guest_boot_info(void)
{
	return boot_info;
}

/*
 * Common start for every guest: IDT, banner, the magic check, and the
 * command line and memory map as the loader gave them.
 */
void guest_init(const char *name, uint32_t magic, const struct mb_info *info)
{
	guest_set_name(name);
	guest_idt_install();
	guest_printf("GUEST %s START\n", name);
	guest_check("multiboot_magic", magic == MB_BOOT_MAGIC,
		    "eax=0x%08x", magic);
	if (magic != MB_BOOT_MAGIC || !info) {
		guest_puts("no usable boot information\n");
		return;
	}
	boot_info = info;
	guest_printf("flags=0x%x cmdline=\"%s\"\n", info->flags,
		     guest_cmdline(info));
	print_mmap(info);
}
