/* Unit tests of kpay-metrics' logic (metrics.h): classifying records,
 * windows (assignment, lateness, closing, merging, JSON), the slowest
 * payments and the SLA verdicts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "kpay/kp_json.h"
#include "kpay/kp_mem.h"
#include "metrics.h"

#define T0    INT64_C(1699999980000) /* a whole minute */
#define GRACE 2000

static const metrics_conf_t conf = {
    .grace_ms      = GRACE,
    .retention_ms  = {3600000, 604800000},
    .max_future_ms = 60000,
    .slowest_n     = 3,
};

/* A COMPLETE (or REJECTED with @p reason) created at @p created that took
 * @p ms, with every stage stamp. */
static void mkpay(kp_payment_t *p, const char *id, int64_t created, int64_t ms,
                  const char *reason) {
        memset(p, 0, sizeof(*p));
        p->v = 1;
        snprintf(p->id, sizeof(p->id), "%s", id);
        snprintf(p->from, sizeof(p->from), "alice");
        snprintf(p->to, sizeof(p->to), "bob");
        snprintf(p->currency, sizeof(p->currency), "USD");
        p->amount = 100;
        p->state  = reason ? KP_PAY_REJECTED : KP_PAY_COMPLETE;
        snprintf(p->reason, sizeof(p->reason), "%s", reason ? reason : "");
        p->created_ms       = created;
        p->inflight_ms      = created + 1;
        p->debit_ms         = created + 3;
        p->credit_ms        = created + ms;
        p->complete_ms      = created + ms;
        p->origin_partition = 0;
}

static void classify(const kp_payment_t *p, int64_t now, metrics_event_t *ev) {
        metrics_classify_payment(p, KP_PAY_E_OK, now, &conf, ev);
}

static void test_keys(void **state) {
        (void)state;
        char k[METRICS_KEY_SIZE], c[METRICS_KEY_SIZE];
        metrics_size_t size;
        int64_t start, due;
        const char *wk;
        size_t wklen;
        size_t n = metrics_window_key(k, sizeof(k), METRICS_1M, T0);
        assert_string_equal(k, "m:001699999980000");
        assert_int_equal(metrics_window_key_parse(k, n, &size, &start), 0);
        assert_int_equal(size, METRICS_1M);
        assert_int_equal(start, T0);
        assert_int_equal(metrics_window_key_parse("x:1", 3, &size, &start), -1);
        n = metrics_close_key(c, sizeof(c), T0 + 3000, k);
        assert_int_equal(metrics_close_key_parse(c, n, &due, &wk, &wklen), 1);
        assert_int_equal(due, T0 + 3000);
        assert_int_equal(wklen, strlen(k));
        assert_memory_equal(wk, k, wklen);
        assert_int_equal(
            metrics_close_key_parse(k, strlen(k), &due, &wk, &wklen), 0);
        assert_int_equal(metrics_close_key_parse("c:12", 4, &due, &wk, &wklen),
                         -1);
        /* Keys sort by time. */
        char a[METRICS_KEY_SIZE], b[METRICS_KEY_SIZE];
        metrics_window_key(a, sizeof(a), METRICS_1S, 999);
        metrics_window_key(b, sizeof(b), METRICS_1S, T0);
        assert_true(strcmp(a, b) < 0);
        assert_int_equal(metrics_window_start(METRICS_1S, T0 + 1999),
                         T0 + 1000);
        assert_int_equal(metrics_window_start(METRICS_1M, T0 + 59999), T0);
        assert_int_equal(metrics_size_parse("1m"), METRICS_1M);
        assert_int_equal(metrics_size_parse("1h"), -1);
}

