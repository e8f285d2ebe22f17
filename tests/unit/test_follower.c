/* Unit tests of kp_follower without a broker: bad arguments, NULL handles,
 * and followers (threaded or driven) that cannot reach their cluster: they
 * time out syncing and shut down promptly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kpay/kp_follower.h"
#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_time.h"

static int64_t mem_start;
static int old_level;

static char *keys[]   = {"log_level", "socket.connection.setup.timeout.ms"};
static char *values[] = {"0", "1000"};
static kp_app_conf_t unreachable = {
    .bootstrap_servers = "127.0.0.1:1",
    .topic_prefix      = "unit.",
    .kafka             = {.cnt = 2, .keys = keys, .values = values},
};

static int setup(void **state) {
        (void)state;
        mem_start = kp_mem_live_allocations();
        old_level = kp_log_level_current;
        /* No broker listens: keep the follower's complaints quiet. */
        kp_log_set_level(KP_LOG_ERROR);
        return 0;
}

static int teardown(void **state) {
        (void)state;
        kp_log_set_level((kp_log_level_t)old_level);
        assert_int_equal(kp_mem_live_allocations(), mem_start);
        return 0;
}

static void *dummy_decode(const kp_follower_record_t *rec, int64_t *tsp,
                          void *opaque, char *errstr, size_t errstr_size) {
        (void)rec, (void)tsp, (void)opaque, (void)errstr, (void)errstr_size;
        return NULL;
}

static int count_entry(const void *key, size_t key_len, const void *value,
                       size_t value_len, const void *decoded, int64_t recv_ms,
                       void *opaque) {
        (void)key, (void)key_len, (void)value, (void)value_len, (void)decoded,
            (void)recv_ms;
        (*(int *)opaque)++;
        return 0;
}

/* A follower of the unreachable cluster. */
static kp_follower_t *follower(const kp_follower_conf_t *fc) {
        char errstr[512];
        kp_follower_t *f =
            kp_follower_new(&unreachable, fc, errstr, sizeof(errstr));
        if (!f)
                fail_msg("kp_follower_new: %s", errstr);
        return f;
}

/* kp_follower_sync() gives up after its time-out, not long after. */
static void assert_sync_times_out(kp_follower_t *f) {
        int64_t t0 = kp_mono_ms();
        assert_int_equal(kp_follower_sync(f, 300), KP_ERR_TIMED_OUT);
        int64_t took = kp_mono_ms() - t0;
        assert_true(took >= 300);
        assert_true(took < 3000);
}

/* kp_follower_destroy() is bounded even when no broker answers. */
static void assert_destroy_prompt(kp_follower_t *f) {
        int64_t t0 = kp_mono_ms();
        kp_follower_destroy(f);
        assert_true(kp_mono_ms() - t0 < 5000);
}

static void test_bad_args(void **state) {
        (void)state;
        char errstr[512];
        kp_follower_conf_t fc = {0};

        assert_null(
            kp_follower_new(&unreachable, NULL, errstr, sizeof(errstr)));
        assert_non_null(strstr(errstr, "topic"));
        assert_null(kp_follower_new(&unreachable, &fc, errstr, sizeof(errstr)));
        assert_non_null(strstr(errstr, "topic"));
        fc.topic = "";
        assert_null(kp_follower_new(&unreachable, &fc, errstr, sizeof(errstr)));
        assert_non_null(strstr(errstr, "topic"));

        fc.topic  = "unit.t";
        fc.decode = dummy_decode;
        assert_null(kp_follower_new(&unreachable, &fc, errstr, sizeof(errstr)));
        assert_non_null(strstr(errstr, "keep_table"));
        fc.decode         = NULL;
        fc.stale_after_ms = -1;
        assert_null(kp_follower_new(&unreachable, &fc, errstr, sizeof(errstr)));
        assert_non_null(strstr(errstr, "stale_after_ms"));
        fc.stale_after_ms = 0;

        /* A -X property librdkafka does not know. */
        static char *badkeys[] = {"no.such.property"}, *badvalues[] = {"1"};
        const kp_app_conf_t bad = {
            .bootstrap_servers = unreachable.bootstrap_servers,
            .kafka = {.cnt = 1, .keys = badkeys, .values = badvalues}};
        assert_null(kp_follower_new(&bad, &fc, errstr, sizeof(errstr)));
        assert_non_null(strstr(errstr, "no.such.property"));
}

