/* Unit tests of kp_opslog with no broker to reach: logging never blocks,
 * lines that cannot be delivered are dropped and counted, the sink's own
 * producer does not feed it, and stopping is bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "kpay/kp_app.h"
#include "kpay/kp_log.h"
#include "kpay/kp_opslog.h"
#include "kpay/kp_time.h"

/* A port nothing listens on: 127.0.0.1:1 (tcpmux) is refused at once. */
static kp_app_conf_t conf = {.bootstrap_servers = "127.0.0.1:1",
                             .topic_prefix      = "unit."};

static int quiet_stderr(void) {
        int saved  = dup(STDERR_FILENO);
        FILE *null = fopen("/dev/null", "w");
        assert_non_null(null);
        assert_true(dup2(fileno(null), STDERR_FILENO) >= 0);
        fclose(null);
        return saved;
}

static void restore_stderr(int saved) {
        assert_true(dup2(saved, STDERR_FILENO) >= 0);
        close(saved);
}

static void test_no_broker(void **state) {
        (void)state;
        char errstr[512];
        int saved = quiet_stderr();
        kp_log_set_repeat_limit(0, 1000); /* every line is written */
        kp_opslog_t *ol =
            kp_opslog_start(&conf, "unit", "u-1", NULL, errstr, sizeof(errstr));
        assert_non_null(ol);
        /* The producer tries to connect meanwhile and logs its failures:
         * none of them may reach the sink, or these counts would move. */
        int64_t until = kp_mono_ms() + 1500;
        while (kp_mono_ms() < until)
                kp_sleep_ms(50);
        assert_int_equal(kp_opslog_dropped(ol), 0);
        assert_int_equal(kp_opslog_delivered(ol), 0);
        /* Far more lines than the queue holds, logged without waiting. */
        const int lines = 3 * KP_OPSLOG_QUEUE_MAX;
        int64_t t0      = kp_mono_ms();
        for (int i = 0; i < lines; i++)
                KP_WARN("line %d", i);
        KP_INFO("below WARN: never in the sink");
        int64_t took = kp_mono_ms() - t0;
        /* Bounded: stop waits at most its timeout for the delivery. */
        t0                = kp_mono_ms();
        int64_t dropped   = kp_opslog_stop(ol, 200);
        int64_t stop_took = kp_mono_ms() - t0;
        kp_log_set_repeat_limit(5, 10000);
        restore_stderr(saved);
        print_message("%d lines logged in %lld ms, stop took %lld ms\n", lines,
                      (long long)took, (long long)stop_took);
        /* Every WARN line is accounted for as dropped (nothing could be
         * delivered), and nothing else was in the sink: not the INFO line,
         * not one of the producer's own connection errors. */
        assert_int_equal(dropped, lines);
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_no_broker),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
