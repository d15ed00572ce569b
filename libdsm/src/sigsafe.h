/*
 * sigsafe.h - async-signal-safe diagnostics: a fixed-size line built on the stack,
 * numbers formatted by hand, written to stderr with one write(2).
 *
 * Used where stdio and the logger are off limits: the SIGSEGV handler, and the service
 * thread's last words before _exit(1) (dsm_rt_die). Lines start "dsm: rank R: ".
 */
#ifndef DSM_SIGSAFE_H
#define DSM_SIGSAFE_H

#include <stddef.h>
#include <stdint.h>

struct dsm_sline {
    char   buf[512];
    size_t len; /* bytes used; appends past the end are cut */
};

/* Start a line with "dsm: rank <rank>: ". */
void dsm_sline_begin(struct dsm_sline *l, int rank);
void dsm_sline_str(struct dsm_sline *l, const char *s);
void dsm_sline_u64(struct dsm_sline *l, uint64_t v);
void dsm_sline_i64(struct dsm_sline *l, int64_t v);
/* "0x" followed by lower-case hex digits. */
void dsm_sline_hex(struct dsm_sline *l, uint64_t v);
/* Append a newline and write the line to stderr. */
void dsm_sline_emit(struct dsm_sline *l);

#endif