static void test_classify(void **state) {
        (void)state;
        kp_payment_t p;
        metrics_event_t ev;
        mkpay(&p, "p-1", T0, 40, NULL);
        classify(&p, T0 + 100, &ev);
        assert_int_equal(ev.kind, METRICS_OUTCOME);
        assert_int_equal(ev.event_ms, T0 + 40);
        assert_int_equal(ev.lat[METRICS_LAT_E2E], 40);
        assert_int_equal(ev.lat[METRICS_LAT_GATEWAY], 39);
        assert_int_equal(ev.lat[METRICS_LAT_INTAKE], 1);
        assert_int_equal(ev.lat[METRICS_LAT_DEBIT], 2);
        assert_int_equal(ev.lat[METRICS_LAT_CREDIT], 37);
        /* Without stamps: no stages; a stamp before its predecessor: a
         * skewed stage, not recorded. */
        p.debit_ms  = -1;
        p.credit_ms = -1;
        classify(&p, T0 + 100, &ev);
        assert_int_equal(ev.lat[METRICS_LAT_DEBIT], -1);
        assert_int_equal(ev.lat[METRICS_LAT_CREDIT], -1);
        assert_int_equal(ev.skewed, 0);
        p.inflight_ms = T0 - 5;
        classify(&p, T0 + 100, &ev);
        assert_int_equal(ev.lat[METRICS_LAT_INTAKE], -1);
        assert_int_equal(ev.skewed, 1);
        /* Rejected: the reason, "other" when none. */
        mkpay(&p, "p-2", T0, 5, "insufficient_funds");
        classify(&p, T0 + 100, &ev);
        assert_int_equal(ev.complete, 0);
        assert_string_equal(ev.reason, "insufficient_funds");
        p.reason[0] = '\0';
        classify(&p, T0 + 100, &ev);
        assert_string_equal(ev.reason, "other");

        /* Bad input: counted as invalid by cause, placed at now. */
        static const struct {
                const char *cause;
                int field;
                int64_t value;
        } bad[] = {
            {"missing_time", 0, 0},           {"missing_time", 1, -1},
            {"negative_time", 0, -5},         {"negative_time", 1, -7},
            {"future_time", 1, T0 + 3600000}, {"negative_latency", 1, T0 - 1},
            {"invalid_amount", 2, 0},         {"invalid_amount", 2, -100},
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                mkpay(&p, "p-3", T0, 5, NULL);
                if (bad[i].field == 0)
                        p.created_ms = bad[i].value;
                else if (bad[i].field == 1)
                        p.complete_ms = bad[i].value;
                else
                        p.amount = bad[i].value;
                classify(&p, T0 + 100, &ev);
                assert_int_equal(ev.kind, METRICS_INVALID);
                assert_string_equal(ev.cause, bad[i].cause);
                assert_int_equal(ev.event_ms, T0 + 100);
        }
        mkpay(&p, "p-4", T0, 5, NULL);
        snprintf(p.currency, sizeof(p.currency), "usd");
        classify(&p, T0 + 100, &ev);
        assert_string_equal(ev.cause, "invalid_currency");
        mkpay(&p, "p-5", T0, 5, NULL);
        p.state = KP_PAY_STATE_UNKNOWN;
        classify(&p, T0 + 100, &ev);
        assert_string_equal(ev.cause, "wrong_state");
        p.state = KP_PAY_CONFIRMED;
        classify(&p, T0 + 100, &ev);
        assert_string_equal(ev.cause, "wrong_state");
        metrics_classify_payment(NULL, KP_PAY_E_NOT_JSON, T0, &conf, &ev);
        assert_int_equal(ev.kind, METRICS_INVALID);
        assert_string_equal(ev.cause, "not_json");

        /* Dead letters: by error and service; a bad timestamp is now. */
        metrics_classify_dead_letter("not_json", 8, "inflight", 8, T0 + 5,
                                     T0 + 10, &conf, &ev);
        assert_int_equal(ev.kind, METRICS_DEAD_LETTER);
        assert_int_equal(ev.event_ms, T0 + 5);
        assert_string_equal(ev.error, "not_json");
        assert_string_equal(ev.service, "inflight");
        metrics_classify_dead_letter(NULL, 0, "a\nb", 3, -1, T0 + 10, &conf,
                                     &ev);
        assert_int_equal(ev.event_ms, T0 + 10);
        assert_string_equal(ev.error, "unknown");
        assert_string_equal(ev.service, "a?b");
}

