/**
 * @file kp_hist.h
 * @brief A mergeable log-linear histogram of non-negative int64 values
 *        (latencies in ms), HdrHistogram-style, with a relative error of at
 *        most 1/128 (0.79 %) per bucket (docs/metrics.md, "Histogram").
 *
 * Buckets: value 0 has bucket 0. A value v >= 1 goes to bucket
 * 1 + idx(v - 1), where for u = v - 1
 *
 *     idx(u) = u                         when u < 256
 *     idx(u) = 128 * s + (u >> s)        otherwise, s = msb(u) - 7
 *
 * so values 1..256 have a bucket each and every later bucket is
 * (j * 2^s, (j + 1) * 2^s] for 128 <= j < 256: upper-inclusive, like
 * Prometheus' native histograms, and every power of two is a bucket's upper
 * bound (le="2^k" counts are exact). A bucket's width is at most 1/128 of
 * its lower bound.
 *
 * Merging adds counts bucket by bucket, so the merge of two histograms is
 * the histogram of the union of their values, exactly: same buckets, count,
 * sum, min and max, and so the same percentiles. The buckets are kept
 * sparse (only non-empty ones), sorted by index.
 *
 * A kp_hist_t is a plain value: zero-initialise it (or kp_hist_init()),
 * release it with kp_hist_clear(). Not thread-safe; any thread.
 */
#ifndef KPAY_KP_HIST_H
#define KPAY_KP_HIST_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "kpay/kp_err.h"

/** The highest bucket index (that of INT64_MAX). */
#define KP_HIST_MAX_INDEX 7296

/** One non-empty bucket. */
typedef struct kp_hist_bucket_s {
        int32_t index;
        int64_t count;
} kp_hist_bucket_t;

/** A histogram; all zero is the empty histogram. */
typedef struct kp_hist_s {
        int64_t count; /**< values recorded */
        int64_t sum;   /**< their sum (recording refuses an overflow) */
        int64_t min;   /**< smallest value; 0 when empty */
        int64_t max;   /**< largest value; 0 when empty */
        kp_hist_bucket_t *buckets; /**< kp_malloc()ed, sorted by index */
        size_t nbuckets, cap;
} kp_hist_t;

/** @brief Sets @p h to the empty histogram (without freeing anything). */
void kp_hist_init(kp_hist_t *h);

/** @brief Frees the buckets; @p h is then empty. NULL is a no-op. */
void kp_hist_clear(kp_hist_t *h);

/** @brief The bucket index of @p v (>= 0). */
int32_t kp_hist_index(int64_t v);

/** @brief The smallest value of bucket @p index. */
int64_t kp_hist_bucket_lowest(int32_t index);

/** @brief The largest value of bucket @p index (its inclusive upper bound). */
int64_t kp_hist_bucket_highest(int32_t index);

/**
 * @brief Records @p n occurrences of value @p v.
 * @returns KP_OK; KP_ERR_INVALID_ARG for v < 0 or n < 1; KP_ERR_OVERFLOW
 *          when the count or the sum would pass INT64_MAX. On error @p h is
 *          unchanged.
 */
kp_err_t kp_hist_record_n(kp_hist_t *h, int64_t v, int64_t n);

/** @brief kp_hist_record_n(h, v, 1). */
kp_err_t kp_hist_record(kp_hist_t *h, int64_t v);

/**
 * @brief Adds every value of @p src to @p dst.
 * @returns KP_OK, or KP_ERR_OVERFLOW (then @p dst is unchanged).
 */
kp_err_t kp_hist_merge(kp_hist_t *dst, const kp_hist_t *src);

/**
 * @brief The value at quantile @p q (0 < q <= 1) by the nearest-rank rule:
 *        the ceil(q * count)-th smallest value, reported as the middle of
 *        its bucket clamped to [min, max], so within 1/256 of the true value
 *        (exact below 257); q = 1 gives max.
 * @returns the value, or -1 for an empty histogram or a q out of range.
 */
int64_t kp_hist_quantile(const kp_hist_t *h, double q);

/** @brief The number of recorded values <= @p v (exact when @p v is a
 *         bucket's upper bound, such as any power of two). */
int64_t kp_hist_count_le(const kp_hist_t *h, int64_t v);

/** @brief sum / count, or 0 when empty. */
double kp_hist_mean(const kp_hist_t *h);

/** @brief 1 if @p a and @p b hold the same values (bucket for bucket). */
int kp_hist_equal(const kp_hist_t *a, const kp_hist_t *b);

/**
 * @brief The mergeable form:
 *        {"count","sum","min","max","buckets":[index,count,index,count...]}
 *        (buckets flat, ascending index).
 * @returns a new reference.
 */
json_t *kp_hist_to_json(const kp_hist_t *h);

/**
 * @brief Reads what kp_hist_to_json() wrote, strictly: every field present
 *        and consistent (indexes ascending and in range, counts > 0 adding
 *        up to count, min <= max inside the first and last buckets).
 * @param h receives the histogram (its old buckets are freed) only on
 *        success.
 * @returns KP_OK or KP_ERR_PARSE with a reason in @p errstr.
 */
kp_err_t kp_hist_from_json(const json_t *j, kp_hist_t *h, char *errstr,
                           size_t errstr_size);

/**
 * @brief The summary a reader wants: {"count","mean","min","p50","p95",
 *        "p99","p999","max"} (percentiles and min/max null when empty).
 * @returns a new reference.
 */
json_t *kp_hist_summary_json(const kp_hist_t *h);

#endif /* KPAY_KP_HIST_H */
