/* Unit tests of kp_metrics: the exact Prometheus text, escaping, series
 * identity and removal, exact totals under concurrent updates, and no
 * leaks. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "kpay/kp_buf.h"
#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_metrics.h"

/* Renders @p m and compares with @p expected. */
static void assert_render(kp_metrics_t *m, const char *expected) {
        size_t len = 12345;
        char *text = kp_metrics_render(m, &len);
        assert_non_null(text);
        assert_string_equal(text, expected);
        assert_int_equal(len, strlen(expected));
        kp_free(text);
}

static void test_empty(void **state) {
        (void)state;
        int64_t live    = kp_mem_live_allocations();
        kp_metrics_t *m = kp_metrics_new();
        assert_render(m, "");
        kp_metrics_destroy(m);
        kp_metrics_destroy(NULL);
        assert_int_equal(kp_mem_live_allocations(), live);
}

static void test_render_exact(void **state) {
        (void)state;
        int64_t live    = kp_mem_live_allocations();
        kp_metrics_t *m = kp_metrics_new();

        kp_counter_t *c0 = kp_metrics_counter(m, "kpay_records_in_total",
                                              "Records read.", NULL);
        kp_counter_t *c1 = kp_metrics_counter(
            m, "kpay_records_in_total", "ignored: family exists",
            "topic=\"kpay.payments\",partition=\"3\"");
        kp_gauge_t *g =
            kp_metrics_gauge(m, "kpay_lag", "Consumer lag.", "partition=\"0\"");
        const double bounds[] = {0.005, 0.1, 1, 2.5};
        kp_histogram_t *h     = kp_metrics_histogram(
                m, "kpay_commit_seconds", "Commit latency.", NULL, bounds, 4);
        kp_histogram_t *hl = kp_metrics_histogram(
            m, "kpay_commit_seconds", NULL, "store=\"acct\"", bounds, 4);

        kp_counter_add(c0, 41);
        kp_counter_add(c0, 1);
        kp_counter_add(c1, 7);
        kp_counter_add(c1, -3); /* ignored: counters only go up */
        kp_gauge_set(g, 12);
        kp_gauge_add(g, 0.5);
        kp_histogram_observe(h, 0.001); /* le 0.005 */
        kp_histogram_observe(h, 0.005); /* le 0.005 (bounds are inclusive) */
        kp_histogram_observe(h, 0.05);  /* le 0.1 */
        kp_histogram_observe(h, 2);     /* le 2.5 */
        kp_histogram_observe(h, 30);    /* +Inf only */
        kp_histogram_observe(hl, 1);

        assert_int_equal(kp_counter_get(c0), 42);
        assert_int_equal(kp_counter_get(c1), 7);
        assert_true(kp_gauge_get(g) == 12.5);
        assert_int_equal(kp_histogram_count(h), 5);
        assert_int_equal(kp_histogram_count(hl), 1);

        assert_render(
            m,
            "# HELP kpay_records_in_total Records read.\n"
            "# TYPE kpay_records_in_total counter\n"
            "kpay_records_in_total 42\n"
            "kpay_records_in_total{topic=\"kpay.payments\",partition=\"3\"} "
            "7\n"
            "# HELP kpay_lag Consumer lag.\n"
            "# TYPE kpay_lag gauge\n"
            "kpay_lag{partition=\"0\"} 12.5\n"
            "# HELP kpay_commit_seconds Commit latency.\n"
            "# TYPE kpay_commit_seconds histogram\n"
            "kpay_commit_seconds_bucket{le=\"0.005\"} 2\n"
            "kpay_commit_seconds_bucket{le=\"0.1\"} 3\n"
            "kpay_commit_seconds_bucket{le=\"1\"} 3\n"
            "kpay_commit_seconds_bucket{le=\"2.5\"} 4\n"
            "kpay_commit_seconds_bucket{le=\"+Inf\"} 5\n"
            "kpay_commit_seconds_sum 32.056\n"
            "kpay_commit_seconds_count 5\n"
            "kpay_commit_seconds_bucket{store=\"acct\",le=\"0.005\"} 0\n"
            "kpay_commit_seconds_bucket{store=\"acct\",le=\"0.1\"} 0\n"
            "kpay_commit_seconds_bucket{store=\"acct\",le=\"1\"} 1\n"
            "kpay_commit_seconds_bucket{store=\"acct\",le=\"2.5\"} 1\n"
            "kpay_commit_seconds_bucket{store=\"acct\",le=\"+Inf\"} 1\n"
            "kpay_commit_seconds_sum{store=\"acct\"} 1\n"
            "kpay_commit_seconds_count{store=\"acct\"} 1\n");

        kp_metrics_destroy(m);
        assert_int_equal(kp_mem_live_allocations(), live);
}

