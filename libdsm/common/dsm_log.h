/*
 * dsm_log.h - one-line diagnostics on stderr, shared by libdsm and dsmd.
 *
 * Every line starts with the process's identity ("dsmd[node 2]", "dsm[rank 5]") so output
 * merged by dsmrun stays readable. The level comes from DSM_LOG (error, warn, info, debug;
 * default warn). Not async-signal-safe: the fault handler writes its few messages itself.
 * Each call site prints at most 10 lines a second; the rest are counted and the count told
 * (dsm_log.c), except with DSM_LOG=debug.
 */
#ifndef DSM_LOG_H
#define DSM_LOG_H

enum dsm_log_level { DSM_LOG_ERROR = 0, DSM_LOG_WARN, DSM_LOG_INFO, DSM_LOG_DEBUG };

/* Set the line prefix (copied) and read DSM_LOG. Call once at start-up. */
void dsm_log_init(const char *who);
int  dsm_log_enabled(enum dsm_log_level lvl);
/* Tell the counts of lines suppressed by the rate limit that were not told yet. */
void dsm_log_flush(void);
void dsm_log(enum dsm_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define DSM_ERR(...)   dsm_log(DSM_LOG_ERROR, __VA_ARGS__)
#define DSM_WARN(...)  dsm_log(DSM_LOG_WARN, __VA_ARGS__)
#define DSM_INFO(...)  dsm_log(DSM_LOG_INFO, __VA_ARGS__)
#define DSM_DEBUG(...) do { if (dsm_log_enabled(DSM_LOG_DEBUG)) dsm_log(DSM_LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
