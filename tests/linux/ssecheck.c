/*
 * Guest-side check that a hypervisor keeps the guest's SSE state: fill
 * XMM0-15 with distinct patterns, make exits happen (system calls that
 * reach the UART, reads of /proc), and compare.  Built with the host gcc
 * -static into the test initramfs (tools/mkinitramfs.py).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define ROUNDS	200

static int check_round(int r)
{
	uint8_t in[16][16], out[16][16];

	for (int i = 0; i < 16; i++)
		for (int j = 0; j < 16; j++)
			in[i][j] = (uint8_t)(r * 31 + i * 17 + j);
	__asm__ volatile(
		"movdqu 0(%0), %%xmm0\n movdqu 16(%0), %%xmm1\n movdqu 32(%0), %%xmm2\n"
		"movdqu 48(%0), %%xmm3\n movdqu 64(%0), %%xmm4\n movdqu 80(%0), %%xmm5\n"
		"movdqu 96(%0), %%xmm6\n movdqu 112(%0), %%xmm7\n movdqu 128(%0), %%xmm8\n"
		"movdqu 144(%0), %%xmm9\n movdqu 160(%0), %%xmm10\n movdqu 176(%0), %%xmm11\n"
		"movdqu 192(%0), %%xmm12\n movdqu 208(%0), %%xmm13\n movdqu 224(%0), %%xmm14\n"
		"movdqu 240(%0), %%xmm15\n"
		/* getppid: a system call; the kernel may switch tasks or exit
		 * to the hypervisor meanwhile. */
		"mov $110, %%eax\n syscall\n"
		"movdqu %%xmm0, 0(%1)\n movdqu %%xmm1, 16(%1)\n movdqu %%xmm2, 32(%1)\n"
		"movdqu %%xmm3, 48(%1)\n movdqu %%xmm4, 64(%1)\n movdqu %%xmm5, 80(%1)\n"
		"movdqu %%xmm6, 96(%1)\n movdqu %%xmm7, 112(%1)\n movdqu %%xmm8, 128(%1)\n"
		"movdqu %%xmm9, 144(%1)\n movdqu %%xmm10, 160(%1)\n movdqu %%xmm11, 176(%1)\n"
		"movdqu %%xmm12, 192(%1)\n movdqu %%xmm13, 208(%1)\n movdqu %%xmm14, 224(%1)\n"
		"movdqu %%xmm15, 240(%1)\n"
		: : "r"(in), "r"(out)
		: "rax", "rcx", "r11", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5",
		  "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14",
		  "xmm15");
	for (int i = 0; i < 16; i++)
		if (memcmp(in[i], out[i], 16)) {
			printf("ssecheck: round %d: xmm%d changed\n", r, i);
			return 1;
		}
	return 0;
}

int main(void)
{
	for (int r = 0; r < ROUNDS; r++) {
		if (check_round(r))
			return 1;
		if (r % 50 == 0)
			/* A write to the console: port I/O exits in the guest. */
			fprintf(stderr, "ssecheck: round %d\n", r);
	}
	printf("ssecheck: %d rounds, XMM0-15 kept\n", ROUNDS);
	return 0;
}