static void test_gauge_values(void **state) {
        (void)state;
        kp_metrics_t *m = kp_metrics_new();
        kp_gauge_t *g[7];
        const char *labels[] = {"v=\"int\"", "v=\"big\"", "v=\"frac\"",
                                "v=\"neg\"", "v=\"nan\"", "v=\"inf\"",
                                "v=\"-inf\""};
        for (int i = 0; i < 7; i++)
                g[i] = kp_metrics_gauge(m, "g", "Values.", labels[i]);
        kp_gauge_set(g[0], 3);
        kp_gauge_set(g[1], 1234567890123.0);
        kp_gauge_set(g[2], 0.1);
        kp_gauge_set(g[3], -2.25);
        kp_gauge_set(g[4], NAN);
        kp_gauge_set(g[5], INFINITY);
        kp_gauge_set(g[6], -INFINITY);
        assert_render(m,
                      "# HELP g Values.\n"
                      "# TYPE g gauge\n"
                      "g{v=\"int\"} 3\n"
                      "g{v=\"big\"} 1234567890123\n"
                      "g{v=\"frac\"} 0.1\n"
                      "g{v=\"neg\"} -2.25\n"
                      "g{v=\"nan\"} NaN\n"
                      "g{v=\"inf\"} +Inf\n"
                      "g{v=\"-inf\"} -Inf\n");
        kp_metrics_destroy(m);
}

static void test_escaping(void **state) {
        (void)state;
        char buf[64];
        assert_string_equal(
            kp_metrics_escape_label(buf, sizeof(buf), "a\\b\"c\nd"),
            "a\\\\b\\\"c\\nd");
        assert_string_equal(kp_metrics_escape_label(buf, sizeof(buf), ""), "");
        assert_string_equal(kp_metrics_escape_label(buf, sizeof(buf), NULL),
                            "");
        /* Truncation never splits an escape sequence. */
        assert_string_equal(kp_metrics_escape_label(buf, 4, "ab\"c"), "ab");
        assert_string_equal(kp_metrics_escape_label(buf, 5, "ab\"c"), "ab\\\"");

        int64_t live    = kp_mem_live_allocations();
        kp_metrics_t *m = kp_metrics_new();
        char labels[128];
        char esc[64];
        snprintf(labels, sizeof(labels), "key=\"%s\"",
                 kp_metrics_escape_label(esc, sizeof(esc), "x\"y\\z\nw"));
        kp_counter_add(
            kp_metrics_counter(m, "esc_total", "Help with \\ and a\nnewline.",
                               labels),
            1);
        assert_render(m,
                      "# HELP esc_total Help with \\\\ and a\\nnewline.\n"
                      "# TYPE esc_total counter\n"
                      "esc_total{key=\"x\\\"y\\\\z\\nw\"} 1\n");
        kp_metrics_destroy(m);
        assert_int_equal(kp_mem_live_allocations(), live);
}

