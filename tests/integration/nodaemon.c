/*
 * nodaemon.c - dsm_init with no reachable daemon must fail cleanly with DSM_ENODAEMON.
 *
 * Run with DSM_SOCKET pointing nowhere (e.g. DSM_SOCKET=/nonexistent DSM_RANK=0
 * DSM_NRANKS=1). The program checks the returned code itself, and that the library stays
 * usable-but-refusing afterwards (a barrier fails, an allocation returns NULL) instead of
 * crashing. Exit 0 only if all of that holds; the ctest also checks the library's message.
 */
#include <dsm/dsm.h>

#include <stdio.h>

int main(int argc, char **argv)
{
    int   rc = dsm_init(&argc, &argv);
    int   brc;
    void *p;

    if (rc != DSM_ENODAEMON) {
        fprintf(stderr, "nodaemon: dsm_init returned %d (%s), expected DSM_ENODAEMON (%d)\n", rc,
                dsm_strerror(rc), DSM_ENODAEMON);
        if (rc == 0)
            dsm_finalize();
        return 1;
    }
    printf("nodaemon: dsm_init returned DSM_ENODAEMON (\"%s\") as expected\n", dsm_strerror(rc));
    brc = dsm_barrier();
    p = dsm_coalloc(4096);
    if (brc >= 0 || p != NULL) {
        fprintf(stderr, "nodaemon: after the failed init, dsm_barrier returned %d and "
                        "dsm_coalloc %p; both should have failed\n", brc, p);
        return 1;
    }
    printf("nodaemon: later calls refused too (dsm_barrier: %s): OK\n", dsm_strerror(brc));
    return 0;
}
