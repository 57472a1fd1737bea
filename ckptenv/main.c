/* Placeholder until the command line lands. */
#include <stdio.h>
int main(void)
{
	fputs("ckptenv: not built yet\n", stderr);
	return 1;
}
