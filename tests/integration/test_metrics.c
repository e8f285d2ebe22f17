/* Integration test of kpay-metrics on the fixture's broker, with real
 * processes (docs/metrics.md, "Tested by"):
 * - exactness: kpay-gen at a fixed rate for 20 s through kpay-inflight and
 *   kpay-account while kpay-metrics is SIGKILLed and restarted mid-run; the
 *   1 s (and 1 min) windows then count exactly the outcomes on
 *   kpay.payments.complete, none twice, none lost, and so do the final
 *   windows on kpay.metrics.windows; the p99 of the windows' merged
 *   histogram is within 2 % of the p99 of kpay-gen's own latency file;
 * - closing: a window closes on wall-clock time, with no traffic, no
 *   earlier than its end plus the grace period (how soon after is a
 *   figure of bench/metrics-close.sh, not a pass/fail bound); after a
 *   restart with a longer grace period, a window opened before it still
 *   becomes final, no earlier than its end plus the new grace period;
 * - bad input: broken and invalid outcomes and dead letters are counted
 *   under their causes, nothing crashes, nothing is dead-lettered;
 * - merging: the same records read by one instance and by two give the
 *   same answer, window for window, once the two are merged. */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "it_util.h"
#include "kpay/kp_hist.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_payment.h"
#include "kpay/kp_time.h"
#include "kpay/kp_topics.h"
#include "metrics.h"

#define PARTITIONS 4
#define GRACE_MS   2000
#define WAIT_MS    120000

static char root[256];

static void topic(char *buf, size_t size, const char *prefix,
                  kp_topic_id_t id) {
        kp_topic_name(buf, size, prefix, id);
}

static void metrics_start(it_daemon_t *d, const char *prefix) {
        const char *extra[] = {"--state-dir", d->state, "--partitions", "4",
                               NULL};
        it_daemon_spawn(d, prefix, extra);
}

static void proc_start(it_daemon_t *d, const char *prefix) {
        const char *extra[] = {"--state-dir", d->state, "--partitions", "4",
                               NULL};
        it_daemon_spawn(d, prefix, extra);
}

/* GET /v1/metrics/windows of @p size over [from, to). */
static json_t *windows(const it_daemon_t *d, const char *size, int64_t from,
                       int64_t to) {
        char path[160];
        snprintf(path, sizeof(path),
                 "/v1/metrics/windows?size=%s&from=%" PRId64 "&to=%" PRId64,
                 size, from, to);
        return it_get_json(d->endpoint, path, 200);
}

static int64_t jint(const json_t *o, const char *a, const char *b) {
        const json_t *x = json_object_get(o, a);
        if (b)
                x = json_object_get(x, b);
        if (!json_is_integer(x))
                fail_msg("no integer %s.%s", a, b ? b : "");
        return (int64_t)json_integer_value(x);
}

typedef struct totals_s {
        int64_t outcomes; /* complete + rejected */
        int64_t invalid;
        int64_t dlq;
        int64_t late;
        int all_final;
        size_t windows;
} totals_t;

static totals_t sum_windows(const json_t *resp) {
        totals_t t = {0, 0, 0, 0, 1, 0};
        size_t i;
        json_t *w;
        json_array_foreach(json_object_get(resp, "windows"), i, w) {
                t.outcomes +=
                    jint(w, "complete", "count") + jint(w, "rejected", "count");
                t.invalid += jint(w, "invalid", "count");
                t.dlq += jint(w, "dead_letters", "count");
                t.late += jint(w, "late", NULL);
                t.all_final =
                    t.all_final && json_is_true(json_object_get(w, "final"));
                t.windows++;
        }
        return t;
}

/* The records of the complete topic (read_committed). */
static size_t complete_records(const char *prefix, int64_t *max_complete_ms) {
        char name[256];
        it_rec_t *recs;
        topic(name, sizeof(name), prefix, KP_TOPIC_COMPLETE);
        size_t n = it_read_all(name, "read_committed", &recs);
        if (max_complete_ms) {
                *max_complete_ms = 0;
                for (size_t i = 0; i < n; i++) {
                        kp_payment_t p;
                        char detail[256];
                        if (!recs[i].value ||
                            kp_payment_parse(recs[i].value,
                                             strlen(recs[i].value), &p, detail,
                                             sizeof(detail)))
                                fail_msg("unparsable outcome: %s", detail);
                        if (p.complete_ms > *max_complete_ms)
                                *max_complete_ms = p.complete_ms;
                        kp_payment_clear(&p);
                }
        }
        it_free_recs(recs, n);
        return n;
}

