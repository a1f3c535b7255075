/*
 * lwIP compiler/platform port for the Tern kernel (see lwip/arch.h for the
 * hooks a port may define).  Built against Newlib's headers; lwIP itself is
 * never edited.
 */
#ifndef TERN_LWIP_ARCH_CC_H
#define TERN_LWIP_ARCH_CC_H

#include <stdint.h>
#include <limits.h>
#include <sys/types.h>	/* ssize_t (long on x86-64, see below) */
#include <machine/endian.h>	/* BYTE_ORDER, LITTLE_ENDIAN, BIG_ENDIAN */

/*
 * Without SSIZE_MAX lwIP typedefs ssize_t as int, which clashes with
 * Newlib's ssize_t (a signed size_t, i.e. long).  Defining it makes lwIP
 * take ssize_t from <unistd.h> instead.
 */
#ifndef SSIZE_MAX
#define SSIZE_MAX LONG_MAX
#endif

/*
 * Byte swaps: GCC turns these builtins into single bswap/rol instructions;
 * lwIP's def.c then skips its portable C versions.
 */
#if BYTE_ORDER == LITTLE_ENDIAN
#define lwip_htons(x) ((u16_t)__builtin_bswap16((u16_t)(x)))
#define lwip_htonl(x) ((u32_t)__builtin_bswap32((u32_t)(x)))
#endif

/*
 * Diagnostics, assertions and randomness are provided by the kernel
 * (net/), so lwIP never calls printf/abort/rand directly.
 */
void tern_lwip_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/*
 * Called on a failed LWIP_ASSERT (an lwIP-internal invariant, never on bad
 * network input: lwIP uses LWIP_ERROR for those).  Not declared noreturn:
 * the kernel decides whether to log and continue or park the CPU.
 */
void tern_lwip_assert(const char *msg, const char *file, int line);
/* Unpredictable 32-bit value: ephemeral ports, DHCP xid, DNS ids. */
uint32_t tern_lwip_rand(void);
/* RFC 6528 initial sequence number for a 4-tuple (addresses in network
 * order); lwipopts.h points LWIP_HOOK_TCP_ISN here (net/stack/rng.c). */
uint32_t tern_lwip_tcp_isn(uint32_t lip, uint16_t lport, uint32_t rip, uint16_t rport);

/* lwIP calls LWIP_PLATFORM_DIAG(("fmt", args)): x carries the parentheses. */
#define LWIP_PLATFORM_DIAG(x) do { tern_lwip_diag x; } while (0)
#define LWIP_PLATFORM_ASSERT(x) \
	do { tern_lwip_assert((x), __FILE__, __LINE__); } while (0)
#define LWIP_RAND() ((u32_t)tern_lwip_rand())

#endif /* TERN_LWIP_ARCH_CC_H */