static void test_same_series(void **state) {
        (void)state;
        int64_t live     = kp_mem_live_allocations();
        kp_metrics_t *m  = kp_metrics_new();
        const double b[] = {1, 2};
        kp_counter_t *c  = kp_metrics_counter(m, "c_total", "C.", "a=\"1\"");
        assert_ptr_equal(kp_metrics_counter(m, "c_total", "C.", "a=\"1\""), c);
        assert_ptr_not_equal(kp_metrics_counter(m, "c_total", "C.", "a=\"2\""),
                             c);
        assert_ptr_not_equal(kp_metrics_counter(m, "c_total", "C.", NULL), c);
        /* NULL and "" both mean no labels. */
        assert_ptr_equal(kp_metrics_counter(m, "c_total", "C.", ""),
                         kp_metrics_counter(m, "c_total", "C.", NULL));
        kp_gauge_t *g = kp_metrics_gauge(m, "g", "G.", NULL);
        assert_ptr_equal(kp_metrics_gauge(m, "g", "G.", NULL), g);
        kp_histogram_t *h = kp_metrics_histogram(m, "h", "H.", NULL, b, 2);
        assert_ptr_equal(kp_metrics_histogram(m, "h", "H.", NULL, b, 2), h);
        kp_metrics_destroy(m);
        assert_int_equal(kp_mem_live_allocations(), live);
}

static void test_remove_gauge(void **state) {
        (void)state;
        int64_t live    = kp_mem_live_allocations();
        kp_metrics_t *m = kp_metrics_new();
        kp_gauge_t *g0 =
            kp_metrics_gauge(m, "store_keys", "Keys.", "store=\"a\"");
        kp_gauge_t *g1 =
            kp_metrics_gauge(m, "store_keys", "Keys.", "store=\"b\"");
        kp_gauge_set(g0, 1);
        kp_gauge_set(g1, 2);
        assert_render(m,
                      "# HELP store_keys Keys.\n"
                      "# TYPE store_keys gauge\n"
                      "store_keys{store=\"a\"} 1\n"
                      "store_keys{store=\"b\"} 2\n");

        kp_metrics_remove_gauge(m, g1);
        assert_render(m,
                      "# HELP store_keys Keys.\n"
                      "# TYPE store_keys gauge\n"
                      "store_keys{store=\"a\"} 1\n");

        /* After removing the tail, a new series is appended correctly. */
        kp_gauge_t *g2 =
            kp_metrics_gauge(m, "store_keys", "Keys.", "store=\"c\"");
        kp_gauge_set(g2, 3);
        kp_metrics_remove_gauge(m, g0);
        assert_render(m,
                      "# HELP store_keys Keys.\n"
                      "# TYPE store_keys gauge\n"
                      "store_keys{store=\"c\"} 3\n");

        /* A family without series is not rendered at all. */
        kp_metrics_remove_gauge(m, g2);
        assert_render(m, "");

        /* Registering it again starts from zero. */
        g0 = kp_metrics_gauge(m, "store_keys", "Keys.", "store=\"a\"");
        assert_true(kp_gauge_get(g0) == 0);
        kp_metrics_destroy(m);
        assert_int_equal(kp_mem_live_allocations(), live);
}

/* Registering a name as two types is a programming error: the process
 * aborts. Run in a child so that the abort can be observed. */
static void test_type_mismatch_aborts(void **state) {
        (void)state;
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                kp_log_set_level(KP_LOG_FATAL);
                kp_metrics_t *m = kp_metrics_new();
                kp_metrics_counter(m, "x_total", "X.", NULL);
                kp_metrics_gauge(m, "x_total", "X.", NULL);
                _exit(0); /* not reached when the mismatch is caught */
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGABRT);
}

#define THREADS    4
#define INCREMENTS 100000

typedef struct worker_s {
        kp_metrics_t *m;
        kp_counter_t *c;
        kp_gauge_t *g;
        kp_histogram_t *h;
        int id;
} worker_t;

static void *worker_main(void *arg) {
        worker_t *w = arg;
        char labels[32];
        snprintf(labels, sizeof(labels), "worker=\"%d\"", w->id);
        for (int i = 0; i < INCREMENTS; i++) {
                kp_counter_add(w->c, 1);
                kp_gauge_add(w->g, 1);
                kp_histogram_observe(w->h, (double)(i % 3));
                if (i % 10000 == 0) {
                        /* Registration and rendering race with updates. */
                        kp_counter_add(
                            kp_metrics_counter(w->m, "per_worker_total", "W.",
                                               labels),
                            1);
                        size_t len;
                        kp_free(kp_metrics_render(w->m, &len));
                }
        }
        return NULL;
}

