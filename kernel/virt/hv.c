/*
 * Picks the virtualisation back end from the CPUID vendor and the feature
 * checks, then enables it on every application processor (the boot CPU
 * stays free for the management plane).  A host with neither usable VT-x
 * nor AMD-V keeps its console and says why.
 */
#include <stdio.h>
#include <string.h>
#include "kernel/platform/arch.h"
#include "kernel/platform/cpu.h"
#include "kernel/virt/vm.h"

extern const struct hv_ops svm_ops;
extern const struct hv_ops vmx_ops;

const struct hv_ops *hv;
static struct hv_caps caps;
const struct hv_caps *hv_caps = &caps;
static char hv_why[128] = "not probed";
static bool hv_cpu_ready[MAX_CPUS];

static void cpu_vendor(char out[13])
{
	uint32_t a, b, c, d;

	cpuid(0, 0, &a, &b, &c, &d);
	memcpy(out, &b, 4);
	memcpy(out + 4, &d, 4);
	memcpy(out + 8, &c, 4);
	out[12] = 0;
}

static void enable_here(void *arg)
{
	int *rc = arg;

	*rc = hv->cpu_enable();
}

const char *hv_status(void)
{
	return hv ? caps.name : hv_why;
}

bool hv_cpu_usable(uint32_t cpu)
{
	return cpu < MAX_CPUS && hv_cpu_ready[cpu];
}

/* The back end for this CPU vendor, or NULL with the reason in hv_why. */
static const struct hv_ops *pick(void)
{
	char vendor[13];

	cpu_vendor(vendor);
	if (!strcmp(vendor, "AuthenticAMD"))
		return &svm_ops;
	if (!strcmp(vendor, "GenuineIntel"))
		return &vmx_ops;
	snprintf(hv_why, sizeof(hv_why), "unknown CPU vendor '%s'", vendor);
	return NULL;
}

int hv_init(void)
{
	const struct hv_ops *ops = pick();
	uint32_t i, ready = 0;

	if (ops && ops->probe(&caps, hv_why, sizeof(hv_why)))
		hv = ops;
	if (!hv) {
		pr_warn("hv: no guests on this host: %s", hv_why);
		return -1;
	}
	for (i = 1; i < MAX_CPUS; i++) {
		int rc = -1;

		if (!cpu_table[i] || !cpu_table[i]->online)
			continue;
		/* A CPU that does not answer (-ETIMEDOUT, logged) never ran
		 * enable_here: rc stays -1 and it runs no guests. */
		if (smp_call(i, enable_here, &rc, true) < 0)
			rc = -1;
		hv_cpu_ready[i] = rc == 0;
		ready += rc == 0;
	}
	pr_info("hv: %s, %u CPUs for guests", caps.name, ready);
	return 0;
}
