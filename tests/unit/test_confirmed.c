/* Unit tests of kpay-confirmed's business logic (confirmed.c): the UTC day
 * of an outcome (leap days, midnight, before 1970, against gmtime_r), the
 * day keys, confirmed and rejected totals with overflow, the emitted
 * records, strict JSON, the store `outcomes` (encoding, strict decoding,
 * which ids are kept, expiry keys and retention), and no leaks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "confirmed.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_payment.h"

#define DAY_MS INT64_C(86400000)

static int64_t mem_start;

static int setup(void **state) {
        (void)state;
        mem_start = kp_mem_live_allocations();
        return 0;
}

static int teardown(void **state) {
        (void)state;
        assert_int_equal(kp_mem_live_allocations(), mem_start);
        return 0;
}

static void parse_ok(const char *json, kp_payment_t *p) {
        char detail[256];
        kp_pay_err_t err =
            kp_payment_parse(json, strlen(json), p, detail, sizeof(detail));
        if (err)
                fail_msg("parse %s: %s", json, detail);
}

static void assert_day_key(int64_t ms, const char *expected) {
        char key[CONFIRMED_DAY_KEY_SIZE];
        size_t n = confirmed_day_key(key, sizeof(key), ms);
        if (n != strlen(expected) || strcmp(key, expected))
                fail_msg("day of %lld: got %s, expected %s", (long long)ms, key,
                         expected);
}

static void assert_totals(const confirmed_totals_t *t, int64_t cc, int64_t ca,
                          int64_t rc, int64_t ra) {
        assert_int_equal(t->confirmed_count, cc);
        assert_int_equal(t->confirmed_amount, ca);
        assert_int_equal(t->rejected_count, rc);
        assert_int_equal(t->rejected_amount, ra);
}

/* ------------------------------------------------------------------------
 * UTC days. */

static void test_day_key_known_dates(void **state) {
        (void)state;
        assert_day_key(0, "day:1970-01-01");
        assert_day_key(DAY_MS - 1, "day:1970-01-01");
        assert_day_key(DAY_MS, "day:1970-01-02");
        /* 2024-02-29 (a leap day) starts at 1709164800000. */
        assert_day_key(INT64_C(1709164800000) - 1, "day:2024-02-28");
        assert_day_key(INT64_C(1709164800000), "day:2024-02-29");
        assert_day_key(INT64_C(1709164800000) + 43200000, "day:2024-02-29");
        assert_day_key(INT64_C(1709251200000) - 1, "day:2024-02-29");
        assert_day_key(INT64_C(1709251200000), "day:2024-03-01");
        /* 2000 is a leap year (divisible by 400); 1900 and 2100 are not. */
        assert_day_key(INT64_C(951782400000), "day:2000-02-29");
        assert_day_key(INT64_C(4107542400000) - 1, "day:2100-02-28");
        assert_day_key(INT64_C(4107542400000), "day:2100-03-01");
        assert_day_key(INT64_C(-2203891200000) - 1, "day:1900-02-28");
        assert_day_key(INT64_C(-2203891200000), "day:1900-03-01");
        /* New year, and before the epoch (rounded down, not to zero). */
        assert_day_key(INT64_C(1704067200000) - 1, "day:2023-12-31");
        assert_day_key(INT64_C(1704067200000), "day:2024-01-01");
        assert_day_key(-1, "day:1969-12-31");
        assert_day_key(-DAY_MS, "day:1969-12-31");
        assert_day_key(-DAY_MS - 1, "day:1969-12-30");
        assert_day_key(INT64_C(253402214400000), "day:9999-12-31");
        assert_day_key(INT64_C(1700000000003), "day:2023-11-14");

        /* The extremes do not crash and give some date. */
        char key[CONFIRMED_DAY_KEY_SIZE];
        assert_true(confirmed_day_key(key, sizeof(key), INT64_MAX) > 0);
        assert_true(confirmed_day_key(key, sizeof(key), INT64_MIN) > 0);
        /* Too small a buffer. */
        assert_int_equal(confirmed_day_key(key, 14, 0), 0);
        assert_int_equal(confirmed_day_key(key, 15, 0), 14);
}

/* Every day from 1900 to 2200, at its first and last ms and at noon,
 * against the C library's gmtime_r. */
