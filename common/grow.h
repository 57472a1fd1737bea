/* Growing arrays: one place for the "double the capacity" loop. */
#ifndef CK_GROW_H
#define CK_GROW_H

#include <stddef.h>

/** Make room for at least @need elements of @size bytes in the array *@p whose capacity is
 *  *@cap, doubling from 16. On failure (-ENOMEM, -EOVERFLOW) *@p and *@cap are unchanged. */
int ck_grow(void **p, size_t *cap, size_t need, size_t size);

#define CK_GROW(ptr, cap, need) ck_grow((void **)&(ptr), &(cap), (need), sizeof(*(ptr)))

#endif