/* The sum of the counts of the latest value of every key of
 * kpay.metrics.windows whose key starts with @p size ("1s/"). */
static int64_t topic_window_outcomes(const char *prefix, const char *size) {
        char name[256];
        it_rec_t *recs;
        topic(name, sizeof(name), prefix, KP_TOPIC_METRICS_WINDOWS);
        size_t n       = it_read_all(name, "read_committed", &recs);
        json_t *latest = json_object();
        for (size_t i = 0; i < n; i++) {
                if (strncmp(recs[i].key, size, strlen(size)))
                        continue;
                if (!recs[i].value) {
                        json_object_del(latest, recs[i].key);
                        continue;
                }
                json_t *v = json_loads(recs[i].value, 0, NULL);
                assert_non_null(v);
                assert_true(json_is_true(json_object_get(v, "final")));
                json_object_set_new(latest, recs[i].key, v);
        }
        int64_t sum = 0;
        const char *k;
        json_t *v;
        json_object_foreach(latest, k, v) {
                sum +=
                    jint(v, "complete", "count") + jint(v, "rejected", "count");
        }
        json_decref(latest);
        it_free_recs(recs, n);
        return sum;
}

static pid_t gen_spawn(const char *prefix, const char *log,
                       const char *const *extra) {
        char *argv[40];
        int n     = 0;
        argv[n++] = (char *)it_env_bin("KPAY_GEN_BIN");
        argv[n++] = "-b";
        argv[n++] = (char *)it_bootstrap();
        argv[n++] = "--topic-prefix";
        argv[n++] = (char *)prefix;
        argv[n++] = "--accounts";
        argv[n++] = "50";
        argv[n++] = "--quiet";
        for (; *extra && n < 39; extra++)
                argv[n++] = (char *)*extra;
        argv[n] = NULL;
        return it_spawn(argv, log);
}

/* Polls @p name on /metrics of @p d until it reaches @p min. */
static void wait_metric(it_daemon_t *d, const char *name, size_t min) {
        int64_t deadline = kp_wall_ms() + WAIT_MS;
        while (it_metric(d->endpoint, name) < (double)min) {
                if (it_exited(d->pid)) {
                        it_dump_log(d->log, 40);
                        fail_msg("%s exited", d->id);
                }
                if (kp_wall_ms() > deadline)
                        fail_msg("%s below %zu", name, min);
                kp_sleep_ms(100);
        }
}

static int cmp64(const void *a, const void *b) {
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
        return x < y ? -1 : x > y;
}

/* ------------------------------------------------------------------------
 * Exactly once under SIGKILL, and p99 against kpay-gen's own measurement.
 */

