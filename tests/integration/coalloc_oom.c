/*
 * coalloc_oom.c - an allocation larger than the global space fails cleanly; the job goes on.
 *
 * Every rank asks dsm_coalloc for sizes no global space can hold (64 TiB, and SIZE_MAX,
 * which overflows any page rounding) and dsm_malloc for 64 TiB: each must return NULL
 * (the library prints why) without crashing or leaving the ranks out of step. Then a
 * normal 1 MiB collective allocation must work: every rank writes its stripe of words,
 * a barrier, every rank checks every word. Exit 1 on any deviation.
 */
#include <dsm/dsm.h>

#include <stdint.h>
#include <stdio.h>

#define HUGE_SIZE ((size_t)1 << 46)
#define NORMAL    ((size_t)1 << 20)

/* Value of word i (written by rank i % nranks). */
static uint64_t word(size_t i) { return 0x5eed0000ULL + i * 2654435761ULL; }

/* The oversized requests; returns how many wrongly succeeded. */
static int oversized(void)
{
    int   bad = 0;
    void *p;

    p = dsm_coalloc(HUGE_SIZE);
    bad += p != NULL;
    p = dsm_coalloc(SIZE_MAX);
    bad += p != NULL;
    p = dsm_malloc(HUGE_SIZE);
    bad += p != NULL;
    if (bad)
        fprintf(stderr, "coalloc_oom: rank %d: %d oversized allocations returned memory\n",
                dsm_rank(), bad);
    return bad;
}

/* The normal allocation, written in stripes and checked by everyone; wrong word count. */
static long normal_use(void)
{
    uint64_t *a = dsm_coalloc(NORMAL);
    size_t    n = NORMAL / sizeof(uint64_t);
    long      wrong = 0;
    int       rc;

    if (a == NULL) {
        fprintf(stderr, "coalloc_oom: rank %d: the normal allocation failed\n", dsm_rank());
        return 1;
    }
    for (size_t i = (size_t)dsm_rank(); i < n; i += (size_t)dsm_nranks())
        a[i] = word(i);
    rc = dsm_barrier();
    if (rc != 0) {
        fprintf(stderr, "coalloc_oom: rank %d: dsm_barrier: %s\n", dsm_rank(), dsm_strerror(rc));
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        if (a[i] != word(i) && wrong++ == 0)
            fprintf(stderr, "coalloc_oom: rank %d: word %zu is %#lx, expected %#lx\n", dsm_rank(),
                    i, (unsigned long)a[i], (unsigned long)word(i));
    return wrong;
}

int main(int argc, char **argv)
{
    int  rc = dsm_init(&argc, &argv), bad;
    long wrong;

    if (rc != 0) {
        fprintf(stderr, "coalloc_oom: dsm_init: %s\n", dsm_strerror(rc));
        return 1;
    }
    bad = oversized();
    wrong = normal_use();
    rc = dsm_barrier();
    if (rc != 0)
        fprintf(stderr, "coalloc_oom: rank %d: dsm_barrier: %s\n", dsm_rank(), dsm_strerror(rc));
    printf("coalloc_oom: rank %d: oversized requests refused: %s; 1 MiB allocation: %ld wrong "
           "words: %s\n", dsm_rank(), bad ? "NO" : "yes", wrong,
           bad || wrong || rc ? "FAILED" : "OK");
    fflush(stdout);
    if (dsm_finalize() != 0)
        rc = 1;
    return bad || wrong || rc ? 1 : 0;
}