/* Assignment, lateness and closing of one window. */
static void test_window_closing(void **state) {
        (void)state;
        kp_payment_t p;
        metrics_event_t ev;
        metrics_window_t w;
        mkpay(&p, "p-1", T0, 250, NULL);
        classify(&p, T0 + 300, &ev);
        int64_t start = metrics_window_start(METRICS_1S, ev.event_ms);
        assert_int_equal(start, T0);
        metrics_window_init(&w, METRICS_1S, start);
        assert_int_equal(metrics_window_add(&w, &ev, T0 + 300, GRACE), KP_OK);
        assert_int_equal(w.complete_count, 1);
        assert_true(kp_money_get(&w.complete_amount, "USD") == 100);
        assert_int_equal(w.late, 0);
        assert_int_equal(w.active_mask, 1);
        /* Not due before end + grace, due at it. */
        assert_int_equal(metrics_window_due(&w, T0 + 1000 + GRACE - 1, GRACE),
                         METRICS_CLOSE_NOTHING);
        /* A record inside the grace period is not late. */
        assert_int_equal(
            metrics_window_add(&w, &ev, T0 + 1000 + GRACE - 1, GRACE), KP_OK);
        assert_int_equal(w.late, 0);
        assert_int_equal(metrics_window_due(&w, T0 + 1000 + GRACE, GRACE),
                         METRICS_CLOSE_FINAL);
        metrics_window_emitted(&w, T0 + 1000 + GRACE + 7);
        assert_true(w.final);
        assert_int_equal(w.closed_ms, T0 + 1000 + GRACE + 7);
        assert_int_equal(metrics_window_due(&w, T0 + 99999, GRACE),
                         METRICS_CLOSE_NOTHING);
        /* A later record is counted (not lost) as late and amends it. */
        assert_int_equal(metrics_window_add(&w, &ev, T0 + 1000 + GRACE, GRACE),
                         KP_OK);
        assert_int_equal(w.complete_count, 3);
        assert_int_equal(w.late, 1);
        assert_int_equal(metrics_window_due(&w, T0 + 99999, GRACE),
                         METRICS_CLOSE_AMEND);
        metrics_window_emitted(&w, T0 + 99999);
        assert_int_equal(w.closed_ms, T0 + 1000 + GRACE + 7); /* the first */
        assert_int_equal(metrics_window_due(&w, T0 + 99999, GRACE),
                         METRICS_CLOSE_NOTHING);
        metrics_window_clear(&w);

        /* Retention: a window ended before now - retention is expired. */
        mkpay(&p, "p-2", T0, 5, NULL);
        classify(&p, T0 + 10, &ev);
        assert_false(
            metrics_event_expired(&ev, METRICS_1S, T0 + 3600000, &conf));
        assert_true(
            metrics_event_expired(&ev, METRICS_1S, T0 + 3601000, &conf));
        assert_false(
            metrics_event_expired(&ev, METRICS_1M, T0 + 3601000, &conf));
}

/* Windows of several partitions merge into what one partition holding
 * every record would have; the JSON round-trips. */