static void test_exact_under_kill(void **state) {
        (void)state;
        char prefix[64], log[320], lat[320];
        it_daemon_t inflight, account, metrics;
        it_unique_prefix(prefix, sizeof(prefix), "metrics-exact");
        assert_int_equal(it_admin_topics(prefix, PARTITIONS), 0);
        it_daemon_init(&inflight, "KPAY_INFLIGHT_BIN", root, "inflight");
        it_daemon_init(&account, "KPAY_ACCOUNT_BIN", root, "account");
        it_daemon_init(&metrics, "KPAY_METRICS_BIN", root, "m-exact");
        proc_start(&inflight, prefix);
        proc_start(&account, prefix);
        metrics_start(&metrics, prefix);
        it_daemon_wait_ready(&inflight, 90000);
        it_daemon_wait_ready(&account, 90000);
        it_daemon_wait_ready(&metrics, 90000);
        int64_t t_begin = kp_wall_ms() - 5000;

        /* Fund the accounts first; B, the first second after every funding
         * outcome, separates them from the run that kpay-gen measures. */
        snprintf(log, sizeof(log), "%s/gen-fund.log", root);
        const char *fund[] = {"--fund", "--count", "10", "--wait", NULL};
        pid_t g            = gen_spawn(prefix, log, fund);
        if (it_wait_exit(g, WAIT_MS) != 0) {
                it_dump_log(log, 30);
                fail_msg("funding run failed");
        }
        int64_t max_ms;
        size_t funded = complete_records(prefix, &max_ms);
        assert_int_equal(funded, 60);
        int64_t B = (max_ms / 1000 + 1) * 1000;

        /* 20 s at 200/s; kpay-metrics is SIGKILLed once it has counted
         * 1,000 outcomes and restarted once 300 more are on the topic. */
        snprintf(log, sizeof(log), "%s/gen-run.log", root);
        snprintf(lat, sizeof(lat), "%s/latency.txt", root);
        const char *run[] = {
            "--rate",         "200", "--duration",     "20", "--wait",
            "--wait-timeout", "300", "--latency-file", lat,  NULL};
        g = gen_spawn(prefix, log, run);
        wait_metric(&metrics, "kpay_metrics_records_total{kind=\"outcome\"}",
                    funded + 1000);
        assert_int_equal(it_exited(g), 0); /* the kill hits the run */
        kill(metrics.pid, SIGKILL);
        assert_true(it_wait_exit(metrics.pid, 30000) == 128 + SIGKILL);
        size_t at_kill = complete_records(prefix, NULL);
        while (complete_records(prefix, NULL) < at_kill + 300) {
                if (it_exited(g)) {
                        it_dump_log(log, 30);
                        fail_msg("kpay-gen ended before the restart");
                }
                if (kp_wall_ms() > t_begin + WAIT_MS)
                        fail_msg("no progress while kpay-metrics was down");
                kp_sleep_ms(200);
        }
        metrics_start(&metrics, prefix);
        int rc = it_wait_exit(g, 300000);
        if (rc != 0) {
                it_dump_log(log, 30);
                fail_msg("kpay-gen exited %d", rc);
        }
        it_daemon_wait_ready(&metrics, 90000);

        /* Every outcome on the topic is counted exactly once: the sum of
         * the 1 s windows reaches the topic's count and never passes it. */
        size_t outcomes  = complete_records(prefix, NULL);
        int64_t deadline = kp_wall_ms() + WAIT_MS;
        totals_t t;
        for (;;) {
                json_t *r =
                    windows(&metrics, "1s", t_begin, kp_wall_ms() + 60000);
                t = sum_windows(r);
                json_decref(r);
                if (t.outcomes > (int64_t)outcomes)
                        fail_msg("windows count %" PRId64
                                 " outcomes, the topic "
                                 "holds %zu: counted twice",
                                 t.outcomes, outcomes);
                if (t.outcomes == (int64_t)outcomes && t.all_final)
                        break;
                if (kp_wall_ms() > deadline)
                        fail_msg("windows count %" PRId64
                                 " of %zu outcomes "
                                 "(all final: %d)",
                                 t.outcomes, outcomes, t.all_final);
                kp_sleep_ms(200);
        }
        assert_int_equal(t.invalid, 0);
        fprintf(stderr,
                "exact: %zu outcomes in %zu windows, %" PRId64 " late\n",
                outcomes, t.windows, t.late);
        /* Outcomes in more than one window (the sum crossed windows). How
         * many of the 20 s hold one depends on the machine: on a busy one
         * the pipeline stalls and its outcomes come in bursts (fewer than 20
         * were seen at a load average of 60), so ">= 20" was a timing
         * bound. */
        assert_true(t.windows >= 2);
        /* The minute windows agree. */
        json_t *r = windows(&metrics, "1m", t_begin, kp_wall_ms() + 60000);
        t         = sum_windows(r);
        json_decref(r);
        assert_int_equal(t.outcomes, (int64_t)outcomes);
        /* And so do the final windows on kpay.metrics.windows (amended
         * ones replace their first emission). */
        deadline = kp_wall_ms() + WAIT_MS;
        int64_t on_topic;
        while ((on_topic = topic_window_outcomes(prefix, "1s/")) !=
               (int64_t)outcomes) {
                if (on_topic > (int64_t)outcomes || kp_wall_ms() > deadline)
                        fail_msg("kpay.metrics.windows counts %" PRId64
                                 " of %zu",
                                 on_topic, outcomes);
                kp_sleep_ms(200);
        }

        /* p99 of the windows since B against kpay-gen's file. */
        FILE *f = fopen(lat, "r");
        assert_non_null(f);
        size_t n = 0, cap = 8192;
        int64_t *v = malloc(cap * sizeof(*v)), cms, ms;
        while (fscanf(f, "%" SCNd64 " %" SCNd64, &cms, &ms) == 2) {
                if (cms < B)
                        continue;
                if (n == cap)
                        v = realloc(v, (cap *= 2) * sizeof(*v));
                v[n++] = ms;
        }
        fclose(f);
        assert_true(n >= 3000);
        qsort(v, n, sizeof(*v), cmp64);
        int64_t want = v[(size_t)ceil(0.99 * (double)n) - 1];
        kp_hist_t h, one;
        kp_hist_init(&h);
        r = windows(&metrics, "1s", B, kp_wall_ms() + 60000);
        size_t i;
        json_t *w;
        json_array_foreach(json_object_get(r, "windows"), i, w) {
                char err[256];
                kp_hist_init(&one);
                json_t *e2e =
                    json_object_get(json_object_get(w, "latency_ms"), "e2e");
                assert_int_equal(
                    kp_hist_from_json(json_object_get(e2e, "histogram"), &one,
                                      err, sizeof(err)),
                    KP_OK);
                assert_int_equal(kp_hist_merge(&h, &one), KP_OK);
                kp_hist_clear(&one);
        }
        json_decref(r);
        int64_t got = kp_hist_quantile(&h, 0.99);
        fprintf(stderr,
                "p99: kpay-metrics %" PRId64 " ms, kpay-gen %" PRId64
                " ms (%zu payments)\n",
                got, want, n);
        assert_int_equal(h.count, (int64_t)n);
        assert_true(fabs((double)(got - want)) <= 0.02 * (double)want);
        kp_hist_clear(&h);
        free(v);

        it_daemon_stop(&metrics);
        it_daemon_stop(&account);
        it_daemon_stop(&inflight);
}

