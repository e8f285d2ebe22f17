/* Unit tests of the mergeable histogram (kp_hist.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "kpay/kp_hist.h"
#include "kpay/kp_mem.h"

/* xorshift64*: reproducible random data without libc's rand(). */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void) {
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return rng_state * 0x2545f4914f6cdd1dULL;
}

static int cmp64(const void *a, const void *b) {
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
        return x < y ? -1 : x > y;
}

/* The exact nearest-rank quantile of sorted values. */
static int64_t exact_q(const int64_t *v, size_t n, double q) {
        size_t rank = (size_t)(q * (double)n + 0.999999999);
        if (rank < 1)
                rank = 1;
        if (rank > n)
                rank = n;
        return v[rank - 1];
}

static void test_buckets(void **state) {
        (void)state;
        assert_int_equal(kp_hist_index(0), 0);
        for (int64_t v = 1; v <= 256; v++) {
                assert_int_equal(kp_hist_index(v), v);
                assert_int_equal(kp_hist_bucket_lowest((int32_t)v), v);
                assert_int_equal(kp_hist_bucket_highest((int32_t)v), v);
        }
        /* Every index from 1 to the last is reachable, contiguous, and each
         * bucket's values map back to it; widths within 1/128. */
        int64_t prev_hi = 0;
        for (int32_t i = 1; i <= KP_HIST_MAX_INDEX; i++) {
                int64_t lo = kp_hist_bucket_lowest(i);
                int64_t hi = kp_hist_bucket_highest(i);
                assert_int_equal(lo, prev_hi + 1);
                assert_true(hi >= lo);
                assert_int_equal(kp_hist_index(lo), i);
                assert_int_equal(kp_hist_index(hi), i);
                assert_true((double)(hi - lo) <= (double)lo / 128.0);
                prev_hi = hi;
        }
        assert_int_equal(prev_hi, INT64_MAX);
        assert_int_equal(kp_hist_index(INT64_MAX), KP_HIST_MAX_INDEX);
        /* Powers of two are upper bounds (native histogram schema 0). */
        for (int k = 0; k < 63; k++) {
                int64_t p = INT64_C(1) << k;
                assert_int_equal(kp_hist_bucket_highest(kp_hist_index(p)), p);
        }
}

static void test_accuracy(void **state) {
        (void)state;
        static const double qs[] = {0.01, 0.25,  0.5,    0.9, 0.95,
                                    0.99, 0.999, 0.9999, 1.0};
        for (int round = 0; round < 6; round++) {
                size_t n   = 1 + (size_t)(rnd() % 20000);
                int64_t *v = kp_malloc(n * sizeof(*v));
                kp_hist_t h;
                kp_hist_init(&h);
                int64_t sum = 0;
                for (size_t i = 0; i < n; i++) {
                        /* Log-uniform over 0 .. 2^(10 + 4*round). */
                        int bits =
                            1 + (int)(rnd() % (uint64_t)(10 + 4 * round));
                        v[i] = (int64_t)(rnd() >> (64 - bits));
                        sum += v[i];
                        assert_int_equal(kp_hist_record(&h, v[i]), KP_OK);
                }
                qsort(v, n, sizeof(*v), cmp64);
                assert_int_equal(h.count, (int64_t)n);
                assert_int_equal(h.sum, sum);
                assert_int_equal(h.min, v[0]);
                assert_int_equal(h.max, v[n - 1]);
                for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
                        int64_t want = exact_q(v, n, qs[i]);
                        int64_t got  = kp_hist_quantile(&h, qs[i]);
                        double err   = (double)llabs(got - want);
                        assert_true(err <= (double)want / 100.0);
                        if (want <= 256)
                                assert_int_equal(got, want);
                }
                size_t le = 0;
                while (le < n && v[le] <= 1024)
                        le++;
                assert_int_equal(kp_hist_count_le(&h, 1024), (int64_t)le);
                kp_free(v);
                kp_hist_clear(&h);
        }
}

/* Merging two histograms equals one histogram of all the values. */
static void test_merge_is_union(void **state) {
        (void)state;
        kp_hist_t a, b, all, empty;
        kp_hist_init(&a);
        kp_hist_init(&b);
        kp_hist_init(&all);
        kp_hist_init(&empty);
        for (int i = 0; i < 5000; i++) {
                int64_t x = (int64_t)(rnd() % 100000);
                assert_int_equal(kp_hist_record(i % 3 ? &a : &b, x), KP_OK);
                assert_int_equal(kp_hist_record(&all, x), KP_OK);
        }
        assert_int_equal(kp_hist_merge(&a, &empty), KP_OK);
        assert_int_equal(kp_hist_merge(&a, &b), KP_OK);
        assert_true(kp_hist_equal(&a, &all));
        for (double q = 0.05; q <= 1.0; q += 0.05)
                assert_int_equal(kp_hist_quantile(&a, q),
                                 kp_hist_quantile(&all, q));
        /* Into an empty one: a copy. */
        assert_int_equal(kp_hist_merge(&empty, &all), KP_OK);
        assert_true(kp_hist_equal(&empty, &all));
        kp_hist_clear(&a);
        kp_hist_clear(&b);
        kp_hist_clear(&all);
        kp_hist_clear(&empty);
}

