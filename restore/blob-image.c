/* The restorer blob's bytes (built by restore/CMakeLists.txt from blob/restorer.c), embedded
 * into the library. restore_process() copies them into the landing zone and enters at offset 0. */
#include "restore/restore-internal.h"

__asm__(".section .rodata.ckr_blob,\"a\",@progbits\n"
	".balign 64\n"
	".globl ckr_blob_code\n"
	".hidden ckr_blob_code\n"
	"ckr_blob_code:\n"
	".incbin \"" CKR_BLOB_BIN "\"\n"
	".globl ckr_blob_code_end\n"
	".hidden ckr_blob_code_end\n"
	"ckr_blob_code_end:\n"
	".previous\n");
