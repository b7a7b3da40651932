/*
 * pool.c — parallel loops for bulk operations.
 *
 * pool_run() starts min(parallelism, n) threads that take indices from a
 * shared atomic counter and joins them.  Threads are created per call
 * rather than kept in a global pool: a call costs microseconds next to
 * the network requests it runs, and per-call workers can never deadlock
 * when a bulk operation runs inside another one's worker.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include "db.h"

typedef struct pool_job {
	size_t n;
	atomic_size_t next;
	pool_fn fn;
	void *ud;
} pool_job;

static void *pool_worker(void *arg)
{
	pool_job *job = arg;
	for (;;) {
		size_t i = atomic_fetch_add(&job->next, 1);
		if (i >= job->n)
			return NULL;
		job->fn(job->ud, i);
	}
}

void pool_run(int parallelism, size_t n, pool_fn fn, void *ud)
{
	if (n == 0)
		return;
	pool_job job = { .n = n, .fn = fn, .ud = ud };
	atomic_init(&job.next, 0);
	size_t workers = parallelism > 0 ? (size_t)parallelism : 16;
	if (workers > n)
		workers = n;
	if (workers <= 1) {
		pool_worker(&job);
		return;
	}
	pthread_t *tids = calloc(workers, sizeof *tids);
	size_t started = 0;
	for (size_t w = 0; tids && w < workers; w++) {
		if (pthread_create(&tids[w], NULL, pool_worker, &job) != 0)
			break;
		started++;
	}
	if (started == 0)
		pool_worker(&job); /* no threads to be had: run here */
	for (size_t w = 0; w < started; w++)
		pthread_join(tids[w], NULL);
	free(tids);
}