static void test_concurrent_updates(void **state) {
        (void)state;
        int64_t live     = kp_mem_live_allocations();
        kp_metrics_t *m  = kp_metrics_new();
        const double b[] = {0.5, 1.5};
        pthread_t tids[THREADS];
        worker_t workers[THREADS];
        kp_counter_t *c   = kp_metrics_counter(m, "ops_total", "Ops.", NULL);
        kp_gauge_t *g     = kp_metrics_gauge(m, "level", "Level.", NULL);
        kp_histogram_t *h = kp_metrics_histogram(m, "obs", "Obs.", NULL, b, 2);
        for (int i = 0; i < THREADS; i++) {
                workers[i] = (worker_t){m, c, g, h, i};
                assert_int_equal(
                    pthread_create(&tids[i], NULL, worker_main, &workers[i]),
                    0);
        }
        for (int i = 0; i < THREADS; i++)
                assert_int_equal(pthread_join(tids[i], NULL), 0);

        assert_int_equal(kp_counter_get(c), THREADS * INCREMENTS);
        assert_true(kp_gauge_get(g) == (double)(THREADS * INCREMENTS));
        assert_int_equal(kp_histogram_count(h), THREADS * INCREMENTS);

        size_t len;
        char *text = kp_metrics_render(m, &len);
        assert_non_null(strstr(text, "\nops_total 400000\n"));
        assert_non_null(strstr(text, "\nlevel 400000\n"));
        /* i % 3 over 100000 values: 33334 zeros, 33333 ones, 33333 twos. */
        assert_non_null(strstr(text, "\nobs_bucket{le=\"0.5\"} 133336\n"));
        assert_non_null(strstr(text, "\nobs_bucket{le=\"1.5\"} 266668\n"));
        assert_non_null(strstr(text, "\nobs_bucket{le=\"+Inf\"} 400000\n"));
        assert_non_null(strstr(text, "\nobs_sum 399996\n"));
        assert_non_null(strstr(text, "\nobs_count 400000\n"));
        for (int i = 0; i < THREADS; i++) {
                char line[64];
                snprintf(line, sizeof(line),
                         "\nper_worker_total{worker=\"%d\"} 10\n", i);
                assert_non_null(strstr(text, line));
        }
        kp_free(text);
        kp_metrics_destroy(m);
        assert_int_equal(kp_mem_live_allocations(), live);
}

/* The growing buffer the rendering (and kpay-metrics) writes into. */
static void test_buf(void **state) {
        (void)state;
        kp_buf_t b = {0};
        size_t len;
        char *s = kp_buf_take(&b, &len);
        assert_string_equal(s, "");
        assert_int_equal(len, 0);
        kp_free(s);
        kp_buf_int(&b, 0);
        kp_buf_puts(&b, " ");
        kp_buf_int(&b, INT64_MIN);
        kp_buf_puts(&b, " ");
        kp_buf_int(&b, INT64_MAX);
        kp_buf_printf(&b, " %s=%d ", "x", 42);
        kp_buf_json_str(&b, "a\"b\\c\n\x01\xc3\xa9");
        for (int i = 0; i < 1000; i++)
                kp_buf_add(&b, "0123456789", 10);
        s = kp_buf_take(&b, &len);
        assert_int_equal(len, strlen(s));
        static const char want[] =
            "0 -9223372036854775808 9223372036854775807 x=42 "
            "\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\"";
        assert_int_equal(len, strlen(want) + 10000);
        assert_memory_equal(s, want, strlen(want));
        kp_free(s);
        assert_null(b.p);
        kp_buf_puts(&b, "x");
        kp_buf_clear(&b);
        assert_null(b.p);
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_buf),
            cmocka_unit_test(test_empty),
            cmocka_unit_test(test_render_exact),
            cmocka_unit_test(test_gauge_values),
            cmocka_unit_test(test_escaping),
            cmocka_unit_test(test_same_series),
            cmocka_unit_test(test_remove_gauge),
            cmocka_unit_test(test_type_mismatch_aborts),
            cmocka_unit_test(test_concurrent_updates),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
