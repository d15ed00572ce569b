/* dsm_log.c - see dsm_log.h. One write(2) per line so lines from several threads never interleave.
 *
 * Rate limit: each call site (its format string) may print DSM_LOG_BURST lines per
 * DSM_LOG_WINDOW_NS; past that its lines are counted, not printed, and the count is told
 * once the window is over (at that site's next line, or at dsm_log_flush()). A flood of bad
 * connections then costs a few lines a second, not hundreds of thousands, and every other
 * message still gets through. DSM_LOG=debug turns the limit off. */
#include "dsm_log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define DSM_LOG_BURST     10
#define DSM_LOG_WINDOW_NS 1000000000LL
#define DSM_LOG_SITES     64 /* call sites tracked; more share the last slot */

static char g_who[64] = "dsm";
static int g_level = DSM_LOG_WARN;

struct site {
    const char *fmt;       /* the call site's format, or NULL for a free slot */
    int64_t  window_ns;    /* start of its current window */
    unsigned printed;      /* lines printed in it */
    uint64_t suppressed;   /* lines counted instead since the last report */
};

static struct site g_sites[DSM_LOG_SITES];
static pthread_mutex_t g_sites_lock = PTHREAD_MUTEX_INITIALIZER;

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void put_line(char *line, int n)
{
    if (n > 1022)
        n = 1022;
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, (size_t)n) < 0) {
        /* nowhere left to report it */
    }
}

/* Tell how many lines of site s were held back (caller holds g_sites_lock). */
static void report_suppressed(struct site *s)
{
    char line[1024];
    int n;

    if (s->suppressed == 0)
        return;
    n = snprintf(line, sizeof(line), "%s: %llu more line%s like \"%.80s\" suppressed (at most %d a second)",
                 g_who, (unsigned long long)s->suppressed, s->suppressed == 1 ? "" : "s", s->fmt, DSM_LOG_BURST);
    put_line(line, n);
    s->suppressed = 0;
}

/* 1 if a line of call site fmt may be printed now, 0 if it is to be counted instead. */
static int admit(const char *fmt)
{
    size_t h = ((uintptr_t)fmt >> 4) % DSM_LOG_SITES;
    int64_t now = now_ns();
    struct site *s = NULL;
    int ok;

    pthread_mutex_lock(&g_sites_lock);
    for (size_t i = 0; i < DSM_LOG_SITES && s == NULL; i++) {
        struct site *c = &g_sites[(h + i) % DSM_LOG_SITES];

        if (c->fmt == fmt || c->fmt == NULL)
            s = c;
    }
    if (s == NULL)
        s = &g_sites[DSM_LOG_SITES - 1];
    if (s->fmt != fmt) { /* a new site (or one sharing the full table's last slot) */
        report_suppressed(s);
        s->fmt = fmt;
        s->window_ns = now;
        s->printed = 0;
    }
    if (now - s->window_ns >= DSM_LOG_WINDOW_NS) {
        report_suppressed(s);
        s->window_ns = now;
        s->printed = 0;
    }
    ok = s->printed < DSM_LOG_BURST;
    if (ok)
        s->printed++;
    else
        s->suppressed++;
    pthread_mutex_unlock(&g_sites_lock);
    return ok;
}

void dsm_log_flush(void)
{
    pthread_mutex_lock(&g_sites_lock);
    for (size_t i = 0; i < DSM_LOG_SITES; i++)
        if (g_sites[i].fmt != NULL)
            report_suppressed(&g_sites[i]);
    pthread_mutex_unlock(&g_sites_lock);
}

void dsm_log_init(const char *who)
{
    const char *env = getenv("DSM_LOG");

    snprintf(g_who, sizeof(g_who), "%s", who);
    if (env == NULL)
        return;
    if (!strcasecmp(env, "error"))
        g_level = DSM_LOG_ERROR;
    else if (!strcasecmp(env, "warn"))
        g_level = DSM_LOG_WARN;
    else if (!strcasecmp(env, "info"))
        g_level = DSM_LOG_INFO;
    else if (!strcasecmp(env, "debug"))
        g_level = DSM_LOG_DEBUG;
}

int dsm_log_enabled(enum dsm_log_level lvl)
{
    return (int)lvl <= g_level;
}

void dsm_log(enum dsm_log_level lvl, const char *fmt, ...)
{
    static const char *names[] = { "error", "warning", "info", "debug" };
    char line[1024];
    int n;
    va_list ap;

    if (!dsm_log_enabled(lvl) || (g_level < DSM_LOG_DEBUG && !admit(fmt)))
        return;
    n = snprintf(line, sizeof(line), "%s: %s: ", g_who, names[lvl]);
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    put_line(line, n);
}
