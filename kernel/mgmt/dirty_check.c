/*
 * `vm dirty` and `vm dirtycheck`: operator access to the dirty log, and a
 * self-check of its invariant on a live guest, in the spirit of KVM's
 * dirty_log_test.  Each round harvests once while the guest runs, pauses
 * it, harvests again, and compares a hash of every page with the previous
 * round: a page whose content changed but that no harvest reported is a
 * lost write, the one thing dirty logging must never do.  drop=ROUND
 * discards that round's harvests on purpose, to show the check fails when
 * it should: every page the guest changed in that round is then lost.
 * (Dropping only one harvest is not always detectable: a guest that
 * rewrites every page in each half-round hides it.)
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "kernel/platform/arch.h"
#include "kernel/virt/vm.h"
#include "kernel/mgmt/vm_cmds.h"

static enum dirty_mode parse_mode(const char *s)
{
	if (!strcmp(s, "dbit") || !strcmp(s, "d-bit"))
		return DIRTY_DBIT;
	if (!strcmp(s, "wp"))
		return DIRTY_WP;
	if (!strcmp(s, "pml"))
		return DIRTY_PML;
	return DIRTY_OFF;
}

int vm_cmd_dirty(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	struct vm *vm = vm_find(argv[0]);
	enum dirty_mode m = argc > 2 ? parse_mode(argv[2]) : dirty_best_mode();
	long rc = -EINVAL;

	(void)ctx;
	if (!vm) {
		cmd_printf(o, "error: vm dirty: no VM named '%s'\n", argv[0]);
		return -ENOENT;
	}
	if (vm->migrating) {
		cmd_printf(o, "error: vm dirty: %s is migrating (the migration owns its "
			   "dirty log)\n", vm->name);
		return -EBUSY;
	}
	if (!strcmp(argv[1], "start")) {
		rc = m == DIRTY_OFF ? -EINVAL : dirty_start(vm, m);
		if (!rc)
			cmd_printf(o, "dirty logging on (%s)\n", dirty_mode_name(m));
	} else if (!strcmp(argv[1], "stop")) {
		dirty_stop(vm);
		rc = 0;
		cmd_printf(o, "dirty logging off\n");
	} else if (!strcmp(argv[1], "harvest")) {
		uint64_t t0 = time_us();

		rc = dirty_harvest(vm, NULL);
		if (rc >= 0)
			cmd_printf(o, "%ld pages dirty (harvest of %lu MiB took %lu us)\n",
				   rc, vm->mem_size >> 20, time_us() - t0);
	}
	if (rc < 0)
		cmd_printf(o, "error: vm dirty: %s (usage: vm dirty NAME start [dbit|wp|pml]"
			   " | stop | harvest)\n", cmd_strerror((int)rc));
	return rc < 0 ? (int)rc : 0;
}

/* FNV-1a over 64-bit words: cheap, and any counter change alters it. */
static uint64_t page_hash(const uint64_t *p)
{
	uint64_t h = 0xcbf29ce484222325ull;
	size_t i;

	for (i = 0; i < PAGE_SIZE / 8; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

static void hash_all(struct vm *vm, uint64_t *hashes)
{
	uint64_t i, n = vm->mem_size / PAGE_SIZE;

	for (i = 0; i < n; i++)
		hashes[i] = page_hash(vm_gpa_to_hva(vm, i * PAGE_SIZE, PAGE_SIZE));
}

struct check {
	uint64_t *hashes, *seen, *tmp;
	bool drop;		/* self-test: discard this round's harvests */
	uint64_t words, npages;
	uint64_t lost, changed, reported;
};

static long check_round(struct vm *vm, struct check *c, uint64_t run_us)
{
	uint64_t i, w;
	long rc;

	memset(c->seen, 0, c->words * 8);
	if (vm_resume(vm) < 0)
		return -EIO;
	udelay(run_us / 2);
	rc = dirty_harvest(vm, c->tmp);		/* while the guest writes */
	for (w = 0; rc >= 0 && !c->drop && w < c->words; w++)
		c->seen[w] |= c->tmp[w];
	udelay(run_us / 2);
	if (vm_pause(vm) < 0)
		return -EIO;
	if (rc >= 0)
		rc = dirty_harvest(vm, c->tmp);	/* with the guest stopped */
	if (rc < 0)
		return rc;
	for (w = 0; !c->drop && w < c->words; w++)
		c->seen[w] |= c->tmp[w];
	for (i = 0; i < c->npages; i++) {
		uint64_t h = page_hash(vm_gpa_to_hva(vm, i * PAGE_SIZE, PAGE_SIZE));
		bool reported = c->seen[i / 64] & (1ull << (i % 64));

		c->reported += reported;
		if (h != c->hashes[i]) {
			c->changed++;
			c->lost += !reported;
		}
		c->hashes[i] = h;
	}
	return 0;
}

static int run_check(struct vm *vm, struct cmd_ctx *ctx, struct cmd_out *o,
		     enum dirty_mode m, uint64_t rounds, uint64_t drop)
{
	struct check c = { .npages = vm->mem_size / PAGE_SIZE };
	uint64_t r, seed = rdtsc();
	long rc = 0;

	c.words = (c.npages + 63) / 64;
	c.hashes = malloc(c.npages * 8);
	c.seen = malloc(c.words * 8);
	c.tmp = malloc(c.words * 8);
	if (!c.hashes || !c.seen || !c.tmp) {
		rc = -ENOMEM;
		goto out;
	}
	rc = vm_pause(vm);
	if (!rc)
		rc = dirty_start(vm, m);
	if (rc < 0)
		goto out;
	hash_all(vm, c.hashes);
	for (r = 0; r < rounds && !rc; r++) {
		uint64_t before = c.changed, lost = c.lost;

		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		c.drop = r + 1 == drop;
		rc = check_round(vm, &c, 20000 + (seed >> 33) % 80000);
		cmd_printf(o, "round %lu: changed %lu, lost %lu%s\n", r + 1,
			   c.changed - before, c.lost - lost,
			   c.drop ? " (harvests dropped on purpose)" : "");
		console_progress(ctx, "round", r + 1, rounds);
	}
	dirty_stop(vm);
	vm_resume(vm);
out:
	free(c.hashes);
	free(c.seen);
	free(c.tmp);
	if (rc < 0) {
		cmd_printf(o, "error: vm dirtycheck: %s\n", cmd_strerror((int)rc));
		return (int)rc;
	}
	if (c.lost || !c.changed) {
		cmd_printf(o, "dirtycheck FAIL mode=%s rounds=%lu changed=%lu lost=%lu%s\n",
			   dirty_mode_name(m), rounds, c.changed, c.lost,
			   c.changed ? "" : " (the guest wrote nothing)");
		return -EIO;
	}
	cmd_printf(o, "dirtycheck PASS mode=%s rounds=%lu changed=%lu reported=%lu lost=0\n",
		   dirty_mode_name(m), rounds, c.changed, c.reported);
	return 0;
}

int vm_cmd_dirtycheck(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv)
{
	struct vm *vm = vm_find(argv[0]);
	enum dirty_mode m = dirty_best_mode();
	uint64_t rounds = 5, drop = 0;
	const char *val;
	int i;

	if (!vm || vm->state != VM_RUNNING || vm->dirty_mode != DIRTY_OFF || vm->migrating) {
		cmd_printf(o, "error: vm dirtycheck: '%s' must be a running VM without "
			   "dirty logging\n", argv[0]);
		return -EINVAL;
	}
	for (i = 1; i < argc; i++) {
		if (cmd_parse_kv(argv[i], "rounds", &val) && !cmd_parse_u64(val, &rounds) &&
		    rounds && rounds <= 1000)
			continue;
		if (cmd_parse_kv(argv[i], "mode", &val) && (m = parse_mode(val)) != DIRTY_OFF)
			continue;
		if (cmd_parse_kv(argv[i], "drop", &val) && !cmd_parse_u64(val, &drop))
			continue;
		cmd_printf(o, "error: vm dirtycheck: bad argument '%s' (usage: vm "
			   "dirtycheck NAME [rounds=N] [mode=dbit|wp|pml] [drop=ROUND])\n", argv[i]);
		return -EINVAL;
	}
	return run_check(vm, ctx, o, m, rounds, drop);
}