/* ------------------------------------------------------------------------
 * Closing with no traffic, and bad input.
 */

static void outcome_json(char *buf, size_t size, const char *id,
                         const char *currency, int64_t amount, int64_t created,
                         int64_t complete, const char *reason) {
        snprintf(buf, size,
                 "{\"v\":1,\"id\":\"%s\",\"from\":\"a\",\"to\":\"b\","
                 "\"amount\":%" PRId64
                 ",\"currency\":\"%s\",\"state\":\"%s\","
                 "\"reason\":%s%s%s,\"created_ms\":%" PRId64
                 ",\"inflight_ms\":%" PRId64 ",\"complete_ms\":%" PRId64
                 ",\"origin_partition\":null,\"debit_ms\":%" PRId64 "}",
                 id, amount, currency, reason ? "REJECTED" : "COMPLETE",
                 reason ? "\"" : "", reason ? reason : "null",
                 reason ? "\"" : "", created, created + 1, complete,
                 created + 2);
}

static void produce_dlq(rd_kafka_t *rk, const char *topic_name,
                        const char *error, const char *service) {
        rd_kafka_headers_t *h = rd_kafka_headers_new(2);
        if (error)
                rd_kafka_header_add(h, "kpay-error", -1, error, -1);
        if (service)
                rd_kafka_header_add(h, "kpay-service", -1, service, -1);
        rd_kafka_resp_err_t err = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(topic_name), RD_KAFKA_V_KEY("k", 1),
            RD_KAFKA_V_VALUE("garbage", 7), RD_KAFKA_V_HEADERS(h),
            RD_KAFKA_V_END);
        if (err) {
                rd_kafka_headers_destroy(h);
                fail_msg("produce: %s", rd_kafka_err2str(err));
        }
}