static void test_utc_date_against_gmtime(void **state) {
        (void)state;
        const int64_t from = INT64_C(-2208988800000); /* 1900-01-01 */
        const int64_t to   = INT64_C(7258118400000);  /* 2200-01-01 */
        int checked        = 0;
        for (int64_t day = from; day < to; day += DAY_MS) {
                const int64_t offs[] = {0, DAY_MS / 2, DAY_MS - 1};
                for (size_t i = 0; i < 3; i++) {
                        int64_t ms = day + offs[i], y;
                        int m, d;
                        time_t secs =
                            (time_t)((ms - (ms % 1000 + 1000) % 1000) / 1000);
                        struct tm tm;
                        assert_non_null(gmtime_r(&secs, &tm));
                        confirmed_utc_date(ms, &y, &m, &d);
                        if (y != tm.tm_year + 1900 || m != tm.tm_mon + 1 ||
                            d != tm.tm_mday)
                                fail_msg("%lld: %lld-%d-%d, gmtime %d-%d-%d",
                                         (long long)ms, (long long)y, m, d,
                                         tm.tm_year + 1900, tm.tm_mon + 1,
                                         tm.tm_mday);
                        checked++;
                }
        }
        assert_true(checked > 300 * 365 * 3);
}

static void test_outcome_ms(void **state) {
        (void)state;
        kp_payment_t p;
        parse_ok(
            "{\"v\":1,\"id\":\"p\",\"from\":\"a\",\"to\":\"b\","
            "\"amount\":1,\"state\":\"COMPLETE\",\"complete_ms\":null}",
            &p);
        assert_int_equal(confirmed_outcome_ms(&p, 42), 42);
        kp_payment_clear(&p);
        parse_ok(
            "{\"v\":1,\"id\":\"p\",\"from\":\"a\",\"to\":\"b\","
            "\"amount\":1,\"state\":\"COMPLETE\",\"complete_ms\":0}",
            &p);
        assert_int_equal(confirmed_outcome_ms(&p, 42), 0);
        kp_payment_clear(&p);
        parse_ok(
            "{\"v\":1,\"id\":\"p\",\"from\":\"a\",\"to\":\"b\","
            "\"amount\":1,\"state\":\"COMPLETE\","
            "\"complete_ms\":1709164800000}",
            &p);
        assert_int_equal(confirmed_outcome_ms(&p, 42), 1709164800000);
        kp_payment_clear(&p);
}

/* ------------------------------------------------------------------------
 * Totals. */

static void test_totals_encode_decode(void **state) {
        (void)state;
        confirmed_record_t r, back;
        confirmed_totals_t t;
        confirmed_record_init(&r);
        confirmed_record_init(&back);
        r.confirmed_count = 1;
        r.rejected_count  = 3;
        assert_int_equal(kp_money_set(&r.confirmed_amounts, "USD", 2), KP_OK);
        assert_int_equal(kp_money_set(&r.rejected_amounts, "USD", 4), KP_OK);
        assert_int_equal(kp_money_set(&r.rejected_amounts, "EUR", 9), KP_OK);
        size_t len;
        char *s = confirmed_totals_encode(&r, &len);
        assert_string_equal(s,
                            "{\"confirmed_count\":1,\"rejected_count\":3,"
                            "\"confirmed_amounts\":{\"USD\":\"2\"},"
                            "\"rejected_amounts\":{\"EUR\":\"9\","
                            "\"USD\":\"4\"}}");
        assert_int_equal(len, strlen(s));
        assert_int_equal(confirmed_totals_decode(s, len, &back), KP_OK);
        kp_free(s);
        confirmed_totals_view(&back, "USD", &t);
        assert_totals(&t, 1, 2, 3, 4);
        confirmed_totals_view(&back, "EUR", &t);
        assert_totals(&t, 1, 0, 3, 9);
        confirmed_totals_view(&back, NULL, &t);
        assert_totals(&t, 1, 0, 3, 0);

        /* Beyond int64, exactly. */
        assert_int_equal(
            kp_money_set(&r.confirmed_amounts, "USD", (kp_i128_t)INT64_MAX * 7),
            KP_OK);
        r.confirmed_count = INT64_MAX;
        s                 = confirmed_totals_encode(&r, &len);
        assert_non_null(strstr(s, "\"USD\":\"64563604257983430649\""));
        assert_int_equal(confirmed_totals_decode(s, len, &back), KP_OK);
        kp_free(s);
        assert_true(
            kp_money_equal(&back.confirmed_amounts, &r.confirmed_amounts));
        assert_int_equal(back.confirmed_count, INT64_MAX);

        const char *json =
            "{\"rejected_amounts\":{},\"rejected_count\":3,"
            "\"confirmed_amounts\":{\"JPY\":\"2\"},\"confirmed_count\":1,"
            "\"later\":[1]}";
        assert_int_equal(confirmed_totals_decode(json, strlen(json), &back),
                         KP_OK);
        confirmed_totals_view(&back, "JPY", &t);
        assert_totals(&t, 1, 2, 3, 0);
        /* Before per-currency amounts: integers, read as USD. */
        json =
            "{\"rejected_amount\":4,\"rejected_count\":3,"
            "\"confirmed_amount\":2,\"confirmed_count\":1}";
        assert_int_equal(confirmed_totals_decode(json, strlen(json), &back),
                         KP_OK);
        confirmed_totals_view(&back, "USD", &t);
        assert_totals(&t, 1, 2, 3, 4);
        /* The update writes the view's currency only. */
        t.confirmed_amount = 50;
        t.confirmed_count  = 2;
        assert_int_equal(confirmed_totals_update(&back, "EUR", &t), KP_OK);
        assert_true(kp_money_get(&back.confirmed_amounts, "EUR") == 50);
        assert_true(kp_money_get(&back.confirmed_amounts, "USD") == 2);
        assert_int_equal(back.confirmed_count, 2);
        assert_int_equal(confirmed_totals_update(&back, "eur", &t),
                         KP_ERR_INVALID_ARG);
        confirmed_record_clear(&r);
        confirmed_record_clear(&back);
}