static void test_merge_and_json(void **state) {
        (void)state;
        metrics_window_t part[3], all, m, back;
        kp_payment_t p;
        metrics_event_t ev;
        char id[32], err[256];
        for (int i = 0; i < 3; i++)
                metrics_window_init(&part[i], METRICS_1M, T0);
        metrics_window_init(&all, METRICS_1M, T0);
        for (int i = 0; i < 600; i++) {
                snprintf(id, sizeof(id), "p-%d", i);
                mkpay(&p, id, T0 + i * 90, 5 + (i * 37) % 900,
                      i % 10 == 0 ? "insufficient_funds" : NULL);
                if (i % 7 == 0)
                        snprintf(p.currency, sizeof(p.currency), "EUR");
                classify(&p, T0 + 70000, &ev);
                if (ev.event_ms >= T0 + 60000)
                        continue;
                if (i % 50 == 0)
                        metrics_event_make_invalid(&ev, "missing_time");
                assert_int_equal(
                    metrics_window_add(&part[i % 3], &ev, T0 + 1000, GRACE),
                    KP_OK);
                assert_int_equal(
                    metrics_window_add(&all, &ev, T0 + 1000, GRACE), KP_OK);
        }
        metrics_classify_dead_letter("not_json", 8, "account", 7, T0 + 5,
                                     T0 + 10, &conf, &ev);
        assert_int_equal(metrics_window_add(&part[1], &ev, T0 + 1000, GRACE),
                         KP_OK);
        assert_int_equal(metrics_window_add(&all, &ev, T0 + 1000, GRACE),
                         KP_OK);
        /* EUR and USD are never added together. */
        assert_true(kp_money_get(&all.complete_amount, "EUR") > 0);
        assert_true(kp_money_get(&all.complete_amount, "USD") > 0);
        assert_true(kp_money_get(&all.complete_amount, "EUR") +
                        kp_money_get(&all.complete_amount, "USD") ==
                    (kp_i128_t)100 * all.complete_count);

        /* (p0 + p1) + p2 and p2 + (p1 + p0) both equal `all`. */
        metrics_window_init(&m, METRICS_1M, T0);
        m.partitions = 0;
        for (int i = 0; i < 3; i++)
                assert_int_equal(metrics_window_merge(&m, &part[i]), KP_OK);
        char *a        = metrics_window_encode(&m, 0, NULL);
        all.partitions = 3;
        char *b        = metrics_window_encode(&all, 0, NULL);
        assert_string_equal(a, b);
        kp_free(b);
        metrics_window_clear(&m);
        metrics_window_init(&m, METRICS_1M, T0);
        m.partitions = 0;
        for (int i = 2; i >= 0; i--)
                assert_int_equal(metrics_window_merge(&m, &part[i]), KP_OK);
        b = metrics_window_encode(&m, 0, NULL);
        assert_string_equal(a, b);
        kp_free(b);

        /* JSON round trip, the store's form too. */
        size_t len;
        char *s = metrics_window_encode(&m, METRICS_JSON_STORE, &len);
        assert_int_equal(metrics_window_decode(s, len, &back, err, sizeof(err)),
                         KP_OK);
        b = metrics_window_encode(&back, METRICS_JSON_STORE, NULL);
        assert_string_equal(s, b);
        kp_free(b);
        kp_free(s);
        metrics_window_clear(&back);
        kp_free(a);

        /* Another window does not merge. */
        metrics_window_t other;
        metrics_window_init(&other, METRICS_1S, T0);
        assert_int_equal(metrics_window_merge(&m, &other), KP_ERR_INVALID_ARG);
        metrics_window_clear(&other);
        /* Malformed JSON is refused. */
        static const char *const bad[] = {
            "",
            "[]",
            "{\"size\":\"1h\",\"start_ms\":0}",
            "{\"size\":\"1s\",\"start_ms\":5}",
            "{\"size\":\"1s\",\"start_ms\":1000}",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                assert_int_equal(metrics_window_decode(bad[i], strlen(bad[i]),
                                                       &back, err, sizeof(err)),
                                 KP_ERR_PARSE);
        for (int i = 0; i < 3; i++)
                metrics_window_clear(&part[i]);
        metrics_window_clear(&all);
        metrics_window_clear(&m);
}

/* Issue 10: amounts are 128 bits wide, so an outcome whose amount would
 * pass INT64_MAX in its window, or in a merge of windows, is still counted
 * as the outcome it is (not as invalid "overflow"). */
static void test_amounts_beyond_int64(void **state) {
        (void)state;
        metrics_window_t w[2], m, back;
        kp_payment_t p;
        metrics_event_t ev;
        char err[256];
        const kp_i128_t max = INT64_MAX;
        mkpay(&p, "p-1", T0, 5, NULL);
        p.amount = INT64_MAX;
        classify(&p, T0 + 10, &ev);
        for (int i = 0; i < 2; i++) {
                metrics_window_init(&w[i], METRICS_1S, T0);
                assert_int_equal(metrics_window_add(&w[i], &ev, T0 + 10, GRACE),
                                 KP_OK);
                assert_int_equal(metrics_window_add(&w[i], &ev, T0 + 10, GRACE),
                                 KP_OK);
                assert_int_equal(w[i].complete_count, 2);
                assert_int_equal(w[i].invalid_count, 0);
                assert_true(kp_money_get(&w[i].complete_amount, "USD") ==
                            2 * max);
        }
        /* The JSON holds the exact sum as a decimal string and reads back. */
        size_t len;
        char *s = metrics_window_encode(&w[0], METRICS_JSON_STORE, &len);
        assert_non_null(
            strstr(s, "\"amount\":{\"USD\":\"18446744073709551614\"}"));
        assert_int_equal(metrics_window_decode(s, len, &back, err, sizeof(err)),
                         KP_OK);
        assert_true(kp_money_get(&back.complete_amount, "USD") == 2 * max);
        metrics_window_clear(&back);
        kp_free(s);
        /* A merge across partitions or instances does not fail either. */
        metrics_window_init(&m, METRICS_1S, T0);
        m.partitions = 0;
        for (int i = 0; i < 2; i++)
                assert_int_equal(metrics_window_merge(&m, &w[i]), KP_OK);
        assert_int_equal(m.complete_count, 4);
        assert_true(kp_money_get(&m.complete_amount, "USD") == 4 * max);
        metrics_window_clear(&m);
        for (int i = 0; i < 2; i++)
                metrics_window_clear(&w[i]);
        /* A window stored before (amounts as JSON integers) still reads. */
        static const char legacy_amount[] = "{\"USD\":100}";
        json_error_t jerr;
        metrics_window_init(&m, METRICS_1S, T0);
        json_t *j = metrics_window_to_json(&m, METRICS_JSON_STORE);
        kp_json_set(json_object_get(j, "complete"), "amount",
                    json_loads(legacy_amount, 0, &jerr));
        assert_int_equal(metrics_window_from_json(j, &back, err, sizeof(err)),
                         KP_OK);
        assert_true(kp_money_get(&back.complete_amount, "USD") == 100);
        metrics_window_clear(&back);
        /* ... but a negative amount does not. */
        kp_json_set(json_object_get(j, "complete"), "amount",
                    json_loads("{\"USD\":\"-1\"}", 0, &jerr));
        assert_int_equal(metrics_window_from_json(j, &back, err, sizeof(err)),
                         KP_ERR_PARSE);
        json_decref(j);
        metrics_window_clear(&m);
        /* What can still overflow (a count) is counted as invalid
         * "overflow" by the caller: that path stays. */
        metrics_event_make_invalid(&ev, "overflow");
        metrics_window_init(&w[0], METRICS_1S, T0);
        assert_int_equal(metrics_window_add(&w[0], &ev, T0 + 10, GRACE), KP_OK);
        assert_int_equal(metrics_map_get(&w[0].invalid_by_cause, "overflow"),
                         1);
        metrics_window_clear(&w[0]);
}

/* Issue 10: currency maps are never capped, so more than
 * METRICS_MAP_MAX_KEYS currencies are never added together; count maps
 * keep a cap whose fold does not depend on the order of the records or of
 * the merges. */
static void test_maps(void **state) {
        (void)state;
        enum { NCUR = METRICS_MAP_MAX_KEYS + 36 };
        metrics_window_t part[2], m, back;
        kp_payment_t p;
        metrics_event_t ev;
        char id[32], err[256];
        for (int i = 0; i < 2; i++)
                metrics_window_init(&part[i], METRICS_1M, T0);
        for (int i = 0; i < NCUR; i++) {
                snprintf(id, sizeof(id), "p-%d", i);
                mkpay(&p, id, T0, 5, i % 2 ? "limit" : NULL);
                snprintf(p.currency, sizeof(p.currency), "%c%c%c", 'A' + i / 26,
                         'A' + i % 26, 'Z' - i % 26);
                p.amount = 1000 + i;
                classify(&p, T0 + 10, &ev);
                /* Currencies in opposite orders on the two partitions. */
                assert_int_equal(metrics_window_add(&part[i < NCUR / 2], &ev,
                                                    T0 + 10, GRACE),
                                 KP_OK);
        }
        for (int order = 0; order < 2; order++) {
                metrics_window_init(&m, METRICS_1M, T0);
                m.partitions = 0;
                for (int i = 0; i < 2; i++)
                        assert_int_equal(
                            metrics_window_merge(&m, &part[order ? 1 - i : i]),
                            KP_OK);
                size_t len;
                char *s = metrics_window_encode(&m, 0, &len);
                assert_int_equal(
                    metrics_window_decode(s, len, &back, err, sizeof(err)),
                    KP_OK);
                kp_free(s);
                metrics_window_t *v[] = {&m, &back};
                for (int k = 0; k < 2; k++) {
                        size_t ncur = v[k]->complete_amount.cnt +
                                      v[k]->rejected_amount.cnt;
                        assert_int_equal(ncur, NCUR);
                        for (int i = 0; i < NCUR; i++) {
                                char cur[4];
                                snprintf(cur, sizeof(cur), "%c%c%c",
                                         'A' + i / 26, 'A' + i % 26,
                                         'Z' - i % 26);
                                assert_true(
                                    kp_money_get(i % 2 ? &v[k]->rejected_amount
                                                       : &v[k]->complete_amount,
                                                 cur) == 1000 + i);
                        }
                }
                metrics_window_clear(&back);
                metrics_window_clear(&m);
        }
        for (int i = 0; i < 2; i++)
                metrics_window_clear(&part[i]);

        /* A count map keeps the METRICS_MAP_MAX_KEYS smallest keys and
         * "other" (also a key of its own), in whatever order they come. */
        enum { NKEY = METRICS_MAP_MAX_KEYS + 10 };
        metrics_map_t maps[4] = {{0}};
        char k[16];
        for (int i = 0; i < NKEY; i++) {
                int up = i, down = NKEY - 1 - i, mixed = (i * 31) % NKEY;
                snprintf(k, sizeof(k), "r%03d", up);
                assert_int_equal(metrics_map_add(&maps[0], k, 1), KP_OK);
                snprintf(k, sizeof(k), "r%03d", down);
                assert_int_equal(metrics_map_add(&maps[1], k, 1), KP_OK);
                snprintf(k, sizeof(k), "r%03d", mixed);
                /* the mixed order split over two maps, then merged */
                assert_int_equal(metrics_map_add(&maps[2 + i % 2], k, 1),
                                 KP_OK);
        }
        for (int i = 0; i < 3; i++)
                assert_int_equal(metrics_map_add(&maps[i], "other", 2), KP_OK);
        for (size_t i = 0; i < maps[3].n; i++)
                assert_int_equal(metrics_map_add(&maps[2], maps[3].kv[i].key,
                                                 maps[3].kv[i].v),
                                 KP_OK);
        for (int i = 0; i < 3; i++) {
                assert_int_equal(maps[i].n, METRICS_MAP_MAX_KEYS + 1);
                assert_int_equal(metrics_map_get(&maps[i], "other"), 12);
                for (int r = 0; r < METRICS_MAP_MAX_KEYS; r++) {
                        snprintf(k, sizeof(k), "r%03d", r);
                        assert_int_equal(metrics_map_get(&maps[i], k), 1);
                }
        }
        for (int i = 0; i < 4; i++)
                metrics_map_clear(&maps[i]);
}

/* Issue 10: a window's closing key was written at end + the grace period
 * of its first record; when the daemon restarts with a longer grace
 * period the key fires before the window is due, and is put back at the
 * new due time instead of being dropped (the window becomes final). */
static void test_grace_raised(void **state) {
        (void)state;
        kp_payment_t p;
        metrics_event_t ev;
        metrics_window_t w;
        const int64_t long_grace = 10000;
        mkpay(&p, "p-1", T0, 250, NULL);
        classify(&p, T0 + 300, &ev);
        metrics_window_init(&w, METRICS_1S, T0);
        assert_int_equal(metrics_window_add(&w, &ev, T0 + 300, GRACE), KP_OK);
        /* Written under GRACE: the closing key is due at end + GRACE. */
        assert_int_equal(metrics_window_next_due(&w, T0 + 300, GRACE),
                         T0 + 1000 + GRACE);
        /* It fires after a restart with the longer grace: not due yet, the
         * key moves to the new due time. */
        assert_int_equal(metrics_window_due(&w, T0 + 1000 + GRACE, long_grace),
                         METRICS_CLOSE_NOTHING);
        assert_int_equal(
            metrics_window_next_due(&w, T0 + 1000 + GRACE, long_grace),
            T0 + 1000 + long_grace);
        assert_int_equal(
            metrics_window_due(&w, T0 + 1000 + long_grace, long_grace),
            METRICS_CLOSE_FINAL);
        metrics_window_emitted(&w, T0 + 1000 + long_grace);
        /* Final with nothing new: no key is needed. */
        assert_int_equal(metrics_window_next_due(&w, T0 + 99999, long_grace),
                         -1);
        /* A late record: due at once. */
        assert_int_equal(metrics_window_add(&w, &ev, T0 + 99999, long_grace),
                         KP_OK);
        assert_int_equal(metrics_window_next_due(&w, T0 + 99999, long_grace),
                         T0 + 99999);
        metrics_window_clear(&w);
}

static void test_slowest(void **state) {
        (void)state;
        metrics_slowest_t s = {0}, t = {0}, back = {0};
        metrics_slow_t it;
        metrics_event_t ev;
        kp_payment_t p;
        char id[16], err[128];
        static const int lat[] = {50, 10, 300, 70, 300, 5};
        s.minute_ms            = T0;
        for (int i = 0; i < 6; i++) {
                snprintf(id, sizeof(id), "p-%d", i);
                mkpay(&p, id, T0, lat[i], NULL);
                classify(&p, T0 + 1000, &ev);
                metrics_slow_of(&ev, 2, &it);
                int changed = metrics_slowest_offer(&s, &it, 3);
                /* Each enters while the list has room or it is slower
                 * than the last; the 5 ms one does not. */
                assert_int_equal(changed, lat[i] != 5);
        }
        assert_int_equal(s.n, 3);
        assert_string_equal(s.items[0].id, "p-2"); /* 300, the smaller id */
        assert_string_equal(s.items[1].id, "p-4");
        assert_string_equal(s.items[2].id, "p-3");
        assert_int_equal(s.items[0].stage[METRICS_LAT_DEBIT], 2);
        /* The same payment again changes nothing. */
        assert_int_equal(metrics_slowest_offer(&s, &s.items[0], 3), 0);
        /* Merging keeps the N slowest of the union. */
        mkpay(&p, "q", T0, 999, NULL);
        classify(&p, T0 + 1000, &ev);
        metrics_slow_of(&ev, 5, &it);
        metrics_slowest_offer(&t, &it, 3);
        metrics_slowest_merge(&s, &t, 3);
        assert_string_equal(s.items[0].id, "q");
        assert_string_equal(s.items[2].id, "p-4");
        char *js = kp_json_dump(metrics_slowest_to_json(&s));
        assert_int_equal(
            metrics_slowest_decode(js, strlen(js), &back, err, sizeof(err)),
            KP_OK);
        assert_int_equal(back.n, 3);
        assert_string_equal(back.items[0].id, "q");
        assert_int_equal(back.items[0].partition, 5);
        assert_int_equal(back.items[1].stage[METRICS_LAT_CREDIT],
                         s.items[1].stage[METRICS_LAT_CREDIT]);
        kp_free(js);
        assert_int_equal(
            metrics_slowest_decode("{}", 2, &back, err, sizeof(err)),
            KP_ERR_PARSE);
        metrics_slowest_clear(&s);
        metrics_slowest_clear(&t);
        metrics_slowest_clear(&back);
}

/* Fills a 1 s window with @p n outcomes, @p slow of them at 500 ms,
 * @p rejected rejected. */
static void fill(metrics_window_t *w, int n, int slow, int rejected) {
        kp_payment_t p;
        metrics_event_t ev;
        char id[32];
        metrics_window_init(w, METRICS_1S, T0);
        for (int i = 0; i < n; i++) {
                snprintf(id, sizeof(id), "p-%d", i);
                mkpay(&p, id, T0 - 600, i < slow ? 500 : 100,
                      i >= n - rejected ? "insufficient_funds" : NULL);
                p.complete_ms = T0 + 1;
                p.created_ms  = p.complete_ms - (i < slow ? 500 : 100);
                classify(&p, T0 + 10, &ev);
                assert_int_equal(ev.kind, METRICS_OUTCOME);
                assert_int_equal(metrics_window_add(w, &ev, T0 + 10, GRACE),
                                 KP_OK);
        }
}

static void test_sla(void **state) {
        (void)state;
        const metrics_objectives_t obj = {200, 1000, 100};
        metrics_window_t w;
        metrics_verdict_t v;

        /* Nothing: every objective holds, nothing burnt. */
        metrics_window_init(&w, METRICS_1S, T0);
        metrics_verdict(&w, -1, &obj, &v);
        assert_true(v.ok);
        assert_int_equal(v.p99_ms, -1);
        assert_true(v.burn_rate == 0.0);
        metrics_window_clear(&w);

        /* 2000 outcomes, 10 slow (0.5 %), 10 rejected (0.5 %). */
        fill(&w, 2000, 10, 10);
        metrics_verdict(&w, -1, &obj, &v);
        assert_int_equal(v.outcomes, 2000);
        assert_int_equal(v.traffic_seconds, 1);
        assert_true(v.throughput == 2000.0);
        assert_int_equal(v.p99_ms, 100);
        assert_true(v.latency_ok && v.throughput_ok && v.rejection_ok && v.ok);
        assert_true(v.latency_burn > 0.49 && v.latency_burn < 0.51);
        assert_true(v.rejection_burn > 0.49 && v.rejection_burn < 0.51);
        metrics_window_clear(&w);

        /* 3 % slow: p99 is 500, the budget burns 3x. */
        fill(&w, 2000, 60, 0);
        metrics_verdict(&w, -1, &obj, &v);
        assert_true(v.p99_ms >= 495 && v.p99_ms <= 505); /* within 1 % */
        assert_false(v.latency_ok);
        assert_false(v.ok);
        assert_true(v.latency_burn > 2.99 && v.latency_burn < 3.01);
        assert_true(v.burn_rate == v.latency_burn);
        metrics_window_clear(&w);

        /* Too few per second while traffic flows; 2 % rejected. */
        fill(&w, 500, 0, 10);
        metrics_verdict(&w, -1, &obj, &v);
        assert_false(v.throughput_ok);
        assert_false(v.rejection_ok);
        assert_true(v.rejection_burn > 1.99 && v.rejection_burn < 2.01);
        /* The same counts over 10 traffic seconds of a period. */
        metrics_verdict(&w, 10, &obj, &v);
        assert_true(v.throughput == 50.0);
        metrics_window_clear(&w);
        json_t *j = metrics_verdict_to_json(&v);
        assert_true(json_is_false(json_object_get(j, "ok")));
        json_decref(j);
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_keys),
            cmocka_unit_test(test_classify),
            cmocka_unit_test(test_window_closing),
            cmocka_unit_test(test_merge_and_json),
            cmocka_unit_test(test_amounts_beyond_int64),
            cmocka_unit_test(test_maps),
            cmocka_unit_test(test_grace_raised),
            cmocka_unit_test(test_slowest),
            cmocka_unit_test(test_sla),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