static void test_closing_and_bad_input(void **state) {
        (void)state;
        char prefix[64], complete[256], dlq[256], buf[512];
        it_daemon_t metrics;
        it_unique_prefix(prefix, sizeof(prefix), "metrics-close");
        assert_int_equal(it_admin_topics(prefix, PARTITIONS), 0);
        topic(complete, sizeof(complete), prefix, KP_TOPIC_COMPLETE);
        topic(dlq, sizeof(dlq), prefix, KP_TOPIC_DLQ);
        it_daemon_init(&metrics, "KPAY_METRICS_BIN", root, "m-close");
        metrics_start(&metrics, prefix);
        it_daemon_wait_ready(&metrics, 90000);

        /* Three outcomes in one second a few seconds ahead, so that they
         * are counted before it ends; then no traffic at all. */
        int64_t now    = kp_wall_ms();
        int64_t ahead  = (now / 1000 + 5) * 1000 + 300;
        rd_kafka_t *rk = it_producer();
        for (int i = 0; i < 3; i++) {
                char id[32];
                snprintf(id, sizeof(id), "c-%d", i);
                outcome_json(buf, sizeof(buf), id, "USD", 100, ahead - 40,
                             ahead + i, NULL);
                it_produce(rk, complete, -1, id, buf);
        }
        /* Bad input, counted under invalid now. */
        static const char *const bad[][2] = {
            {"not json", "not_json"},
            {"{\"v\":1,\"id\":\"b1\",\"from\":\"a\",\"to\":\"b\",\"amount\":5,"
             "\"state\":\"COMPLETE\",\"created_ms\":5}",
             "missing_time"},
            {"{\"v\":1,\"id\":\"b2\",\"from\":\"a\",\"to\":\"b\",\"amount\":5,"
             "\"state\":\"COMPLETE\",\"created_ms\":-5,\"complete_ms\":9}",
             "negative_time"},
            {"{\"v\":1,\"id\":\"b3\",\"from\":\"a\",\"to\":\"b\",\"amount\":5,"
             "\"state\":\"WHATEVER\",\"created_ms\":5,\"complete_ms\":9}",
             "wrong_state"},
            {"{\"v\":1,\"id\":\"b4\",\"from\":\"a\",\"to\":\"b\",\"amount\":5,"
             "\"state\":\"INCOMING\",\"created_ms\":5,\"complete_ms\":9}",
             "wrong_state"},
            {"{\"v\":1,\"id\":\"b5\",\"from\":\"a\",\"to\":\"b\",\"amount\":0,"
             "\"state\":\"COMPLETE\",\"created_ms\":5,\"complete_ms\":9}",
             "invalid_amount"},
            {"{\"v\":9,\"id\":\"b6\"}", "unknown_version"},
            {"[1]", "not_object"},
        };
        const size_t nbad = sizeof(bad) / sizeof(bad[0]);
        for (size_t i = 0; i < nbad; i++)
                it_produce(rk, complete, -1, "bad", bad[i][0]);
        /* A time in the future. */
        outcome_json(buf, sizeof(buf), "b7", "USD", 5, now, now + 3600 * 1000,
                     NULL);
        it_produce(rk, complete, -1, "b7", buf);
        /* Older than every window kept (7 days of minutes). */
        outcome_json(buf, sizeof(buf), "b8", "USD", 5,
                     now - INT64_C(8) * 86400000 - 5,
                     now - INT64_C(8) * 86400000, NULL);
        it_produce(rk, complete, -1, "b8", buf);
        produce_dlq(rk, dlq, "not_json", "inflight");
        produce_dlq(rk, dlq, "not_json", "account");
        produce_dlq(rk, dlq, NULL, NULL);
        it_producer_close(rk);

        /* The window of the three closes once the wall clock passes its
         * end plus the grace period, with no traffic (the delay after that
         * is measured by bench/metrics-close.sh). */
        int64_t start = ahead - ahead % 1000, deadline = kp_wall_ms() + WAIT_MS;
        json_t *w = NULL;
        for (;;) {
                json_t *r = windows(&metrics, "1s", start, start + 1000);
                json_t *a = json_object_get(r, "windows");
                if (json_array_size(a) == 1 &&
                    json_is_true(
                        json_object_get(json_array_get(a, 0), "final"))) {
                        w = json_incref(json_array_get(a, 0));
                        json_decref(r);
                        break;
                }
                json_decref(r);
                if (kp_wall_ms() > deadline)
                        fail_msg("window %" PRId64 " never final", start);
                kp_sleep_ms(50);
        }
        int64_t closed = jint(w, "closed_ms", NULL);
        fprintf(stderr,
                "closing: window end + grace %" PRId64 ", closed %" PRId64
                " ms after\n",
                start + 1000 + GRACE_MS, closed - (start + 1000 + GRACE_MS));
        assert_int_equal(jint(w, "complete", "count"), 3);
        assert_int_equal(jint(w, "late", NULL), 0);
        assert_true(closed >= start + 1000 + GRACE_MS);
        json_decref(w);

        /* Every bad record is counted under its cause, none lost. */
        deadline = kp_wall_ms() + WAIT_MS;
        totals_t t;
        json_t *r = NULL;
        for (;;) {
                r = windows(&metrics, "1m", now - 120000, now + 120000);
                t = sum_windows(r);
                if (t.invalid == (int64_t)nbad + 2 && t.dlq == 3)
                        break;
                json_decref(r);
                if (t.invalid > (int64_t)nbad + 2 || t.dlq > 3 ||
                    kp_wall_ms() > deadline)
                        fail_msg("invalid %" PRId64 ", dead letters %" PRId64,
                                 t.invalid, t.dlq);
                kp_sleep_ms(100);
        }
        json_t *causes = json_object(), *errs = json_object(),
               *svcs = json_object();
        size_t i;
        json_array_foreach(json_object_get(r, "windows"), i, w) {
                const char *k;
                json_t *v;
                json_t *src[3] = {
                    json_object_get(json_object_get(w, "invalid"), "by_cause"),
                    json_object_get(json_object_get(w, "dead_letters"),
                                    "by_error"),
                    json_object_get(json_object_get(w, "dead_letters"),
                                    "by_service")};
                json_t *dst[3] = {causes, errs, svcs};
                for (int s = 0; s < 3; s++)
                        json_object_foreach(src[s], k, v) {
                                json_int_t old = json_integer_value(
                                    json_object_get(dst[s], k));
                                json_object_set_new(
                                    dst[s], k,
                                    json_integer(old + json_integer_value(v)));
                        }
        }
        json_decref(r);
        for (size_t b = 0; b < nbad; b++) {
                json_int_t want = 0;
                for (size_t c = 0; c < nbad; c++)
                        want += !strcmp(bad[c][1], bad[b][1]);
                assert_int_equal(
                    json_integer_value(json_object_get(causes, bad[b][1])),
                    want);
        }
        assert_int_equal(
            json_integer_value(json_object_get(causes, "future_time")), 1);
        assert_int_equal(json_integer_value(json_object_get(causes, "too_old")),
                         1);
        assert_int_equal(json_integer_value(json_object_get(errs, "not_json")),
                         2);
        assert_int_equal(json_integer_value(json_object_get(errs, "unknown")),
                         1);
        assert_int_equal(json_integer_value(json_object_get(svcs, "inflight")),
                         1);
        json_decref(causes);
        json_decref(errs);
        json_decref(svcs);
        /* Alive, and nothing of it went to the DLQ. */
        assert_int_equal(it_http_get(metrics.endpoint, "/healthz", NULL), 200);
        it_rec_t *recs;
        size_t ndlq = it_read_all(dlq, "read_committed", &recs);
        it_free_recs(recs, ndlq);
        assert_int_equal(ndlq, 3);
        it_daemon_stop(&metrics);
}

