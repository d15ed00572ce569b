/*
 * hosts_prog.c - a dsm program for the multi-host tests (tests/hosts/hosts_test.py).
 *
 *   hosts_prog show ARGS...   each rank prints one line: its rank, node, network namespace,
 *                             the placement variables, and every argument hex-encoded (so
 *                             the test can compare them byte for byte); then a barrier and
 *                             a write/read of a shared page by every rank; exit 0
 *   hosts_prog loop ...       prints "rank R started", then shared-page traffic and
 *                             barriers until the runtime stops it
 *
 * Exit status 3: this program found something wrong itself.
 */
#include <dsm/dsm.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BAD 3

static const char *env_or(const char *name)
{
    const char *v = getenv(name);
    return v ? v : "-";
}

/* One line describing this rank and its arguments. */
static void show(int argc, char **argv)
{
    char ns[64] = "?";
    ssize_t n = readlink("/proc/self/ns/net", ns, sizeof(ns) - 1);

    ns[n > 0 ? n : 1] = '\0';
    printf("rank %d node %s netns %s local_rank %s local_ranks %s local_node %s local_nodes %s args",
           dsm_rank(), env_or("DSM_NODE"), ns, env_or("DSM_LOCAL_RANK"), env_or("DSM_LOCAL_RANKS"),
           env_or("DSM_LOCAL_NODE"), env_or("DSM_LOCAL_NODES"));
    for (int i = 2; i < argc; i++) {
        putchar(' ');
        for (const unsigned char *p = (const unsigned char *)argv[i]; *p; p++)
            printf("%02x", *p);
        if (argv[i][0] == '\0')
            printf("''");
    }
    putchar('\n');
    fflush(stdout);
}

int main(int argc, char **argv)
{
    int loop = argc > 1 && strcmp(argv[1], "loop") == 0;
    volatile int *page;

    if (argc < 2 || (!loop && strcmp(argv[1], "show") != 0)) {
        fprintf(stderr, "usage: hosts_prog show|loop [ARGS...]\n");
        return BAD;
    }
    if (dsm_init(&argc, &argv) != 0)
        return BAD;
    page = dsm_coalloc(4096);
    if (page == NULL)
        return BAD;
    if (loop) {
        printf("rank %d started\n", dsm_rank());
        fflush(stdout);
        for (unsigned i = 0;; i++) {
            page[dsm_rank()] = (int)i;
            dsm_barrier();
        }
    }
    show(argc, argv);
    page[dsm_rank()] = dsm_rank() + 1;
    dsm_barrier();
    for (int r = 0; r < dsm_nranks(); r++)
        if (page[r] != r + 1) {
            fprintf(stderr, "hosts_prog rank %d: slot %d holds %d\n", dsm_rank(), r, page[r]);
            return BAD;
        }
    dsm_barrier();
    dsm_finalize();
    return 0;
}
