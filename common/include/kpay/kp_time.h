/**
 * @file kp_time.h
 * @brief The clocks of kpay: monotonic time for intervals and deadlines,
 *        wall-clock time for event stamps, and a sleep that survives
 *        signals.
 *
 * Every module reads the time through these, so that there is one place to
 * change how kpay reads clocks (and no copy of clock_gettime() boilerplate
 * in each file). All are @locality any thread.
 */
#ifndef KPAY_KP_TIME_H
#define KPAY_KP_TIME_H

#include <stdint.h>

#include "kpay/kp_err.h"

/** @brief CLOCK_MONOTONIC in milliseconds: for intervals and deadlines. */
int64_t kp_mono_ms(void);

/** @brief CLOCK_MONOTONIC in nanoseconds: for rates and fine latencies. */
int64_t kp_mono_ns(void);

/** @brief CLOCK_REALTIME in milliseconds since the epoch: event stamps. */
int64_t kp_wall_ms(void);

/**
 * @brief Sleeps @p ms milliseconds (nothing when <= 0). A signal ends the
 *        sleep early, so that a SIGTERM is noticed at once.
 */
void kp_sleep_ms(int64_t ms);

/**
 * A retry's pacing: waits that double from a first to a maximum wait
 * (exponential, capped), and a deadline after which the caller gives up
 * (recovers some other way, or fails so that a supervisor restarts it).
 * Every retry loop of the runtime uses one (docs/runtime.md, "Retries").
 * A plain value, on the caller's stack; one thread.
 */
typedef struct kp_backoff_s {
        int64_t wait_ms;     /**< the next wait */
        int64_t max_ms;      /**< the cap of a wait */
        int64_t start_ms;    /**< when the first attempt began */
        int64_t deadline_ms; /**< give up after this (monotonic); -1: never */
        int attempt;         /**< failed attempts so far */
} kp_backoff_t;

/**
 * @brief Starts pacing: the first wait is @p first_ms, each next one twice
 *        the last, at most @p max_ms; the deadline is @p deadline_after_ms
 *        from now (< 0: none).
 */
void kp_backoff_init(kp_backoff_t *b, int64_t first_ms, int64_t max_ms,
                     int64_t deadline_after_ms);

/**
 * @brief Counts a failed attempt and waits before the next one (never past
 *        the deadline), in slices of at most 100 ms so that @p keep_going
 *        (NULL: always) can end the wait early (a stopping daemon).
 * @returns KP_OK to try again, KP_ERR_TIMED_OUT when the deadline has
 *          passed (give up), KP_ERR_STATE when keep_going() returned 0.
 */
kp_err_t kp_backoff_wait(kp_backoff_t *b, int (*keep_going)(void));

/**
 * @brief 1 when the attempt just counted is worth a log line: the first
 *        three, then the 8th, 16th, 32nd... (the rest are folded).
 */
int kp_backoff_log_due(const kp_backoff_t *b);

/** @brief Milliseconds since the first attempt began. */
int64_t kp_backoff_elapsed_ms(const kp_backoff_t *b);

#endif /* KPAY_KP_TIME_H */
