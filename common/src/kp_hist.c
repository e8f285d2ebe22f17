/* kp_hist.c: the mergeable log-linear histogram (kp_hist.h). */
#include "kpay/kp_hist.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kpay/kp_json.h"
#include "kpay/kp_mem.h"

/* Values 1..256 have a bucket each; above, 128 buckets per power of two. */
#define KP__HIST_EXACT 256
#define KP__HIST_HALF  128

void kp_hist_init(kp_hist_t *h) {
        memset(h, 0, sizeof(*h));
}

void kp_hist_clear(kp_hist_t *h) {
        if (!h)
                return;
        kp_free(h->buckets);
        kp_hist_init(h);
}

static int kp__msb(uint64_t u) {
        return 63 - __builtin_clzll(u);
}

int32_t kp_hist_index(int64_t v) {
        if (v <= 0)
                return 0;
        uint64_t u = (uint64_t)v - 1;
        if (u < KP__HIST_EXACT)
                return (int32_t)u + 1;
        int s = kp__msb(u) - 7;
        return (int32_t)(KP__HIST_HALF * s + (int)(u >> s)) + 1;
}

/* The range of u = v - 1 in bucket index (>= 1): [lo, hi], as uint64. */
static void kp__bucket_range(int32_t index, uint64_t *lo, uint64_t *hi) {
        uint64_t k = (uint64_t)index - 1;
        if (k < KP__HIST_EXACT) {
                *lo = *hi = k;
                return;
        }
        uint64_t s = k / KP__HIST_HALF - 1;
        uint64_t j = k - KP__HIST_HALF * s;
        *lo        = j << s;
        *hi        = ((j + 1) << s) - 1;
}

int64_t kp_hist_bucket_lowest(int32_t index) {
        uint64_t lo, hi;
        if (index <= 0)
                return 0;
        kp__bucket_range(index, &lo, &hi);
        return (int64_t)(lo + 1);
}

int64_t kp_hist_bucket_highest(int32_t index) {
        uint64_t lo, hi;
        if (index <= 0)
                return 0;
        kp__bucket_range(index, &lo, &hi);
        /* The last bucket's u ends at 2^63 - 1, i.e. v would be 2^63. */
        return hi >= (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)(hi + 1);
}

/* The position of @p index in h->buckets, or where it would go. */
static size_t kp__find(const kp_hist_t *h, int32_t index, int *found) {
        size_t lo = 0, hi = h->nbuckets;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (h->buckets[mid].index < index)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        *found = lo < h->nbuckets && h->buckets[lo].index == index;
        return lo;
}

static void kp__reserve(kp_hist_t *h, size_t n) {
        if (n <= h->cap)
                return;
        size_t cap = h->cap ? h->cap : 8;
        while (cap < n)
                cap *= 2;
        h->buckets = kp_realloc(h->buckets, cap * sizeof(*h->buckets));
        h->cap     = cap;
}

kp_err_t kp_hist_record_n(kp_hist_t *h, int64_t v, int64_t n) {
        int64_t count, sum, add;
        int found;
        if (v < 0 || n < 1)
                return KP_ERR_INVALID_ARG;
        if (__builtin_mul_overflow(v, n, &add) ||
            __builtin_add_overflow(h->sum, add, &sum) ||
            __builtin_add_overflow(h->count, n, &count))
                return KP_ERR_OVERFLOW;
        int32_t index = kp_hist_index(v);
        size_t at     = kp__find(h, index, &found);
        if (found) {
                /* Cannot overflow: the bucket's count is <= h->count. */
                h->buckets[at].count += n;
        } else {
                kp__reserve(h, h->nbuckets + 1);
                memmove(&h->buckets[at + 1], &h->buckets[at],
                        (h->nbuckets - at) * sizeof(*h->buckets));
                h->buckets[at].index = index;
                h->buckets[at].count = n;
                h->nbuckets++;
        }
        if (h->count == 0 || v < h->min)
                h->min = v;
        if (h->count == 0 || v > h->max)
                h->max = v;
        h->count = count;
        h->sum   = sum;
        return KP_OK;
}