static void test_totals_decode_strict(void **state) {
        (void)state;
        const char *bad[] = {
            "",
            "{",
            "[]",
            "\"all\"",
            "{}",
            "{\"confirmed_count\":1,\"confirmed_amounts\":{},"
            "\"rejected_count\":3}",
            "{\"confirmed_count\":1,\"confirmed_amounts\":{},"
            "\"rejected_count\":3,\"rejected_amounts\":{\"USD\":4}}",
            "{\"confirmed_count\":1.0,\"confirmed_amounts\":{},"
            "\"rejected_count\":3,\"rejected_amounts\":{}}",
            "{\"confirmed_count\":1,\"confirmed_amounts\":null,"
            "\"rejected_count\":3,\"rejected_amounts\":{}}",
            "{\"confirmed_count\":1,\"confirmed_amounts\":{},"
            "\"rejected_count\":{},\"rejected_amounts\":{}}",
            "{\"confirmed_count\":1,\"confirmed_amounts\":{\"USD\":\"-0\"},"
            "\"rejected_count\":3,\"rejected_amounts\":{}}",
            "{\"confirmed_count\":1,\"confirmed_amounts\":{\"Usd\":\"1\"},"
            "\"rejected_count\":3,\"rejected_amounts\":{}}",
            "{\"confirmed_count\":1,\"confirmed_amount\":\"2\","
            "\"rejected_count\":3,\"rejected_amount\":4}",
            "{\"confirmed_count\":1,\"confirmed_count\":1,"
            "\"confirmed_amounts\":{},\"rejected_count\":3,"
            "\"rejected_amounts\":{}}",
        };
        confirmed_record_t r;
        confirmed_record_init(&r);
        r.confirmed_count = 9;
        assert_int_equal(kp_money_set(&r.confirmed_amounts, "USD", 9), KP_OK);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                if (confirmed_totals_decode(bad[i], strlen(bad[i]), &r) !=
                    KP_ERR_PARSE)
                        fail_msg("decoded: %s", bad[i]);
                assert_int_equal(r.confirmed_count, 9);
                assert_true(kp_money_get(&r.confirmed_amounts, "USD") == 9);
        }
        assert_int_equal(confirmed_totals_decode(NULL, 0, &r), KP_ERR_PARSE);
        confirmed_record_clear(&r);
}

