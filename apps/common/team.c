/* team.c - see team.h. */
#include "team.h"

#include <dsm/dsm.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NATIVE_LOCKS 64

struct team_shared {
    pthread_barrier_t bar;
    pthread_mutex_t   locks[NATIVE_LOCKS];
    void             *slot;       /* team_alloc's block, passed from thread 0 */
    void            **blocks;     /* every block, freed when the threads are done */
    size_t            nblocks;
};

struct member {
    struct team team;
    int (*body)(struct team *t, void *arg);
    void *arg;
    int status;
    pthread_t tid;
};

double team_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int team_barrier(struct team *t)
{
    if (t->shared == NULL)
        return dsm_barrier();
    pthread_barrier_wait(&t->shared->bar);
    return 0;
}

void *team_alloc(struct team *t, size_t bytes)
{
    void *p;

    if (t->shared == NULL)
        return dsm_coalloc(bytes);
    if (t->id == 0) {
        void **v = realloc(t->shared->blocks, (t->shared->nblocks + 1) * sizeof(*v));

        t->shared->slot = v != NULL ? calloc(1, bytes) : NULL;
        if (v != NULL)
            t->shared->blocks = v;
        if (t->shared->slot != NULL)
            t->shared->blocks[t->shared->nblocks++] = t->shared->slot;
    }
    pthread_barrier_wait(&t->shared->bar);
    p = t->shared->slot;
    pthread_barrier_wait(&t->shared->bar); /* the slot may be reused after this */
    return p;
}

int team_lock(struct team *t, uint32_t id)
{
    if (t->shared == NULL)
        return dsm_lock(id);
    return pthread_mutex_lock(&t->shared->locks[id % NATIVE_LOCKS]) == 0 ? 0 : DSM_ESYS;
}

int team_unlock(struct team *t, uint32_t id)
{
    if (t->shared == NULL)
        return dsm_unlock(id);
    return pthread_mutex_unlock(&t->shared->locks[id % NATIVE_LOCKS]) == 0 ? 0 : DSM_ESYS;
}

int team_fetch_add(struct team *t, uint64_t *word, uint64_t v, uint64_t *old)
{
    uint64_t o;

    if (t->shared == NULL)
        return dsm_atomic_fetch_add_64(word, v, old);
    o = __atomic_fetch_add(word, v, __ATOMIC_SEQ_CST);
    if (old != NULL)
        *old = o;
    return 0;
}

const char *team_model(const struct team *t)
{
    return t->shared != NULL ? "native pthreads" : dsm_consistency();
}

long team_native_arg(int *argc, char **argv)
{
    long v = 0;

    for (int i = 1; i < *argc; i++) {
        char *end;

        if (strcmp(argv[i], "--native") != 0)
            continue;
        if (i + 1 >= *argc || (v = strtol(argv[i + 1], &end, 10)) < 1 || v > 1024 || *end != '\0')
            return -1;
        memmove(&argv[i], &argv[i + 2], (size_t)(*argc - i - 1) * sizeof(char *)); /* NULL too */
        *argc -= 2;
        break;
    }
    return v;
}

int team_class_arg(int argc, char **argv, const char *names)
{
    const char *at;

    if (argc == 1)
        return 0;
    if (argc != 3 || strcmp(argv[1], "-c") != 0 || strlen(argv[2]) != 1 || argv[2][0] == '\0' ||
        (at = strchr(names, argv[2][0])) == NULL)
        return -1;
    return (int)(at - names);
}

int team_verdict(struct team *t, const int *verdict)
{
    return team_barrier(t) != 0 ? 1 : *verdict;
}

static void *member_main(void *arg)
{
    struct member *m = arg;

    m->status = m->body(&m->team, m->arg);
    if (m->status != 0) {
        /* its peers may wait in a barrier it will never reach (a dsm job fails then, named
         * by dsmrun): end the process rather than hang */
        fflush(stdout);
        exit(m->status);
    }
    return NULL;
}

static int native_main(const char *app, long n, int (*body)(struct team *t, void *arg), void *arg)
{
    struct team_shared sh = { .blocks = NULL };
    struct member *m = calloc((size_t)n, sizeof(*m));
    int status = 0;

    if (m == NULL || pthread_barrier_init(&sh.bar, NULL, (unsigned)n) != 0) {
        fprintf(stderr, "%s: native run: out of memory\n", app);
        free(m);
        return 1;
    }
    for (int k = 0; k < NATIVE_LOCKS; k++)
        pthread_mutex_init(&sh.locks[k], NULL);
    for (long i = 0; i < n; i++) {
        m[i] = (struct member){ .team = { .id = (int)i, .n = (int)n, .shared = &sh }, .body = body, .arg = arg };
        if (i > 0 && pthread_create(&m[i].tid, NULL, member_main, &m[i]) != 0) {
            fprintf(stderr, "%s: pthread_create failed\n", app);
            exit(1); /* the started threads wait in a barrier for ever */
        }
    }
    member_main(&m[0]);
    for (long i = 1; i < n; i++)
        pthread_join(m[i].tid, NULL);
    for (long i = 0; i < n; i++)
        if (m[i].status > status)
            status = m[i].status;
    pthread_barrier_destroy(&sh.bar);
    for (size_t i = 0; i < sh.nblocks; i++)
        free(sh.blocks[i]);
    free(sh.blocks);
    free(m);
    return status;
}

int team_main(int *argc, char ***argv, const char *app, long native, int (*body)(struct team *t, void *arg),
              void *arg)
{
    struct team t = { 0 };
    int rc, status;

    if (native > 0)
        return native_main(app, native, body, arg);
    if ((rc = dsm_init(argc, argv)) != 0) {
        fprintf(stderr, "%s: dsm_init: %s\n", app, dsm_strerror(rc));
        return 1;
    }
    t.id = dsm_rank();
    t.n = dsm_nranks();
    status = body(&t, arg);
    if ((rc = dsm_finalize()) != 0) {
        fprintf(stderr, "%s: dsm_finalize: %s\n", app, dsm_strerror(rc));
        status = 1;
    }
    return status;
}
