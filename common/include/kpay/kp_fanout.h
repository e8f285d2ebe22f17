/**
 * @file kp_fanout.h
 * @brief Asks several HTTP endpoints at once (kp_http_request() on a
 *        thread each) and waits for them all or for a deadline, whichever
 *        comes first: a slow or dead endpoint costs at most the deadline,
 *        and the answers that came in are there to use. kpay-web fans its
 *        queries out to the processor instances with it.
 */
#ifndef KPAY_KP_FANOUT_H
#define KPAY_KP_FANOUT_H

#include <stddef.h>

/** One request and, after kp_fanout_run(), its answer. */
typedef struct kp_fanout_req_s {
        const char *method;   /**< "GET" when NULL */
        const char *hostport; /**< "127.0.0.1:8085" */
        const char *path;     /**< "/v1/stores/balances?limit=10" */
        const char *body;     /**< or NULL */
        /* The answer: */
        int status; /**< HTTP status, or -1: no answer in time */
        char *resp; /**< body (kp_malloc()ed, NUL-terminated) or NULL */
        size_t resp_len;
        int timed_out;    /**< 1 when the deadline passed first */
        char errstr[160]; /**< why there is no answer */
} kp_fanout_req_t;

/**
 * @brief Sends every request of @p reqs in parallel and waits until all
 *        have answered or @p timeout_ms has passed. A request still
 *        running at the deadline is abandoned (its thread ends on its own,
 *        within the same bound, and frees what it holds) and reported with
 *        status -1 and timed_out 1, as is one whose own socket time-out
 *        ended it no sooner than the deadline (on a busy machine that can
 *        happen before this call wakes). Strings of @p reqs are copied:
 *        they may be freed once this returns.
 * @param headers extra request header lines ("Name: value\r\n"...) for
 *        every request, or NULL.
 * @returns the number of requests that got an answer (any status).
 * @locality any thread
 */
size_t kp_fanout_run(kp_fanout_req_t *reqs, size_t cnt, const char *headers,
                     int timeout_ms);

/** @brief Frees the answers held by @p reqs (not @p reqs itself). */
void kp_fanout_clear(kp_fanout_req_t *reqs, size_t cnt);

#endif /* KPAY_KP_FANOUT_H */
