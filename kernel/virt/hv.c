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
bool svm_supported(char *why, size_t len);
/* Weak until the VT-x back end (vmx/) is linked in. */
extern struct hv_ops vmx_ops __attribute__((weak));
bool vmx_supported(char *why, size_t len) __attribute__((weak));

const struct hv_ops *hv;
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
	return hv ? hv->name : hv_why;
}

bool hv_cpu_usable(uint32_t cpu)
{
	return cpu < MAX_CPUS && hv_cpu_ready[cpu];
}

int hv_init(void)
{
	char vendor[13];
	uint32_t i, ready = 0;

	cpu_vendor(vendor);
	if (!strcmp(vendor, "AuthenticAMD")) {
		if (svm_supported(hv_why, sizeof(hv_why)))
			hv = &svm_ops;
	} else if (!strcmp(vendor, "GenuineIntel")) {
		if (!vmx_supported)
			snprintf(hv_why, sizeof(hv_why),
				 "Intel VT-x back end not available in this build");
		else if (vmx_supported(hv_why, sizeof(hv_why)))
			hv = &vmx_ops;
	} else {
		snprintf(hv_why, sizeof(hv_why), "unknown CPU vendor '%s'", vendor);
	}
	if (!hv) {
		pr_warn("hv: no guests on this host: %s", hv_why);
		return -1;
	}
	for (i = 1; i < MAX_CPUS; i++) {
		int rc = -1;

		if (!cpu_table[i] || !cpu_table[i]->online)
			continue;
		smp_call(i, enable_here, &rc, true);
		hv_cpu_ready[i] = rc == 0;
		ready += rc == 0;
	}
	pr_info("hv: %s, %u CPUs for guests", hv->name, ready);
	return 0;
}
