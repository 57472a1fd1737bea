/* Shared between the zdtm-mem helper and the tests that check its image: which regions it maps
 * and what every page holds. */
#ifndef ZDTM_MEM_H
#define ZDTM_MEM_H

#include <stdint.h>

enum zdtm_region {
	ZR_ANON,       /* private anon: pages i%4==0,3 patterned, ==1 written zero, ==2 untouched */
	ZR_FILEPRIV,   /* MAP_PRIVATE of a file: even pages written (dirty), odd only read */
	ZR_SHARED,     /* MAP_SHARED|MAP_ANONYMOUS: all patterned but page 3 */
	ZR_MEMFD,      /* memfd mapped shared: all patterned but page 5 */
	ZR_RO,	       /* private anon, patterned, then PROT_READ */
	ZR_NONE,       /* private anon, patterned, then PROT_NONE */
	ZR_FILESHARED, /* MAP_SHARED of a file: identity only */
	ZR_N,
};

static const char *const zdtm_region_names[ZR_N] = {
	"anon", "filepriv", "shared", "memfd", "ro", "none", "fileshared",
};
static const unsigned zdtm_region_pages[ZR_N] = {64, 32, 16, 16, 8, 4, 4};

#define ZDTM_THREADS 4

/* Value of 64-bit word @w of page @p of region @r (file contents use region ZR_N). */
static inline uint64_t zdtm_pattern(unsigned r, unsigned p, unsigned w)
{
	uint64_t v = ((uint64_t)(r + 1) << 56) | ((uint64_t)p << 32) | (w * 2654435761u);
	return v | 1; /* never zero */
}

/* Callee-saved registers r12..r15 of helper thread @i hold ZDTM_REG_MAGIC(i) + 0..3, and the
 * low quadword of xmm0 holds ZDTM_REG_MAGIC(i), while it waits in pause(). */
#define ZDTM_REG_MAGIC(i) (0x5eed0000c0de0000ull + ((uint64_t)(i) << 8))

static inline int zdtm_expect_stored(unsigned r, unsigned p)
{
	switch (r) {
	case ZR_ANON:
		return p % 4 == 0 || p % 4 == 3;
	case ZR_FILEPRIV:
		return p % 2 == 0;
	case ZR_SHARED:
		return p != 3;
	case ZR_MEMFD:
		return p != 5;
	case ZR_RO:
	case ZR_NONE:
		return 1;
	default:
		return 0;
	}
}

#endif
