/*
 * range_taken.c - dsm_init fails cleanly when the global space's range is already mapped.
 *
 * Maps one page at the start of the global space (DSM_BASE in the environment, else the
 * default 0x500000000000) before dsm_init, which must return DSM_EBUSY (and say which
 * range) instead of mapping over it; the page keeps its contents.
 */
#define _GNU_SOURCE
#include <dsm/dsm.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

int main(int argc, char **argv)
{
    const char *env = getenv("DSM_BASE");
    unsigned long base = env ? strtoul(env, NULL, 0) : 0x500000000000ul;
    char *p = mmap((void *)base, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    int rc;

    if (p != (char *)base) {
        fprintf(stderr, "range_taken: could not map the test page at 0x%lx\n", base);
        return 2;
    }
    strcpy(p, "mine");
    rc = dsm_init(&argc, &argv);
    printf("range_taken: dsm_init returned %d (%s)\n", rc, dsm_strerror(rc));
    if (rc == 0) {
        dsm_finalize();
        return 1;
    }
    return rc == DSM_EBUSY && strcmp(p, "mine") == 0 ? 0 : 1;
}