kp_err_t kp_hist_record(kp_hist_t *h, int64_t v) {
        return kp_hist_record_n(h, v, 1);
}

kp_err_t kp_hist_merge(kp_hist_t *dst, const kp_hist_t *src) {
        int64_t count, sum;
        if (src->count == 0)
                return KP_OK;
        if (__builtin_add_overflow(dst->count, src->count, &count) ||
            __builtin_add_overflow(dst->sum, src->sum, &sum))
                return KP_ERR_OVERFLOW;
        kp_hist_bucket_t *out =
            kp_malloc((dst->nbuckets + src->nbuckets) * sizeof(*out));
        size_t i = 0, j = 0, n = 0;
        while (i < dst->nbuckets || j < src->nbuckets) {
                if (j >= src->nbuckets ||
                    (i < dst->nbuckets &&
                     dst->buckets[i].index < src->buckets[j].index)) {
                        out[n++] = dst->buckets[i++];
                } else if (i >= dst->nbuckets ||
                           src->buckets[j].index < dst->buckets[i].index) {
                        out[n++] = src->buckets[j++];
                } else {
                        out[n] = dst->buckets[i++];
                        out[n].count += src->buckets[j++].count;
                        n++;
                }
        }
        if (dst->count == 0 || src->min < dst->min)
                dst->min = src->min;
        if (dst->count == 0 || src->max > dst->max)
                dst->max = src->max;
        kp_free(dst->buckets);
        dst->buckets  = out;
        dst->nbuckets = n;
        dst->cap      = dst->nbuckets ? n : 0;
        dst->count    = count;
        dst->sum      = sum;
        return KP_OK;
}

int64_t kp_hist_quantile(const kp_hist_t *h, double q) {
        if (h->count == 0 || !(q > 0.0 && q <= 1.0))
                return -1;
        if (q == 1.0)
                return h->max;
        /* The rank, 1-based; the product is rounded up with a little slack
         * for 0.99 * 100 not being exactly 99 in binary. */
        double r     = ceil(q * (double)h->count - 1e-9);
        int64_t rank = r < 1.0 ? 1 : (int64_t)r;
        if (rank > h->count)
                rank = h->count;
        int64_t seen = 0;
        for (size_t i = 0; i < h->nbuckets; i++) {
                seen += h->buckets[i].count;
                if (seen < rank)
                        continue;
                int64_t lo  = kp_hist_bucket_lowest(h->buckets[i].index);
                int64_t hi  = kp_hist_bucket_highest(h->buckets[i].index);
                int64_t mid = lo + (hi - lo) / 2;
                if (mid < h->min)
                        mid = h->min;
                if (mid > h->max)
                        mid = h->max;
                return mid;
        }
        return h->max;
}

int64_t kp_hist_count_le(const kp_hist_t *h, int64_t v) {
        int64_t n = 0;
        for (size_t i = 0; i < h->nbuckets; i++) {
                if (kp_hist_bucket_highest(h->buckets[i].index) > v)
                        break;
                n += h->buckets[i].count;
        }
        return n;
}

double kp_hist_mean(const kp_hist_t *h) {
        return h->count ? (double)h->sum / (double)h->count : 0.0;
}

int kp_hist_equal(const kp_hist_t *a, const kp_hist_t *b) {
        if (a->count != b->count || a->sum != b->sum || a->min != b->min ||
            a->max != b->max || a->nbuckets != b->nbuckets)
                return 0;
        for (size_t i = 0; i < a->nbuckets; i++)
                if (a->buckets[i].index != b->buckets[i].index ||
                    a->buckets[i].count != b->buckets[i].count)
                        return 0;
        return 1;
}

json_t *kp_hist_to_json(const kp_hist_t *h) {
        json_t *o = json_object(), *b = json_array();
        if (!o || !b)
                kp_json_dump(NULL); /* aborts: out of memory */
        kp_json_set(o, "count", json_integer(h->count));
        kp_json_set(o, "sum", json_integer(h->sum));
        kp_json_set(o, "min", json_integer(h->min));
        kp_json_set(o, "max", json_integer(h->max));
        for (size_t i = 0; i < h->nbuckets; i++) {
                kp_json_append(b, json_integer(h->buckets[i].index));
                kp_json_append(b, json_integer(h->buckets[i].count));
        }
        kp_json_set(o, "buckets", b);
        return o;
}