static void test_totals_add(void **state) {
        (void)state;
        confirmed_totals_t t = {0};
        assert_int_equal(confirmed_totals_add(&t, KP_PAY_COMPLETE, 100), KP_OK);
        assert_int_equal(confirmed_totals_add(&t, KP_PAY_COMPLETE, 50), KP_OK);
        assert_int_equal(confirmed_totals_add(&t, KP_PAY_REJECTED, 7), KP_OK);
        assert_totals(&t, 2, 150, 1, 7);
        assert_int_equal(confirmed_totals_add(&t, KP_PAY_DEBIT, 1),
                         KP_ERR_INVALID_ARG);
        assert_int_equal(confirmed_totals_add(&t, KP_PAY_CONFIRMED, 1),
                         KP_ERR_INVALID_ARG);
        assert_totals(&t, 2, 150, 1, 7);

        /* Amounts go past INT64_MAX exactly (128 bits): a total never
         * refuses an outcome (issue 13, defect 4). */
        confirmed_totals_t e = {0, INT64_MAX - 1, 0, INT64_MAX - 1};
        assert_int_equal(confirmed_totals_add(&e, KP_PAY_COMPLETE, 1), KP_OK);
        assert_int_equal(confirmed_totals_add(&e, KP_PAY_REJECTED, 1), KP_OK);
        assert_totals(&e, 1, INT64_MAX, 1, INT64_MAX);
        assert_int_equal(confirmed_totals_add(&e, KP_PAY_COMPLETE, INT64_MAX),
                         KP_OK);
        assert_int_equal(confirmed_totals_add(&e, KP_PAY_REJECTED, INT64_MAX),
                         KP_OK);
        assert_true(e.confirmed_amount == (kp_i128_t)INT64_MAX * 2);
        assert_true(e.rejected_amount == (kp_i128_t)INT64_MAX * 2);
        /* Only a count at INT64_MAX (2^63 outcomes) is refused. */
        confirmed_totals_t c = {INT64_MAX, 0, INT64_MAX, 0};
        assert_int_equal(confirmed_totals_add(&c, KP_PAY_COMPLETE, 1),
                         KP_ERR_OVERFLOW);
        assert_int_equal(confirmed_totals_add(&c, KP_PAY_REJECTED, 1),
                         KP_ERR_OVERFLOW);
        assert_totals(&c, INT64_MAX, 0, INT64_MAX, 0);
}

/* ------------------------------------------------------------------------
 * Outcomes. */

#define COMPLETE_JSON                                                          \
        "{\"v\":1,\"id\":\"p-0001\",\"from\":\"alice\",\"to\":\"bob\","        \
        "\"amount\":1250,\"currency\":\"EUR\",\"state\":\"COMPLETE\","         \
        "\"reason\":null,\"created_ms\":1700000000000,"                        \
        "\"inflight_ms\":1700000000003,\"complete_ms\":1709164800000,"         \
        "\"origin_partition\":7,\"trace\":{\"hops\":3}}"

static void test_confirm(void **state) {
        (void)state;
        kp_payment_t p, out;
        confirmed_totals_t all = {5, 500, 1, 10}, day = {0};
        confirmed_decision_t d;
        char detail[256];

        parse_ok(COMPLETE_JSON, &p);
        assert_int_equal(confirmed_on_complete(&p, &all, &day, &d), KP_OK);
        assert_int_equal(d.action, CONFIRMED_CONFIRM);
        assert_totals(&d.all, 6, 1750, 1, 10);
        assert_totals(&d.day, 1, 1250, 0, 0);
        assert_int_equal(d.topic, KP_TOPIC_CONFIRMED);
        assert_int_equal(d.partition, -1);
        assert_string_equal(d.key, "p-0001");
        assert_int_equal(strlen(d.value), d.value_len);
        assert_int_equal(kp_payment_parse(d.value, d.value_len, &out, detail,
                                          sizeof(detail)),
                         KP_PAY_E_OK);
        /* A copy with the new state; every other field as it was. */
        assert_int_equal(out.state, KP_PAY_CONFIRMED);
        assert_string_equal(out.id, p.id);
        assert_string_equal(out.from, p.from);
        assert_string_equal(out.to, p.to);
        assert_int_equal(out.amount, 1250);
        assert_string_equal(out.currency, "EUR");
        assert_int_equal(out.created_ms, p.created_ms);
        assert_int_equal(out.inflight_ms, p.inflight_ms);
        assert_int_equal(out.complete_ms, p.complete_ms);
        assert_int_equal(out.origin_partition, 7);
        assert_int_equal(json_integer_value(json_object_get(
                             json_object_get(out.extra, "trace"), "hops")),
                         3);
        kp_payment_clear(&out);
        confirmed_decision_clear(&d);
        assert_null(d.value);
        confirmed_decision_clear(NULL);
        kp_payment_clear(&p);
}

