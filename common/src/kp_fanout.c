/* kp_fanout.c: parallel HTTP requests with one deadline for them all. */
#include "kpay/kp_fanout.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kpay/kp_http.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_time.h"

typedef struct fanout_s fanout_t;

/* One request as its thread sees it: copies of the caller's strings and
 * the answer, handed over under the run's lock. */
typedef struct fanout_job_s {
        fanout_t *run;
        char *method, *hostport, *path, *body, *headers;
        int timeout_ms;
        int done;
        int late; /* failed at or after the run's deadline */
        int status;
        char *resp;
        size_t resp_len;
        char errstr[160];
} fanout_job_t;

/* Shared by the caller and the threads; freed by whoever leaves last. */
struct fanout_s {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        size_t pending; /* jobs still running */
        size_t refs;    /* running threads + the caller */
        size_t cnt;
        int64_t deadline_ms; /* kp_mono_ms() */
        fanout_job_t *jobs;
};

static void run_free(fanout_t *run) {
        for (size_t i = 0; i < run->cnt; i++) {
                fanout_job_t *j = &run->jobs[i];
                kp_free(j->method);
                kp_free(j->hostport);
                kp_free(j->path);
                kp_free(j->body);
                kp_free(j->headers);
                kp_free(j->resp);
        }
        kp_free(run->jobs);
        pthread_cond_destroy(&run->cond);
        pthread_mutex_destroy(&run->lock);
        kp_free(run);
}

/* Drops one reference (the run's lock held; released here). */
static void run_unref_locked(fanout_t *run) {
        size_t left = --run->refs;
        pthread_mutex_unlock(&run->lock);
        if (!left)
                run_free(run);
}

static void *job_main(void *arg) {
        fanout_job_t *j  = arg;
        char errstr[160] = "";
        char *resp       = NULL;
        size_t len       = 0;
        int status       = kp_http_request(j->method, j->hostport, j->path,
                                           j->headers, j->body, j->timeout_ms, &resp,
                                           &len, errstr, sizeof(errstr));
        fanout_t *run    = j->run;
        /* A request whose own socket time-out fired no sooner than the
         * deadline had no answer within it: the caller's wake-up at the
         * deadline may simply have come later (a busy machine). */
        int late = status < 0 && kp_mono_ms() >= run->deadline_ms;
        pthread_mutex_lock(&run->lock);
        j->late     = late;
        j->status   = status;
        j->resp     = resp;
        j->resp_len = len;
        snprintf(j->errstr, sizeof(j->errstr), "%s", errstr);
        j->done = 1;
        run->pending--;
        pthread_cond_broadcast(&run->cond);
        run_unref_locked(run);
        return NULL;
}

static char *dup_or_null(const char *s) {
        return s ? kp_strdup(s) : NULL;
}

size_t kp_fanout_run(kp_fanout_req_t *reqs, size_t cnt, const char *headers,
                     int timeout_ms) {
        if (timeout_ms < 1)
                timeout_ms = 1;
        fanout_t *run = kp_calloc(1, sizeof(*run));
        pthread_mutex_init(&run->lock, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&run->cond, &ca);
        pthread_condattr_destroy(&ca);
        run->cnt  = cnt;
        run->jobs = kp_calloc(cnt ? cnt : 1, sizeof(*run->jobs));
        run->refs = 1;
        /* Taken before any request starts, so that every socket time-out
         * (the same length, started later) ends after it. */
        struct timespec dl;
        clock_gettime(CLOCK_MONOTONIC, &dl);
        run->deadline_ms =
            (int64_t)dl.tv_sec * 1000 + dl.tv_nsec / 1000000 + timeout_ms;
        dl.tv_sec += timeout_ms / 1000;
        dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
                dl.tv_sec++;
                dl.tv_nsec -= 1000000000L;
        }
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_mutex_lock(&run->lock);
        for (size_t i = 0; i < cnt; i++) {
                fanout_job_t *j = &run->jobs[i];
                j->run          = run;
                j->method = kp_strdup(reqs[i].method ? reqs[i].method : "GET");
                j->hostport   = dup_or_null(reqs[i].hostport);
                j->path       = dup_or_null(reqs[i].path);
                j->body       = dup_or_null(reqs[i].body);
                j->headers    = dup_or_null(headers);
                j->timeout_ms = timeout_ms;
                j->status     = -1;
                pthread_t th;
                int r = j->hostport && j->path
                            ? pthread_create(&th, &attr, job_main, j)
                            : EINVAL;
                if (r) {
                        j->done = 1;
                        snprintf(
                            j->errstr, sizeof(j->errstr), "cannot ask %s: %s",
                            j->hostport ? j->hostport : "(none)", strerror(r));
                        continue;
                }
                run->pending++;
                run->refs++;
        }
        pthread_attr_destroy(&attr);
        while (run->pending > 0 &&
               pthread_cond_timedwait(&run->cond, &run->lock, &dl) != ETIMEDOUT)
                ;
        size_t answered = 0;
        for (size_t i = 0; i < cnt; i++) {
                fanout_job_t *j    = &run->jobs[i];
                kp_fanout_req_t *q = &reqs[i];
                q->resp            = NULL;
                q->resp_len        = 0;
                q->timed_out       = !j->done || j->late;
                if (q->timed_out) {
                        q->status = -1;
                        snprintf(q->errstr, sizeof(q->errstr),
                                 "%s: no answer within %d ms", j->hostport,
                                 timeout_ms);
                        continue;
                }
                q->status = j->status;
                snprintf(q->errstr, sizeof(q->errstr), "%s", j->errstr);
                q->resp     = j->resp;
                q->resp_len = j->resp_len;
                j->resp     = NULL;
                if (j->status >= 0)
                        answered++;
        }
        run_unref_locked(run);
        return answered;
}

void kp_fanout_clear(kp_fanout_req_t *reqs, size_t cnt) {
        for (size_t i = 0; i < cnt; i++) {
                kp_free(reqs[i].resp);
                reqs[i].resp     = NULL;
                reqs[i].resp_len = 0;
        }
}