/* ------------------------------------------------------------------------
 * A longer grace period after a restart (issue 10): the closing key of a
 * window opened before it was written at end + the old grace; it must not
 * make the window skip its closing.
 */

#define GRACE_BEFORE_MS 8000
#define GRACE_AFTER_MS  20000

static void metrics_start_grace(it_daemon_t *d, const char *prefix,
                                int64_t grace_ms) {
        char g[24];
        snprintf(g, sizeof(g), "%" PRId64, grace_ms);
        const char *extra[] = {"--state-dir", d->state,     "--partitions",
                               "4",           "--grace-ms", g,
                               NULL};
        it_daemon_spawn(d, prefix, extra);
}

/* The 1 s window at @p start (NULL while no partition has it). */
static json_t *one_window(const it_daemon_t *d, int64_t start) {
        json_t *r = windows(d, "1s", start, start + 1000);
        json_t *a = json_object_get(r, "windows");
        json_t *w =
            json_array_size(a) == 1 ? json_incref(json_array_get(a, 0)) : NULL;
        json_decref(r);
        return w;
}

static void test_grace_raised_restart(void **state) {
        (void)state;
        char prefix[64], complete[256], buf[512];
        it_daemon_t metrics;
        it_unique_prefix(prefix, sizeof(prefix), "metrics-grace");
        assert_int_equal(it_admin_topics(prefix, PARTITIONS), 0);
        topic(complete, sizeof(complete), prefix, KP_TOPIC_COMPLETE);
        it_daemon_init(&metrics, "KPAY_METRICS_BIN", root, "m-grace");
        metrics_start_grace(&metrics, prefix, GRACE_BEFORE_MS);
        it_daemon_wait_ready(&metrics, 90000);

        /* One outcome in the next second but one; committed (the query
         * answers committed state) under the short grace period. */
        int64_t ahead  = (kp_wall_ms() / 1000 + 2) * 1000 + 300;
        int64_t start  = ahead - ahead % 1000;
        rd_kafka_t *rk = it_producer();
        outcome_json(buf, sizeof(buf), "g-1", "USD", 100, ahead - 40, ahead,
                     NULL);
        it_produce(rk, complete, -1, "g-1", buf);
        it_producer_close(rk);
        int64_t deadline = kp_wall_ms() + WAIT_MS;
        json_t *w;
        while (!(w = one_window(&metrics, start))) {
                if (kp_wall_ms() > deadline)
                        fail_msg("window %" PRId64 " never counted", start);
                kp_sleep_ms(50);
        }
        int was_final = json_is_true(json_object_get(w, "final"));
        json_decref(w);
        if (was_final)
                skip(); /* closed before the restart: nothing to check */
        /* Restarted with a longer grace period. */
        kill(metrics.pid, SIGKILL);
        assert_true(it_wait_exit(metrics.pid, 30000) == 128 + SIGKILL);
        metrics_start_grace(&metrics, prefix, GRACE_AFTER_MS);
        it_daemon_wait_ready(&metrics, 90000);
        /* The window becomes final, and not before its end plus the grace
         * period now in force. */
        deadline = kp_wall_ms() + GRACE_AFTER_MS + WAIT_MS;
        for (;;) {
                w = one_window(&metrics, start);
                if (w && json_is_true(json_object_get(w, "final")))
                        break;
                json_decref(w);
                if (kp_wall_ms() > deadline)
                        fail_msg("window %" PRId64
                                 " never final after the restart",
                                 start);
                kp_sleep_ms(100);
        }
        int64_t closed = jint(w, "closed_ms", NULL);
        fprintf(stderr,
                "grace raised: window end + new grace %" PRId64
                ", closed %" PRId64 " ms after\n",
                start + 1000 + GRACE_AFTER_MS,
                closed - (start + 1000 + GRACE_AFTER_MS));
        assert_int_equal(jint(w, "complete", "count"), 1);
        assert_true(closed >= start + 1000 + GRACE_AFTER_MS);
        json_decref(w);
        it_daemon_stop(&metrics);
}