static void test_reject_forwarded_unchanged(void **state) {
        (void)state;
        kp_payment_t p;
        confirmed_totals_t all = {5, 500, 1, 10}, day = {2, 20, 0, 0};
        confirmed_decision_t d;
        parse_ok(
            "{\"v\":1,\"id\":\"p-9\",\"from\":\"alice\",\"to\":\"bob\","
            "\"amount\":300,\"state\":\"REJECTED\",\"reason\":"
            "\"insufficient_funds\",\"complete_ms\":1709251199999,"
            "\"origin_partition\":3,\"x\":\"kept\"}",
            &p);
        assert_int_equal(confirmed_on_complete(&p, &all, &day, &d), KP_OK);
        assert_int_equal(d.action, CONFIRMED_REJECT);
        assert_totals(&d.all, 5, 500, 2, 310);
        assert_totals(&d.day, 2, 20, 1, 300);
        assert_string_equal(d.key, "p-9");
        assert_int_equal(d.topic, KP_TOPIC_CONFIRMED);
        assert_int_equal(d.partition, -1);
        size_t len;
        char *expect = kp_payment_serialize(&p, &len);
        assert_int_equal(d.value_len, len);
        assert_string_equal(d.value, expect);
        assert_non_null(strstr(d.value, "\"state\":\"REJECTED\""));
        assert_non_null(strstr(d.value, "\"reason\":\"insufficient_funds\""));
        assert_non_null(strstr(d.value, "\"x\":\"kept\""));
        kp_free(expect);
        confirmed_decision_clear(&d);
        kp_payment_clear(&p);
}

static void test_wrong_state(void **state) {
        (void)state;
        const char *states[] = {"INCOMING", "DEBIT",     "CREDIT",
                                "REFUND",   "CONFIRMED", "ODD"};
        for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
                char json[256];
                kp_payment_t p;
                confirmed_totals_t all = {1, 1, 1, 1}, day = {2, 2, 2, 2};
                confirmed_decision_t d;
                snprintf(json, sizeof(json),
                         "{\"v\":1,\"id\":\"p\",\"from\":\"a\",\"to\":\"b\","
                         "\"amount\":5,\"state\":\"%s\"}",
                         states[i]);
                parse_ok(json, &p);
                assert_int_equal(confirmed_on_complete(&p, &all, &day, &d),
                                 KP_OK);
                assert_int_equal(d.action, CONFIRMED_WRONG_STATE);
                assert_null(d.value);
                assert_totals(&d.all, 1, 1, 1, 1);
                assert_totals(&d.day, 2, 2, 2, 2);
                confirmed_decision_clear(&d);
                kp_payment_clear(&p);
        }
}

static void test_outcome_overflow(void **state) {
        (void)state;
        kp_payment_t p;
        confirmed_decision_t d;
        parse_ok(COMPLETE_JSON, &p);
        /* An amount past INT64_MAX in the day or in all: still an
         * outcome, summed exactly (issue 13, defect 4). */
        confirmed_totals_t ok = {0}, full = {0, INT64_MAX - 1249, 0, 0};
        assert_int_equal(confirmed_on_complete(&p, &ok, &full, &d), KP_OK);
        assert_true(d.day.confirmed_amount == (kp_i128_t)INT64_MAX + 1);
        assert_int_equal(d.action, CONFIRMED_CONFIRM);
        confirmed_decision_clear(&d);
        assert_int_equal(confirmed_on_complete(&p, &full, &ok, &d), KP_OK);
        assert_true(d.all.confirmed_amount == (kp_i128_t)INT64_MAX + 1);
        confirmed_decision_clear(&d);
        /* Only a count at INT64_MAX refuses it, with nothing to free. */
        confirmed_totals_t cnt = {INT64_MAX, 0, 0, 0};
        int64_t live           = kp_mem_live_allocations();
        assert_int_equal(confirmed_on_complete(&p, &cnt, &ok, &d),
                         KP_ERR_OVERFLOW);
        assert_int_equal(kp_mem_live_allocations(), live);

        /* A REJECTED whose payment broke a rule (invalid_amount: a
         * negative amount; invalid_currency) is counted, not summed. */
        kp_payment_t bad;
        parse_ok(
            "{\"v\":1,\"id\":\"b\",\"from\":\"a\",\"to\":\"b\","
            "\"amount\":-5,\"currency\":\"usd\","
            "\"state\":\"REJECTED\",\"reason\":\"invalid_amount\"}",
            &bad);
        assert_null(confirmed_currency(&bad));
        assert_ptr_equal(confirmed_currency(&p), p.currency);
        assert_int_equal(confirmed_on_complete(&bad, &ok, &ok, &d), KP_OK);
        assert_int_equal(d.action, CONFIRMED_REJECT);
        assert_totals(&d.all, 0, 0, 1, 0);
        confirmed_decision_clear(&d);
        kp_payment_clear(&bad);
        assert_int_equal(confirmed_on_complete(NULL, &ok, &ok, &d),
                         KP_ERR_INVALID_ARG);
        kp_payment_clear(&p);
}

