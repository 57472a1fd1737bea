/* The register loops of zdtm-counter and zdtm-threads, and their check. A block is ITERS
 * iterations in which general register i adds 2i+1, zmm0..30 add zmm31 and k1..k6 add k7
 * (block_avx512), or four general registers only (block_gpr); it starts from a struct regs
 * and leaves the registers there. The includer defines ITERS and where the state is:
 * ZDTM_REGS_LOAD, an asm operand holding the struct regs pointer ("st_ptr(%%rip)",
 * "%%fs:tl_st@tpoff"); ZDTM_REGS_OUT, an asm operand the loop leaves rax in; ZDTM_REGS_DONE(),
 * which moves that value to g[0].
 *
 * NOT TO BE BUILT WITH SANITIZERS: included by checkpointed helpers. */
#ifndef ZDTM_REGS_H
#define ZDTM_REGS_H

#include <stddef.h>
#include <stdint.h>

#define NG 13 /* rax rbx rdx rsi rdi r8..r15 (rcx counts, rbp/rsp are the frame) */

/* Register state between blocks: g[NG], k[8] (k0 unused), z[32][8]. */
struct regs {
	uint64_t g[NG];
	uint64_t k[8];
	uint64_t z[32][8] __attribute__((aligned(64)));
};
_Static_assert(offsetof(struct regs, k) == 104, "asm offsets");
_Static_assert(offsetof(struct regs, z) == 192, "asm offsets");

/* ITERS iterations; general register i adds 2i+1, zmm0..30 add zmm31, k1..k6 add k7. */
__attribute__((target("avx512f,avx512bw"), noinline)) static void block_avx512(void)
{
	__asm__ volatile(
		"mov " ZDTM_REGS_LOAD ", %%rax\n\t"
#define LZ(i) "vmovdqu64 " #i "*64+192(%%rax), %%zmm" #i "\n\t"
		LZ(0) LZ(1) LZ(2) LZ(3) LZ(4) LZ(5) LZ(6) LZ(7) LZ(8) LZ(9) LZ(10) LZ(11) LZ(12)
		LZ(13) LZ(14) LZ(15) LZ(16) LZ(17) LZ(18) LZ(19) LZ(20) LZ(21) LZ(22) LZ(23)
		LZ(24) LZ(25) LZ(26) LZ(27) LZ(28) LZ(29) LZ(30) LZ(31)
#define LK(i) "kmovq " #i "*8+104(%%rax), %%k" #i "\n\t"
		LK(1) LK(2) LK(3) LK(4) LK(5) LK(6) LK(7)
		"mov 8(%%rax), %%rbx\n\t"
		"mov 16(%%rax), %%rdx\n\t"
		"mov 24(%%rax), %%rsi\n\t"
		"mov 32(%%rax), %%rdi\n\t"
		"mov 40(%%rax), %%r8\n\t"
		"mov 48(%%rax), %%r9\n\t"
		"mov 56(%%rax), %%r10\n\t"
		"mov 64(%%rax), %%r11\n\t"
		"mov 72(%%rax), %%r12\n\t"
		"mov 80(%%rax), %%r13\n\t"
		"mov 88(%%rax), %%r14\n\t"
		"mov 96(%%rax), %%r15\n\t"
		"mov 0(%%rax), %%rax\n\t"
		"mov %[n], %%rcx\n\t"
		"1:\n\t"
		"add $1, %%rax\n\t"
		"add $3, %%rbx\n\t"
		"add $5, %%rdx\n\t"
		"add $7, %%rsi\n\t"
		"add $9, %%rdi\n\t"
		"add $11, %%r8\n\t"
		"add $13, %%r9\n\t"
		"add $15, %%r10\n\t"
		"add $17, %%r11\n\t"
		"add $19, %%r12\n\t"
		"add $21, %%r13\n\t"
		"add $23, %%r14\n\t"
		"add $25, %%r15\n\t"
#define AZ(i) "vpaddq %%zmm31, %%zmm" #i ", %%zmm" #i "\n\t"
		AZ(0) AZ(1) AZ(2) AZ(3) AZ(4) AZ(5) AZ(6) AZ(7) AZ(8) AZ(9) AZ(10) AZ(11) AZ(12)
		AZ(13) AZ(14) AZ(15) AZ(16) AZ(17) AZ(18) AZ(19) AZ(20) AZ(21) AZ(22) AZ(23)
		AZ(24) AZ(25) AZ(26) AZ(27) AZ(28) AZ(29) AZ(30)
#define AK(i) "kaddq %%k7, %%k" #i ", %%k" #i "\n\t"
		AK(1) AK(2) AK(3) AK(4) AK(5) AK(6)
		"dec %%rcx\n\t"
		"jnz 1b\n\t"
		"mov %%rax, " ZDTM_REGS_OUT "\n\t"
		"mov " ZDTM_REGS_LOAD ", %%rax\n\t"
		"mov %%rbx, 8(%%rax)\n\t"
		"mov %%rdx, 16(%%rax)\n\t"
		"mov %%rsi, 24(%%rax)\n\t"
		"mov %%rdi, 32(%%rax)\n\t"
		"mov %%r8, 40(%%rax)\n\t"
		"mov %%r9, 48(%%rax)\n\t"
		"mov %%r10, 56(%%rax)\n\t"
		"mov %%r11, 64(%%rax)\n\t"
		"mov %%r12, 72(%%rax)\n\t"
		"mov %%r13, 80(%%rax)\n\t"
		"mov %%r14, 88(%%rax)\n\t"
		"mov %%r15, 96(%%rax)\n\t"
#define SK(i) "kmovq %%k" #i ", " #i "*8+104(%%rax)\n\t"
		SK(1) SK(2) SK(3) SK(4) SK(5) SK(6) SK(7)
#define SZ(i) "vmovdqu64 %%zmm" #i ", " #i "*64+192(%%rax)\n\t"
		SZ(0) SZ(1) SZ(2) SZ(3) SZ(4) SZ(5) SZ(6) SZ(7) SZ(8) SZ(9) SZ(10) SZ(11)
		SZ(12) SZ(13) SZ(14) SZ(15) SZ(16) SZ(17) SZ(18) SZ(19) SZ(20)
		SZ(21) SZ(22) SZ(23) SZ(24) SZ(25) SZ(26) SZ(27) SZ(28)
		SZ(29) SZ(30) SZ(31) "vzeroupper\n\t"
		:
		: [n] "i"(ITERS)
		: "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
		  "r14", "r15", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "xmm0", "xmm1", "xmm2",
		  "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12",
		  "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21",
		  "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30",
		  "xmm31", "memory", "cc");
	ZDTM_REGS_DONE();
}

