/*
 * parallel.h - dsm_parallel's team of threads, as the rest of libdsm sees it.
 *
 * dsm_parallel(n, fn, arg) runs fn on n threads of the rank: the caller is thread 0, the
 * others are started for the call, bound by the rank's placement plan (affinity.h), and
 * joined before it returns. The caller is bound for the call's duration and gets its own
 * binding back afterwards. One team per rank at a time: a nested or concurrent call is
 * refused. dsm_thread_barrier() is a barrier over every thread of every rank: the rank's
 * threads gather locally, the last to arrive takes the rank through dsm_barrier(), then
 * all are released.
 */
#ifndef DSM_PARALLEL_H
#define DSM_PARALLEL_H

/* Most threads one dsm_parallel call may run (channels: DSM_MAX_THREAD_CHANNELS). */
#define DSM_PARALLEL_MAX_THREADS 1024

/* Threads of the calling thread's dsm_parallel team; 0 outside one. */
int dsm_parallel_team_size(void);

#endif