/* Outcomes over three days: each day holds its own, `all` their sum. */
static void test_days_sum_to_all(void **state) {
        (void)state;
        const struct {
                const char *state;
                int64_t amount, complete_ms;
                const char *day;
        } outcomes[] = {
            {"COMPLETE", 100, INT64_C(1709164799999), "day:2024-02-28"},
            {"COMPLETE", 200, INT64_C(1709164800000), "day:2024-02-29"},
            {"REJECTED", 30, INT64_C(1709200000000), "day:2024-02-29"},
            {"COMPLETE", 400, INT64_C(1709251199999), "day:2024-02-29"},
            {"REJECTED", 5, INT64_C(1709251200000), "day:2024-03-01"},
        };
        const char *days[]     = {"day:2024-02-28", "day:2024-02-29",
                                  "day:2024-03-01"};
        confirmed_totals_t all = {0}, per[3] = {{0}};
        for (size_t i = 0; i < sizeof(outcomes) / sizeof(outcomes[0]); i++) {
                char json[256], key[CONFIRMED_DAY_KEY_SIZE];
                kp_payment_t p;
                confirmed_decision_t d;
                size_t k;
                snprintf(json, sizeof(json),
                         "{\"v\":1,\"id\":\"p%zu\",\"from\":\"a\",\"to\":"
                         "\"b\",\"amount\":%lld,\"state\":\"%s\","
                         "\"complete_ms\":%lld}",
                         i, (long long)outcomes[i].amount, outcomes[i].state,
                         (long long)outcomes[i].complete_ms);
                parse_ok(json, &p);
                assert_true(confirmed_day_key(key, sizeof(key),
                                              confirmed_outcome_ms(&p, 0)) > 0);
                assert_string_equal(key, outcomes[i].day);
                for (k = 0; strcmp(days[k], key); k++)
                        ;
                assert_int_equal(confirmed_on_complete(&p, &all, &per[k], &d),
                                 KP_OK);
                all    = d.all;
                per[k] = d.day;
                confirmed_decision_clear(&d);
                kp_payment_clear(&p);
        }
        assert_totals(&per[0], 1, 100, 0, 0);
        assert_totals(&per[1], 2, 600, 1, 30);
        assert_totals(&per[2], 0, 0, 1, 5);
        assert_totals(&all, 3, 700, 2, 35);
}

/* What kpay-confirmed reads and keeps, indexed by the header's constant. */
static void test_layout(void **state) {
        (void)state;
        assert_string_equal(confirmed_layout.service, "confirmed");
        assert_int_equal(confirmed_layout.inputs[0], KP_TOPIC_COMPLETE);
        assert_int_equal(confirmed_layout.inputs[1], KP_TOPIC_NONE);
        assert_string_equal(confirmed_layout.stores[CONFIRMED_ST_TOTALS],
                            "totals");
        assert_string_equal(confirmed_layout.stores[CONFIRMED_ST_OUTCOMES],
                            "outcomes");
        assert_string_equal(confirmed_layout.stores[CONFIRMED_ST_EXPIRY],
                            "expiry");
        assert_null(confirmed_layout.stores[3]);
}

/* ------------------------------------------------------------------------
 * The store `outcomes`: what is kept, encoded and decoded strictly, and
 * when it expires. */

#define OUTCOME_JSON                                                           \
        "{\"v\":1,\"id\":\"p-1\",\"from\":\"alice\",\"to\":\"bob\","           \
        "\"amount\":1234,\"currency\":\"BHD\",\"state\":\"COMPLETE\","         \
        "\"created_ms\":1000,\"inflight_ms\":1001,\"debit_ms\":1002,"          \
        "\"credit_ms\":1003,\"complete_ms\":1003,\"origin_partition\":4,"      \
        "\"client_note\":\"a long note a client attached\"}"