/* A -X message.max.bytes above 1 MB is taken: the consumer's defaults leave
 * fetch.max.bytes to librdkafka, which keeps it >= message.max.bytes (an
 * explicit 1 MiB default made such a configuration fail). */
static void test_large_message_max_bytes(void **state) {
        (void)state;
        static char *bigkeys[]   = {"log_level",
                                    "socket.connection.setup.timeout.ms",
                                    "message.max.bytes"},
                    *bigvalues[] = {"0", "1000", "2000000"};
        const kp_app_conf_t big  = {
             .bootstrap_servers = unreachable.bootstrap_servers,
             .topic_prefix      = unreachable.topic_prefix,
             .kafka = {.cnt = 3, .keys = bigkeys, .values = bigvalues}};
        const kp_follower_conf_t fc = {.topic = "unit.follower"};
        char errstr[512]            = "";
        kp_follower_t *f = kp_follower_new(&big, &fc, errstr, sizeof(errstr));
        if (!f)
                fail_msg("kp_follower_new: %s", errstr);
        assert_destroy_prompt(f);
}

static void test_null(void **state) {
        (void)state;
        char *v    = (char *)1;
        size_t len = 7;
        kp_follower_destroy(NULL);
        assert_int_equal(kp_follower_poll(NULL, 0), -1);
        assert_int_equal(kp_follower_sync(NULL, 0), KP_ERR_INVALID_ARG);
        assert_int_equal(kp_follower_get(NULL, "k", 1, &v, &len),
                         KP_ERR_INVALID_ARG);
        assert_null(v);
        assert_int_equal(len, 0);
        assert_int_equal(kp_follower_foreach(NULL, count_entry, NULL), 0);
}

/* A threaded follower with a table and no cluster: knows nothing, cannot
 * be polled by hand, times out syncing on time, and stops promptly. */
static void test_threaded_unreachable(void **state) {
        (void)state;
        const kp_follower_conf_t fc = {
            .topic      = "unit.follower",
            .keep_table = 1,
            .threaded   = 1,
        };
        kp_follower_t *f = follower(&fc);
        assert_int_equal(kp_follower_poll(f, 0), -1);

        assert_sync_times_out(f);

        char *v    = NULL;
        size_t len = 0;
        assert_int_equal(kp_follower_get(f, "k", 1, &v, &len),
                         KP_ERR_NOT_FOUND);
        assert_null(v);
        int n = 0;
        assert_int_equal(kp_follower_foreach(f, count_entry, &n), 0);
        assert_int_equal(n, 0);

        assert_destroy_prompt(f);
}

/* A driven follower (not threaded, no table, from the end): polls return
 * on time with nothing, sync times out, destroy is prompt. */
static void test_driven_unreachable(void **state) {
        (void)state;
        const kp_follower_conf_t fc = {
            .topic    = "unit.follower",
            .from_end = 1,
        };
        kp_follower_t *f = follower(&fc);

        char *v = NULL;
        assert_int_equal(kp_follower_get(f, "k", 1, &v, NULL),
                         KP_ERR_INVALID_ARG);
        int64_t t0 = kp_mono_ms();
        assert_int_equal(kp_follower_poll(f, 0), 0);
        assert_int_equal(kp_follower_poll(f, 200), 0);
        /* A metadata request may take its one second inside a poll. */
        assert_true(kp_mono_ms() - t0 < 3000);

        assert_sync_times_out(f);

        assert_destroy_prompt(f);
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_bad_args, setup, teardown),
            cmocka_unit_test_setup_teardown(test_null, setup, teardown),
            cmocka_unit_test_setup_teardown(test_large_message_max_bytes, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_threaded_unreachable, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_driven_unreachable, setup,
                                            teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
