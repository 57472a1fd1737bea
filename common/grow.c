#include "grow.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

int ck_grow(void **p, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return 0;
	size_t nc = *cap ? *cap : 16;
	while (nc < need) {
		if (nc > SIZE_MAX / 2)
			return -EOVERFLOW;
		nc *= 2;
	}
	if (nc > SIZE_MAX / size)
		return -EOVERFLOW;
	void *n = realloc(*p, nc * size);
	if (!n)
		return -ENOMEM;
	*p = n;
	*cap = nc;
	return 0;
}
