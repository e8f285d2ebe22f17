/* Unit tests of kp_bucket: the rate limit's token bucket starts full with a
 * burst of a quarter of a second, goes into debt, and admits exactly the rate
 * over a long simulated run however the records arrive. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "kpay/kp_bucket.h"

static void test_burst_and_debt(void **state) {
        (void)state;
        kp_bucket_t b = {0};
        kp_bucket_refill(&b, 500, 1000);
        assert_true(b.tokens == 125.0); /* a quarter second of 500/s */
        for (int i = 0; i < 125; i++) {
                assert_false(kp_bucket_empty(&b));
                kp_bucket_take(&b, 500, 1000);
        }
        assert_true(kp_bucket_empty(&b));
        assert_int_equal(kp_bucket_wait_ms(&b, 500), 2); /* 1 token: 2 ms */
        kp_bucket_take(&b, 500, 1000);                   /* into debt */
        assert_true(b.tokens == -1.0);
        assert_int_equal(kp_bucket_wait_ms(&b, 500), 4);
        kp_bucket_refill(&b, 500, 1004);
        assert_false(kp_bucket_empty(&b));
        assert_int_equal(kp_bucket_wait_ms(&b, 500), 0);
        /* Never above the burst, however long it waits. */
        kp_bucket_refill(&b, 500, 60000);
        assert_true(b.tokens == 125.0);
        /* A slow rate still admits one record at a time. */
        kp_bucket_t s = {0};
        kp_bucket_refill(&s, 2, 1);
        assert_true(s.tokens == 1.0);
        assert_int_equal(kp_bucket_wait_ms(&s, 0), 0);
        kp_bucket_take(&s, 2, 1);
        assert_int_equal(kp_bucket_wait_ms(&s, 2), 500);
        assert_true(kp_bucket_wait_ms(&s, 0) == INT64_MAX);
        /* A clock that goes back adds nothing. */
        kp_bucket_refill(&s, 2, 0);
        assert_true(s.tokens == 0.0);
        kp_bucket_reset(&s);
        kp_bucket_refill(&s, 2, 5);
        assert_true(s.tokens == 1.0);
}

/* The way the runtime drives it: a record is admitted whenever the bucket
 * is not empty; over 20 simulated seconds with a flood of input, the count
 * is the rate times the time plus at most one burst. */
static void test_rate_holds(void **state) {
        (void)state;
        const double rates[] = {1, 250, 500, 1000, 33.3};
        for (size_t r = 0; r < sizeof(rates) / sizeof(rates[0]); r++) {
                kp_bucket_t b    = {0};
                int64_t admitted = 0;
                for (int64_t now = 1; now <= 20000; now++) {
                        kp_bucket_refill(&b, rates[r], now);
                        while (!kp_bucket_empty(&b)) {
                                kp_bucket_take(&b, rates[r], now);
                                admitted++;
                        }
                }
                double want  = rates[r] * 20.0;
                double burst = rates[r] * KP_BUCKET_BURST_S > 1
                                   ? rates[r] * KP_BUCKET_BURST_S
                                   : 1;
                assert_true((double)admitted >= want - 1.0);
                assert_true((double)admitted <= want + burst + 1.0);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_burst_and_debt),
            cmocka_unit_test(test_rate_holds),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