static void test_outcome_encode_decode(void **state) {
        kp_payment_t p, o;
        int64_t recorded = -1;
        size_t len;
        (void)state;
        parse_ok(OUTCOME_JSON, &p);
        assert_true(confirmed_outcome_kept(&p));
        char *s = confirmed_outcome_encode(&p, 1700000000123, &len);
        assert_int_equal(len, strlen(s));
        /* The client's unknown fields are not kept. */
        assert_null(strstr(s, "client_note"));
        assert_int_equal(confirmed_outcome_decode(s, len, &o, &recorded),
                         KP_OK);
        assert_true(recorded == 1700000000123);
        assert_string_equal(o.id, "p-1");
        assert_string_equal(o.from, "alice");
        assert_string_equal(o.to, "bob");
        assert_true(o.amount == 1234);
        assert_string_equal(o.currency, "BHD");
        assert_int_equal(o.state, KP_PAY_COMPLETE);
        assert_string_equal(o.reason, "");
        assert_true(o.created_ms == 1000 && o.inflight_ms == 1001 &&
                    o.debit_ms == 1002 && o.credit_ms == 1003 &&
                    o.complete_ms == 1003 && o.origin_partition == 4);
        kp_payment_clear(&o);
        /* Without a payment to fill in, only the time. */
        recorded = -1;
        assert_int_equal(confirmed_outcome_decode(s, len, NULL, &recorded),
                         KP_OK);
        assert_true(recorded == 1700000000123);
        kp_free(s);
        kp_payment_clear(&p);

        /* A rejection keeps its reason and its missing stamps. */
        parse_ok(
            "{\"v\":1,\"id\":\"p-2\",\"from\":\"a\",\"to\":\"b\","
            "\"amount\":5,\"state\":\"REJECTED\",\"reason\":"
            "\"insufficient_funds\",\"created_ms\":7,"
            "\"complete_ms\":9}",
            &p);
        s = confirmed_outcome_encode(&p, 0, &len);
        assert_int_equal(confirmed_outcome_decode(s, len, &o, &recorded),
                         KP_OK);
        assert_true(recorded == 0);
        assert_int_equal(o.state, KP_PAY_REJECTED);
        assert_string_equal(o.reason, "insufficient_funds");
        assert_string_equal(o.currency, "USD");
        assert_true(o.debit_ms == -1 && o.credit_ms == -1 &&
                    o.inflight_ms == -1);
        kp_payment_clear(&o);
        kp_free(s);
        kp_payment_clear(&p);
}

static void test_outcome_decode_strict(void **state) {
        kp_payment_t o;
        int64_t recorded = 42;
        (void)state;
        static const char *bad[] = {
            "",
            "not json",
            "[]",
            /* no recorded_ms, or not a non-negative integer */
            "{\"v\":1,\"id\":\"p\",\"from\":\"a\",\"to\":\"b\",\"amount\":1,"
            "\"state\":\"COMPLETE\"}",
            "{\"v\":1,\"id\":\"p\",\"from\":\"a\",\"to\":\"b\",\"amount\":1,"
            "\"state\":\"COMPLETE\",\"recorded_ms\":\"5\"}",
            "{\"v\":1,\"id\":\"p\",\"from\":\"a\",\"to\":\"b\",\"amount\":1,"
            "\"state\":\"COMPLETE\",\"recorded_ms\":-1}",
            /* not an outcome */
            "{\"v\":1,\"id\":\"p\",\"from\":\"a\",\"to\":\"b\",\"amount\":1,"
            "\"state\":\"DEBIT\",\"recorded_ms\":5}",
            /* not a Payment */
            "{\"v\":1,\"id\":\"p\",\"from\":\"a\",\"to\":\"b\","
            "\"amount\":\"1\",\"state\":\"COMPLETE\",\"recorded_ms\":5}",
            "{\"v\":2,\"id\":\"p\",\"from\":\"a\",\"to\":\"b\",\"amount\":1,"
            "\"state\":\"COMPLETE\",\"recorded_ms\":5}",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                if (confirmed_outcome_decode(bad[i], strlen(bad[i]), &o,
                                             &recorded) != KP_ERR_PARSE)
                        fail_msg("accepted %s", bad[i]);
                assert_true(recorded == 42);
        }
        assert_int_equal(confirmed_outcome_decode(NULL, 0, &o, &recorded),
                         KP_ERR_PARSE);
}