/* Without AVX-512: four general registers only. */
__attribute__((noinline)) static void block_gpr(void)
{
	__asm__ volatile("mov " ZDTM_REGS_LOAD ", %%rax\n\t"
			 "mov 8(%%rax), %%rbx\n\t"
			 "mov 72(%%rax), %%r12\n\t"
			 "mov 96(%%rax), %%r15\n\t"
			 "mov 0(%%rax), %%rax\n\t"
			 "mov %[n], %%rcx\n\t"
			 "1:\n\t"
			 "add $1, %%rax\n\t"
			 "add $3, %%rbx\n\t"
			 "add $19, %%r12\n\t"
			 "add $25, %%r15\n\t"
			 "dec %%rcx\n\t"
			 "jnz 1b\n\t"
			 "mov %%rax, " ZDTM_REGS_OUT "\n\t"
			 "mov " ZDTM_REGS_LOAD ", %%rax\n\t"
			 "mov %%rbx, 8(%%rax)\n\t"
			 "mov %%r12, 72(%%rax)\n\t"
			 "mov %%r15, 96(%%rax)\n\t"
			 :
			 : [n] "i"(ITERS)
			 : "rax", "rbx", "rcx", "r12", "r15", "memory", "cc");
	ZDTM_REGS_DONE();
}

/* 1 when @st is where @st0 gets after @blocks blocks (the general registers only without
 * @avx512). */
static int regs_check(const struct regs *st, const struct regs *st0, uint64_t blocks, int avx512)
{
	uint64_t t = blocks * ITERS;
	for (int i = 0; i < NG; i++) {
		if (!avx512 && i != 0 && i != 1 && i != 9 && i != 12)
			continue;
		if (st->g[i] != st0->g[i] + t * (uint64_t)(2 * i + 1))
			return 0;
	}
	if (!avx512)
		return 1;
	for (int i = 1; i <= 6; i++)
		if (st->k[i] != st0->k[i] + t * st0->k[7])
			return 0;
	if (st->k[7] != st0->k[7])
		return 0;
	for (int i = 0; i < 32; i++)
		for (int j = 0; j < 8; j++)
			if (st->z[i][j] != st0->z[i][j] + (i < 31 ? t * st0->z[31][j] : 0))
				return 0;
	return 1;
}

#endif