static int kp__int(const json_t *o, const char *k, int64_t *v) {
        const json_t *x = json_object_get(o, k);
        if (!json_is_integer(x))
                return 0;
        *v = (int64_t)json_integer_value(x);
        return 1;
}

kp_err_t kp_hist_from_json(const json_t *j, kp_hist_t *h, char *errstr,
                           size_t errstr_size) {
        kp_hist_t n;
        int64_t total = 0;
        const json_t *b;
        if (!json_is_object(j))
                return kp_errstr_set(KP_ERR_PARSE, errstr, errstr_size,
                                     "histogram: not an object");
        kp_hist_init(&n);
        if (!kp__int(j, "count", &n.count) || !kp__int(j, "sum", &n.sum) ||
            !kp__int(j, "min", &n.min) || !kp__int(j, "max", &n.max))
                return kp_errstr_set(
                    KP_ERR_PARSE, errstr, errstr_size,
                    "histogram: count, sum, min and max must be "
                    "integers");
        b = json_object_get(j, "buckets");
        if (!json_is_array(b) || json_array_size(b) % 2)
                return kp_errstr_set(KP_ERR_PARSE, errstr, errstr_size,
                                     "histogram: buckets must be an array of "
                                     "index, count pairs");
        if (n.count < 0 || n.sum < 0 || n.min < 0 || n.min > n.max)
                return kp_errstr_set(
                    KP_ERR_PARSE, errstr, errstr_size,
                    "histogram: negative count/sum or min > max");
        n.nbuckets = json_array_size(b) / 2;
        n.cap      = n.nbuckets;
        n.buckets  = n.cap ? kp_malloc(n.cap * sizeof(*n.buckets)) : NULL;
        for (size_t i = 0; i < n.nbuckets; i++) {
                const json_t *ix = json_array_get(b, 2 * i);
                const json_t *cx = json_array_get(b, 2 * i + 1);
                if (!json_is_integer(ix) || !json_is_integer(cx))
                        goto bad;
                json_int_t idx = json_integer_value(ix);
                json_int_t cnt = json_integer_value(cx);
                if (idx < 0 || idx > KP_HIST_MAX_INDEX || cnt < 1 ||
                    (i > 0 && idx <= n.buckets[i - 1].index) ||
                    __builtin_add_overflow(total, (int64_t)cnt, &total))
                        goto bad;
                n.buckets[i].index = (int32_t)idx;
                n.buckets[i].count = (int64_t)cnt;
        }
        if (total != n.count)
                goto bad;
        if (n.count == 0
                ? (n.min || n.max || n.sum)
                : (kp_hist_index(n.min) != n.buckets[0].index ||
                   kp_hist_index(n.max) != n.buckets[n.nbuckets - 1].index))
                goto bad;
        kp_hist_clear(h);
        *h = n;
        return KP_OK;
bad:
        kp_free(n.buckets);
        return kp_errstr_set(KP_ERR_PARSE, errstr, errstr_size,
                             "histogram: buckets not ascending, out of range, "
                             "empty or inconsistent with count/min/max");
}

json_t *kp_hist_summary_json(const kp_hist_t *h) {
        static const struct {
                const char *name;
                double q;
        } qs[] = {{"p50", 0.5}, {"p95", 0.95}, {"p99", 0.99}, {"p999", 0.999}};
        json_t *o = json_object();
        if (!o)
                kp_json_dump(NULL); /* aborts: out of memory */
        kp_json_set(o, "count", json_integer(h->count));
        kp_json_set(o, "mean", json_real(kp_hist_mean(h)));
        kp_json_set(o, "min", h->count ? json_integer(h->min) : json_null());
        for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++)
                kp_json_set(o, qs[i].name,
                            h->count
                                ? json_integer(kp_hist_quantile(h, qs[i].q))
                                : json_null());
        kp_json_set(o, "max", h->count ? json_integer(h->max) : json_null());
        return o;
}
