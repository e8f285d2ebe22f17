/* Unit tests of kp_time's backoff: exponential and capped waits, the
 * deadline, early stop, and which attempts are logged. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "kpay/kp_time.h"

static void test_backoff_doubles_and_caps(void **state) {
        (void)state;
        kp_backoff_t b;
        kp_backoff_init(&b, 1, 8, -1);
        const int64_t next[] = {2, 4, 8, 8, 8};
        for (int i = 0; i < 5; i++) {
                assert_int_equal(kp_backoff_wait(&b, NULL), KP_OK);
                assert_int_equal(b.wait_ms, next[i]);
                assert_int_equal(b.attempt, i + 1);
        }
        assert_true(kp_backoff_elapsed_ms(&b) >= 1 + 2 + 4 + 8 + 8);
}

static void test_backoff_deadline(void **state) {
        (void)state;
        kp_backoff_t b;
        /* No time at all: give up at the first failure, without waiting. */
        kp_backoff_init(&b, 1000, 1000, 0);
        assert_int_equal(kp_backoff_wait(&b, NULL), KP_ERR_TIMED_OUT);
        /* The deadline is reached (however slow the machine), and from
         * then on every failure gives up at once. */
        kp_backoff_init(&b, 1, 4, 30);
        kp_err_t err;
        while ((err = kp_backoff_wait(&b, NULL)) == KP_OK)
                ;
        assert_int_equal(err, KP_ERR_TIMED_OUT);
        assert_true(kp_backoff_elapsed_ms(&b) >= 30);
        int attempts = b.attempt;
        assert_int_equal(kp_backoff_wait(&b, NULL), KP_ERR_TIMED_OUT);
        assert_int_equal(b.attempt, attempts + 1);
}

static int stop_now(void) {
        return 0;
}

static void test_backoff_stop(void **state) {
        (void)state;
        kp_backoff_t b;
        kp_backoff_init(&b, 60000, 60000, -1);
        assert_int_equal(kp_backoff_wait(&b, stop_now), KP_ERR_STATE);
        assert_true(kp_backoff_elapsed_ms(&b) < 60000);
}

static void test_backoff_log_due(void **state) {
        (void)state;
        kp_backoff_t b = {0};
        int logged[40] = {0};
        for (b.attempt = 1; b.attempt < 40; b.attempt++)
                logged[b.attempt] = kp_backoff_log_due(&b);
        const int want[] = {1, 2, 3, 4, 8, 16, 32};
        int n            = 0;
        for (int a = 1; a < 40; a++)
                n += logged[a];
        assert_int_equal(n, 7);
        for (int i = 0; i < 7; i++)
                assert_true(logged[want[i]]);
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_backoff_doubles_and_caps),
            cmocka_unit_test(test_backoff_deadline),
            cmocka_unit_test(test_backoff_stop),
            cmocka_unit_test(test_backoff_log_due),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
