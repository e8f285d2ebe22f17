/**
 * @file kp_bucket.h
 * @brief The token bucket of the runtime's rate limit
 *        (kp_proc_rate_limit_input()), as pure functions on a plain value.
 *
 * The bucket holds at most KP_BUCKET_BURST_S seconds of the rate (at least
 * one token) and fills at the rate. The burst must outlast the time a
 * paused input takes to deliver records again after its resume (a fetch
 * round trip, which under read_committed can wait for the next committed
 * transaction on another input of the same fetch, ~100 ms): tokens that
 * overflow the bucket meanwhile are lost and the rate falls short of the
 * limit (a tenth of a second gave half the rate in the control plane's
 * test). Taking a token from an empty bucket puts
 * it into debt (a record already fetched is processed), and the input
 * stays paused until the debt is repaid, so the rate holds over any window
 * longer than the burst.
 */
#ifndef KPAY_KP_BUCKET_H
#define KPAY_KP_BUCKET_H

#include <stdint.h>

/** The burst, in seconds of the rate. */
#define KP_BUCKET_BURST_S 0.25

/** A token bucket. Zero-initialised: full at the first refill. */
typedef struct kp_bucket_s {
        double tokens;   /**< may be negative (debt) */
        int64_t last_ms; /**< when it was last filled; 0: never */
} kp_bucket_t;

/**
 * @brief Adds @p rate tokens per second since the last refill, up to the
 *        burst (max(rate x KP_BUCKET_BURST_S, 1)); a bucket never filled starts
 * full.
 * @locality any thread (a pure function of @p b)
 */
void kp_bucket_refill(kp_bucket_t *b, double rate, int64_t now_ms);

/** @brief Refills, then takes one token (possibly into debt). */
void kp_bucket_take(kp_bucket_t *b, double rate, int64_t now_ms);

/** @brief 1 if less than one token is left (the input must wait). */
int kp_bucket_empty(const kp_bucket_t *b);

/**
 * @brief Milliseconds until one whole token is there at @p rate (0 when
 *        there is one; at least 1 otherwise).
 */
int64_t kp_bucket_wait_ms(const kp_bucket_t *b, double rate);

/** @brief Forgets the bucket (no limit any more): the next refill fills it. */
void kp_bucket_reset(kp_bucket_t *b);

#endif /* KPAY_KP_BUCKET_H */