static void test_empty_and_one(void **state) {
        (void)state;
        kp_hist_t h;
        kp_hist_init(&h);
        assert_int_equal(kp_hist_quantile(&h, 0.5), -1);
        assert_true(kp_hist_mean(&h) == 0.0);
        assert_int_equal(kp_hist_count_le(&h, 100), 0);
        json_t *j = kp_hist_summary_json(&h);
        assert_true(json_is_null(json_object_get(j, "p99")));
        json_decref(j);
        assert_int_equal(kp_hist_record(&h, 12345), KP_OK);
        assert_int_equal(kp_hist_quantile(&h, 0.001), 12345);
        assert_int_equal(kp_hist_quantile(&h, 0.5), 12345);
        assert_int_equal(kp_hist_quantile(&h, 1.0), 12345);
        assert_true(kp_hist_mean(&h) == 12345.0);
        assert_int_equal(kp_hist_quantile(&h, 0.0), -1);
        assert_int_equal(kp_hist_quantile(&h, 1.5), -1);
        kp_hist_clear(&h);
}

static void test_extremes(void **state) {
        (void)state;
        kp_hist_t h, c;
        kp_hist_init(&h);
        assert_int_equal(kp_hist_record(&h, -1), KP_ERR_INVALID_ARG);
        assert_int_equal(kp_hist_record(&h, INT64_MIN), KP_ERR_INVALID_ARG);
        assert_int_equal(kp_hist_record_n(&h, 5, 0), KP_ERR_INVALID_ARG);
        assert_int_equal(kp_hist_record(&h, 0), KP_OK);
        assert_int_equal(kp_hist_record(&h, INT64_MAX), KP_OK);
        assert_int_equal(h.min, 0);
        assert_int_equal(h.max, INT64_MAX);
        assert_int_equal(kp_hist_quantile(&h, 0.5), 0);
        assert_int_equal(kp_hist_quantile(&h, 1.0), INT64_MAX);
        /* The middle of the last bucket, within 1/256 of the value. */
        assert_true(kp_hist_quantile(&h, 0.9) >= INT64_MAX - INT64_MAX / 256);
        /* The sum would overflow: refused, nothing changed. */
        assert_int_equal(kp_hist_record(&h, 1), KP_ERR_OVERFLOW);
        assert_int_equal(h.count, 2);
        kp_hist_init(&c);
        assert_int_equal(kp_hist_record(&c, 7), KP_OK);
        assert_int_equal(kp_hist_merge(&c, &h), KP_ERR_OVERFLOW);
        assert_int_equal(c.count, 1);
        assert_int_equal(c.max, 7);
        kp_hist_clear(&c);
        kp_hist_clear(&h);
}

static void test_json_roundtrip(void **state) {
        (void)state;
        kp_hist_t h, back;
        char err[128];
        kp_hist_init(&h);
        kp_hist_init(&back);
        for (int i = 0; i < 1000; i++)
                assert_int_equal(kp_hist_record(&h, (int64_t)(rnd() % 5000)),
                                 KP_OK);
        json_t *j = kp_hist_to_json(&h);
        assert_int_equal(kp_hist_from_json(j, &back, err, sizeof(err)), KP_OK);
        assert_true(kp_hist_equal(&h, &back));
        json_decref(j);
        /* Empty round-trips too. */
        kp_hist_clear(&h);
        j = kp_hist_to_json(&h);
        assert_int_equal(kp_hist_from_json(j, &back, err, sizeof(err)), KP_OK);
        assert_int_equal(back.count, 0);
        json_decref(j);
        static const char *const bad[] = {
            "[]",
            "{\"count\":1,\"sum\":5,\"min\":5,\"max\":5}",
            "{\"count\":1,\"sum\":5,\"min\":5,\"max\":5,\"buckets\":[5]}",
            "{\"count\":2,\"sum\":5,\"min\":5,\"max\":5,\"buckets\":[5,1]}",
            "{\"count\":1,\"sum\":5,\"min\":5,\"max\":5,\"buckets\":[6,1]}",
            "{\"count\":2,\"sum\":9,\"min\":4,\"max\":5,"
            "\"buckets\":[5,1,4,1]}",
            "{\"count\":1,\"sum\":5,\"min\":5,\"max\":5,"
            "\"buckets\":[99999,1]}",
            "{\"count\":1,\"sum\":5,\"min\":5,\"max\":5,\"buckets\":[5,0]}",
            "{\"count\":-1,\"sum\":5,\"min\":5,\"max\":5,\"buckets\":[]}",
            "{\"count\":0,\"sum\":5,\"min\":0,\"max\":0,\"buckets\":[]}",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                json_t *x = json_loads(bad[i], 0, NULL);
                assert_non_null(x);
                assert_int_equal(kp_hist_from_json(x, &back, err, sizeof(err)),
                                 KP_ERR_PARSE);
                json_decref(x);
        }
        kp_hist_clear(&back);
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_buckets),
            cmocka_unit_test(test_accuracy),
            cmocka_unit_test(test_merge_is_union),
            cmocka_unit_test(test_empty_and_one),
            cmocka_unit_test(test_extremes),
            cmocka_unit_test(test_json_roundtrip),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