/* ------------------------------------------------------------------------
 * One instance and two, on the same records.
 */

#define MERGE_RECORDS 400

static void test_two_instances_merge(void **state) {
        (void)state;
        char px[64], py[64], cx[256], cy[256], buf[512], id[32];
        it_daemon_t one, two[2];
        it_unique_prefix(px, sizeof(px), "metrics-one");
        it_unique_prefix(py, sizeof(py), "metrics-two");
        assert_int_equal(it_admin_topics(px, PARTITIONS), 0);
        assert_int_equal(it_admin_topics(py, PARTITIONS), 0);
        topic(cx, sizeof(cx), px, KP_TOPIC_COMPLETE);
        topic(cy, sizeof(cy), py, KP_TOPIC_COMPLETE);
        it_daemon_init(&one, "KPAY_METRICS_BIN", root, "m-one");
        it_daemon_init(&two[0], "KPAY_METRICS_BIN", root, "m-two-a");
        it_daemon_init(&two[1], "KPAY_METRICS_BIN", root, "m-two-b");
        metrics_start(&one, px);
        metrics_start(&two[0], py);
        metrics_start(&two[1], py);
        it_daemon_wait_ready(&one, 90000);
        it_daemon_wait_ready(&two[0], 90000);
        it_daemon_wait_ready(&two[1], 90000);
        /* Both of the two own partitions of the complete topic. */
        int64_t deadline = kp_wall_ms() + WAIT_MS;
        for (;;) {
                json_t *a  = windows(&two[0], "1s", 0, 1000);
                json_t *b  = windows(&two[1], "1s", 0, 1000);
                int64_t oa = jint(a, "owned_partitions", NULL);
                int64_t ob = jint(b, "owned_partitions", NULL);
                json_decref(a);
                json_decref(b);
                if (oa > 0 && ob > 0 && oa + ob == PARTITIONS)
                        break;
                if (kp_wall_ms() > deadline)
                        fail_msg("the two own %" PRId64 " and %" PRId64, oa,
                                 ob);
                kp_sleep_ms(200);
        }

        /* The same records to both, over two minutes in the past. */
        int64_t base   = (kp_wall_ms() / 60000 - 3) * 60000;
        unsigned seed  = 7;
        rd_kafka_t *rk = it_producer();
        for (int i = 0; i < MERGE_RECORDS; i++) {
                int64_t complete = base + (int64_t)(rand_r(&seed) % 120000);
                int64_t ms       = 1 + (int64_t)(rand_r(&seed) % 5000);
                static const char *const reasons[] = {"insufficient_funds",
                                                      "account_frozen"};
                snprintf(id, sizeof(id), "m-%d", i);
                outcome_json(buf, sizeof(buf), id, i % 3 ? "USD" : "EUR",
                             1 + (int64_t)(rand_r(&seed) % 100000),
                             complete - ms, complete,
                             i % 9 == 0 ? reasons[i % 2] : NULL);
                it_produce(rk, cx, -1, id, buf);
                it_produce(rk, cy, -1, id, buf);
        }
        it_producer_close(rk);

        const char *sizes[] = {"1s", "1m"};
        int64_t from = base - 60000, to = base + 240000;
        for (int s = 0; s < 2; s++) {
                json_t *rx = NULL, *ra = NULL, *rb = NULL;
                deadline = kp_wall_ms() + WAIT_MS;
                for (;;) {
                        rx          = windows(&one, sizes[s], from, to);
                        ra          = windows(&two[0], sizes[s], from, to);
                        rb          = windows(&two[1], sizes[s], from, to);
                        totals_t tx = sum_windows(rx), ta = sum_windows(ra),
                                 tb = sum_windows(rb);
                        if (tx.outcomes == MERGE_RECORDS && tx.all_final &&
                            ta.outcomes + tb.outcomes == MERGE_RECORDS &&
                            ta.all_final && tb.all_final)
                                break;
                        json_decref(rx);
                        json_decref(ra);
                        json_decref(rb);
                        if (kp_wall_ms() > deadline)
                                fail_msg("%s: one counts %" PRId64
                                         ", the two %" PRId64 " + %" PRId64,
                                         sizes[s], tx.outcomes, ta.outcomes,
                                         tb.outcomes);
                        kp_sleep_ms(200);
                }
                /* Window for window: merge(a, b) == one, everything but
                 * when each instance closed it. */
                size_t i, j, compared = 0;
                json_t *wx;
                json_array_foreach(json_object_get(rx, "windows"), i, wx) {
                        int64_t start = jint(wx, "start_ms", NULL);
                        metrics_window_t m, x;
                        char err[256];
                        assert_int_equal(
                            metrics_window_from_json(wx, &x, err, sizeof(err)),
                            KP_OK);
                        metrics_window_init(&m, x.size, start);
                        m.partitions      = 0;
                        m.final           = 1;
                        json_t *halves[2] = {ra, rb};
                        for (int h = 0; h < 2; h++) {
                                json_t *wy;
                                json_array_foreach(
                                    json_object_get(halves[h], "windows"), j,
                                    wy) {
                                        if (jint(wy, "start_ms", NULL) != start)
                                                continue;
                                        metrics_window_t y;
                                        assert_int_equal(
                                            metrics_window_from_json(
                                                wy, &y, err, sizeof(err)),
                                            KP_OK);
                                        assert_int_equal(
                                            metrics_window_merge(&m, &y),
                                            KP_OK);
                                        metrics_window_clear(&y);
                                }
                        }
                        m.closed_ms = x.closed_ms = 0;
                        char *ex = metrics_window_encode(&x, 0, NULL);
                        char *em = metrics_window_encode(&m, 0, NULL);
                        assert_string_equal(em, ex);
                        kp_free(ex);
                        kp_free(em);
                        metrics_window_clear(&m);
                        metrics_window_clear(&x);
                        compared++;
                }
                fprintf(stderr, "merge %s: %zu windows equal\n", sizes[s],
                        compared);
                assert_true(compared >= (s == 0 ? 100 : 2));
                json_decref(rx);
                json_decref(ra);
                json_decref(rb);
        }
        assert_int_equal(topic_window_outcomes(px, "1m/"), MERGE_RECORDS);
        it_daemon_stop(&one);
        it_daemon_stop(&two[0]);
        it_daemon_stop(&two[1]);
}

static int setup(void **state) {
        (void)state;
        snprintf(root, sizeof(root), "/tmp/kpay-it-metrics-XXXXXX");
        if (!mkdtemp(root))
                return -1;
        return 0;
}

static int teardown(void **state) {
        (void)state;
        it_reap_all();
        it_daemons_teardown(NULL, 0, root);
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_closing_and_bad_input),
            cmocka_unit_test(test_grace_raised_restart),
            cmocka_unit_test(test_two_instances_merge),
            cmocka_unit_test(test_exact_under_kill),
        };
        /* KPAY_IT_FILTER=test_exact_under_kill runs one test. */
        if (getenv("KPAY_IT_FILTER"))
                cmocka_set_test_filter(getenv("KPAY_IT_FILTER"));
        return cmocka_run_group_tests(tests, setup, teardown);
}
