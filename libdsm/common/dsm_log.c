/* dsm_log.c - see dsm_log.h. One write(2) per line so lines from several threads never interleave. */
#include "dsm_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static char g_who[64] = "dsm";
static int g_level = DSM_LOG_WARN;

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

    if (!dsm_log_enabled(lvl))
        return;
    n = snprintf(line, sizeof(line), "%s: %s: ", g_who, names[lvl]);
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, (size_t)n) < 0) {
        /* nowhere left to report it */
    }
}