static void test_outcome_kept(void **state) {
        kp_payment_t p;
        char json[512], id[KP_PAYMENT_ID_MAX + 2];
        (void)state;
        /* An empty or overlong id cannot be asked for: not kept. */
        parse_ok(
            "{\"v\":1,\"id\":\"\",\"from\":\"a\",\"to\":\"b\","
            "\"amount\":1,\"state\":\"REJECTED\",\"reason\":"
            "\"invalid_id\"}",
            &p);
        assert_false(confirmed_outcome_kept(&p));
        kp_payment_clear(&p);
        memset(id, 'x', KP_PAYMENT_ID_MAX + 1);
        id[KP_PAYMENT_ID_MAX + 1] = '\0';
        snprintf(json, sizeof(json),
                 "{\"v\":1,\"id\":\"%s\",\"from\":\"a\",\"to\":\"b\","
                 "\"amount\":1,\"state\":\"REJECTED\",\"reason\":"
                 "\"invalid_id\"}",
                 id);
        parse_ok(json, &p);
        assert_false(confirmed_outcome_kept(&p));
        kp_payment_clear(&p);
        /* The longest valid id is kept, and its expiry key fits. */
        id[KP_PAYMENT_ID_MAX] = '\0';
        snprintf(json, sizeof(json),
                 "{\"v\":1,\"id\":\"%s\",\"from\":\"a\",\"to\":\"b\","
                 "\"amount\":1,\"state\":\"COMPLETE\"}",
                 id);
        parse_ok(json, &p);
        assert_true(confirmed_outcome_kept(&p));
        char key[CONFIRMED_EXPIRY_KEY_SIZE];
        assert_int_equal(
            confirmed_expiry_key(key, sizeof(key), INT64_MAX, p.id),
            CONFIRMED_EXPIRY_KEY_SIZE - 1);
        kp_payment_clear(&p);
        assert_false(confirmed_outcome_kept(NULL));
}

static void test_outcome_expiry(void **state) {
        char key[CONFIRMED_EXPIRY_KEY_SIZE];
        int64_t ms;
        const char *id;
        size_t idlen;
        (void)state;
        size_t n = confirmed_expiry_key(key, sizeof(key), 1700000000000, "a:b");
        assert_string_equal(key, "t:0000018bcfe56800:a:b");
        assert_int_equal(n, strlen(key));
        assert_int_equal(kp_expiry_key_parse(key, n, CONFIRMED_EXPIRY_PREFIX,
                                             &ms, &id, &idlen),
                         1);
        assert_true(ms == 1700000000000);
        assert_int_equal(idlen, 3);
        assert_memory_equal(id, "a:b", 3);
        assert_int_equal(confirmed_expiry_key(key, sizeof(key), -1, "x"), 0);
        assert_int_equal(confirmed_expiry_key(key, 10, 0, "x"), 0);
        /* Index keys sort by time: expiry walks them oldest first. */
        char older[CONFIRMED_EXPIRY_KEY_SIZE];
        confirmed_expiry_key(older, sizeof(older), 255, "zzz");
        confirmed_expiry_key(key, sizeof(key), 256, "aaa");
        assert_true(strcmp(older, key) < 0);

        /* Recorded before now - retention: expired; at the cutoff: kept. */
        const int64_t week = CONFIRMED_OUTCOME_RETENTION_DEFAULT_MS;
        const int64_t now  = 1700000000000;
        assert_true(confirmed_outcome_expired(now - week - 1, now, week));
        assert_false(confirmed_outcome_expired(now - week, now, week));
        assert_false(confirmed_outcome_expired(now, now, week));
        /* Saturating, never wrapping. */
        assert_false(confirmed_outcome_expired(0, INT64_MIN + 5, week));
        assert_true(confirmed_outcome_expired(0, INT64_MAX, 1000));
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_day_key_known_dates, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_utc_date_against_gmtime, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_outcome_ms, setup, teardown),
            cmocka_unit_test_setup_teardown(test_totals_encode_decode, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_totals_decode_strict, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_totals_add, setup, teardown),
            cmocka_unit_test_setup_teardown(test_confirm, setup, teardown),
            cmocka_unit_test_setup_teardown(test_reject_forwarded_unchanged,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_wrong_state, setup, teardown),
            cmocka_unit_test_setup_teardown(test_outcome_overflow, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_days_sum_to_all, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_layout, setup, teardown),
            cmocka_unit_test_setup_teardown(test_outcome_encode_decode, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_outcome_decode_strict, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_outcome_kept, setup, teardown),
            cmocka_unit_test_setup_teardown(test_outcome_expiry, setup,
                                            teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
