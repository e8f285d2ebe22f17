/* Unit tests of kpay-inflight's business logic (inflight.c): dedup before
 * validation, every rejection reason, the accept path and its stamps, the
 * completions, the totals (arithmetic, overflow, strict JSON), the dedup
 * store's keys and their order, and no leaks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "inflight.h"
#include "kpay/kp_conf.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_payment.h"

#define NOW       INT64_C(1700000000003)
#define RETENTION INT64_C(604800000)
#define PART      7

/* A valid INCOMING payment with an unknown field that must survive. */
#define VALID_JSON                                                             \
        "{\"v\":1,\"id\":\"p-0001\",\"from\":\"alice\",\"to\":\"bob\","        \
        "\"amount\":1250,\"currency\":\"USD\",\"state\":\"INCOMING\","         \
        "\"reason\":null,\"created_ms\":1700000000000,\"inflight_ms\":null,"   \
        "\"complete_ms\":null,\"origin_partition\":null,"                      \
        "\"note\":{\"tag\":\"x\",\"n\":[1,2]}}"

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

/* Parses @p len bytes of an emitted or stored payment. */
static void parse_buf(const char *buf, size_t len, kp_payment_t *p) {
        char detail[256];
        assert_non_null(buf);
        assert_int_equal(strlen(buf), len);
        kp_pay_err_t err =
            kp_payment_parse(buf, len, p, detail, sizeof(detail));
        if (err)
                fail_msg("parse %.*s: %s", (int)len, buf, detail);
}

/* Checks that the unknown field of VALID_JSON came through. */
static void assert_note_kept(const kp_payment_t *p) {
        assert_non_null(p->extra);
        json_t *note = json_object_get(p->extra, "note");
        assert_true(json_is_object(note));
        assert_string_equal(json_string_value(json_object_get(note, "tag")),
                            "x");
        assert_int_equal(json_array_size(json_object_get(note, "n")), 2);
}

static void assert_totals(const inflight_totals_t *t, int64_t count,
                          int64_t amount, int64_t accepted, int64_t rejected,
                          int64_t duplicates, int64_t completed,
                          int64_t unknown) {
        assert_int_equal(t->inflight_count, count);
        assert_int_equal(t->inflight_amount, amount);
        assert_int_equal(t->accepted, accepted);
        assert_int_equal(t->rejected, rejected);
        assert_int_equal(t->duplicates, duplicates);
        assert_int_equal(t->completed, completed);
        assert_int_equal(t->completions_unknown, unknown);
}

/* ------------------------------------------------------------------------
 * Totals JSON. */

static void test_totals_encode_exact(void **state) {
        (void)state;
        inflight_record_t r;
        inflight_record_init(&r);
        r.inflight_count      = 2;
        r.accepted            = 3;
        r.rejected            = 4;
        r.duplicates          = 5;
        r.completed           = 6;
        r.completions_unknown = 7;
        assert_int_equal(kp_money_set(&r.inflight_amounts, "USD", 1250), KP_OK);
        assert_int_equal(kp_money_set(&r.inflight_amounts, "EUR", 7), KP_OK);
        size_t len;
        char *s = inflight_totals_encode(&r, &len);
        assert_string_equal(s,
                            "{\"inflight_count\":2,\"accepted\":3,"
                            "\"rejected\":4,\"duplicates\":5,\"completed\":6,"
                            "\"completions_unknown\":7,\"inflight_amounts\":"
                            "{\"EUR\":\"7\",\"USD\":\"1250\"}}");
        assert_int_equal(len, strlen(s));
        kp_free(s);
        inflight_record_clear(&r);
}

/* Encodes @p r and decodes it back; they must be equal. */
static void assert_record_round_trip(const inflight_record_t *r) {
        inflight_record_t t;
        size_t len;
        inflight_record_init(&t);
        char *s = inflight_totals_encode(r, &len);
        assert_int_equal(inflight_totals_decode(s, len, &t), KP_OK);
        kp_free(s);
        assert_int_equal(t.inflight_count, r->inflight_count);
        assert_int_equal(t.accepted, r->accepted);
        assert_int_equal(t.rejected, r->rejected);
        assert_int_equal(t.duplicates, r->duplicates);
        assert_int_equal(t.completed, r->completed);
        assert_int_equal(t.completions_unknown, r->completions_unknown);
        assert_int_equal(t.inflight_amounts.cnt, r->inflight_amounts.cnt);
        assert_true(kp_money_equal(&t.inflight_amounts, &r->inflight_amounts));
        inflight_record_clear(&t);
}

static void test_totals_round_trip(void **state) {
        (void)state;
        inflight_record_t r;
        inflight_record_init(&r);
        assert_record_round_trip(&r);
        r.inflight_count      = INT64_MAX;
        r.accepted            = INT64_MAX;
        r.completions_unknown = INT64_MIN;
        /* Amounts far beyond int64 stay exact. */
        assert_int_equal(kp_money_set(&r.inflight_amounts, "USD",
                                      (kp_i128_t)INT64_MAX * 1000),
                         KP_OK);
        assert_int_equal(kp_money_set(&r.inflight_amounts, "JPY", 0), KP_OK);
        assert_record_round_trip(&r);
        inflight_record_clear(&r);

        /* Unknown fields (a newer writer) are ignored; order is free. */
        const char *json =
            "{\"completions_unknown\":7,\"completed\":6,\"duplicates\":5,"
            "\"rejected\":4,\"accepted\":3,\"inflight_amounts\":"
            "{\"EUR\":\"2\"},\"inflight_count\":1,\"future\":\"x\"}";
        inflight_totals_t t;
        assert_int_equal(inflight_totals_decode(json, strlen(json), &r), KP_OK);
        inflight_totals_view(&r, "EUR", &t);
        assert_totals(&t, 1, 2, 3, 4, 5, 6, 7);
        inflight_totals_view(&r, "USD", &t);
        assert_totals(&t, 1, 0, 3, 4, 5, 6, 7);
        /* The view of no currency: counts only. */
        inflight_totals_view(&r, NULL, &t);
        assert_totals(&t, 1, 0, 3, 4, 5, 6, 7);

        /* Before per-currency amounts: one integer, read as USD. */
        json =
            "{\"inflight_count\":1,\"inflight_amount\":2,\"accepted\":3,"
            "\"rejected\":4,\"duplicates\":5,\"completed\":6,"
            "\"completions_unknown\":7}";
        assert_int_equal(inflight_totals_decode(json, strlen(json), &r), KP_OK);
        assert_int_equal(r.inflight_amounts.cnt, 1);
        assert_true(kp_money_get(&r.inflight_amounts, "USD") == 2);
        inflight_record_clear(&r);
}

/* The view and its update keep the currencies apart (issue 13, defect 7):
 * a USD payment in flight leaves EUR's amount alone. */
static void test_totals_per_currency(void **state) {
        (void)state;
        inflight_record_t r;
        inflight_totals_t t;
        inflight_decision_t d;
        kp_payment_t p;
        inflight_record_init(&r);
        assert_int_equal(kp_money_set(&r.inflight_amounts, "EUR", 500), KP_OK);
        r.inflight_count = 1;
        parse_ok(VALID_JSON, &p); /* 1250 USD */
        inflight_totals_view(&r, p.currency, &t);
        assert_true(t.inflight_amount == 0);
        assert_int_equal(
            inflight_on_incoming(&p, -1, RETENTION, &t, PART, NOW, &d), KP_OK);
        assert_int_equal(d.action, INFLIGHT_ACCEPT);
        assert_int_equal(inflight_totals_update(&r, p.currency, &d.totals),
                         KP_OK);
        inflight_decision_clear(&d);
        assert_int_equal(r.inflight_count, 2);
        assert_true(kp_money_get(&r.inflight_amounts, "USD") == 1250);
        assert_true(kp_money_get(&r.inflight_amounts, "EUR") == 500);
        /* A currency that is not a code changes nothing; NULL: counts. */
        t.inflight_count = 9;
        assert_int_equal(inflight_totals_update(&r, "usd", &t),
                         KP_ERR_INVALID_ARG);
        assert_int_equal(r.inflight_count, 2);
        assert_int_equal(inflight_totals_update(&r, NULL, &t), KP_OK);
        assert_int_equal(r.inflight_count, 9);
        assert_true(kp_money_get(&r.inflight_amounts, "USD") == 1250);
        kp_payment_clear(&p);
        inflight_record_clear(&r);
}

static void test_totals_decode_strict(void **state) {
        (void)state;
        const char *bad[] = {
            "",
            "not json",
            "[1,2,3]",
            "42",
            "null",
            /* one field missing */
            "{\"inflight_count\":1,\"inflight_amounts\":{},\"accepted\":3,"
            "\"rejected\":4,\"duplicates\":5,\"completed\":6}",
            /* no amounts at all */
            "{\"inflight_count\":1,\"accepted\":3,"
            "\"rejected\":4,\"duplicates\":5,\"completed\":6,"
            "\"completions_unknown\":7}",
            /* a string */
            "{\"inflight_count\":\"1\",\"inflight_amounts\":{},\"accepted\":3,"
            "\"rejected\":4,\"duplicates\":5,\"completed\":6,"
            "\"completions_unknown\":7}",
            /* an amount as a number, or not a currency */
            "{\"inflight_count\":1,\"inflight_amounts\":{\"USD\":2},"
            "\"accepted\":3,\"rejected\":4,\"duplicates\":5,\"completed\":6,"
            "\"completions_unknown\":7}",
            "{\"inflight_count\":1,\"inflight_amounts\":{\"usd\":\"2\"},"
            "\"accepted\":3,\"rejected\":4,\"duplicates\":5,\"completed\":6,"
            "\"completions_unknown\":7}",
            "{\"inflight_count\":1,\"inflight_amounts\":{\"USD\":\"2.5\"},"
            "\"accepted\":3,\"rejected\":4,\"duplicates\":5,\"completed\":6,"
            "\"completions_unknown\":7}",
            /* a legacy amount that is not an integer */
            "{\"inflight_count\":1,\"inflight_amount\":2.5,\"accepted\":3,"
            "\"rejected\":4,\"duplicates\":5,\"completed\":6,"
            "\"completions_unknown\":7}",
            /* null */
            "{\"inflight_count\":1,\"inflight_amounts\":{},\"accepted\":null,"
            "\"rejected\":4,\"duplicates\":5,\"completed\":6,"
            "\"completions_unknown\":7}",
            /* a boolean */
            "{\"inflight_count\":1,\"inflight_amounts\":{},\"accepted\":3,"
            "\"rejected\":true,\"duplicates\":5,\"completed\":6,"
            "\"completions_unknown\":7}",
            /* outside int64 */
            "{\"inflight_count\":9223372036854775808,\"inflight_amounts\":{},"
            "\"accepted\":3,\"rejected\":4,\"duplicates\":5,\"completed\":6,"
            "\"completions_unknown\":7}",
            /* a duplicate key */
            "{\"inflight_count\":1,\"inflight_count\":1,\"inflight_amounts\":"
            "{},\"accepted\":3,\"rejected\":4,\"duplicates\":5,\"completed\":6,"
            "\"completions_unknown\":7}",
            /* trailing garbage */
            "{\"inflight_count\":1,\"inflight_amounts\":{},\"accepted\":3,"
            "\"rejected\":4,\"duplicates\":5,\"completed\":6,"
            "\"completions_unknown\":7}x",
        };
        inflight_record_t r;
        inflight_record_init(&r);
        r.inflight_count = 9;
        assert_int_equal(kp_money_set(&r.inflight_amounts, "USD", 9), KP_OK);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                if (inflight_totals_decode(bad[i], strlen(bad[i]), &r) !=
                    KP_ERR_PARSE)
                        fail_msg("decoded: %s", bad[i]);
                /* untouched */
                assert_int_equal(r.inflight_count, 9);
                assert_true(kp_money_get(&r.inflight_amounts, "USD") == 9);
        }
        assert_int_equal(inflight_totals_decode(NULL, 0, &r), KP_ERR_PARSE);
        inflight_record_clear(&r);
}

/* ------------------------------------------------------------------------
 * Dedup store keys and values. */

static void test_dedup_keys(void **state) {
        (void)state;
        char buf[INFLIGHT_EXPIRY_KEY_SIZE];
        assert_int_equal(inflight_dedup_key(buf, sizeof(buf), "p-0001"), 8);
        assert_string_equal(buf, "i:p-0001");
        assert_int_equal(inflight_dedup_key(buf, 8, "p-0001"), 0);

        /* 1700000000000 = 0x18bcfe56800: 16 lowercase digits. */
        assert_int_equal(
            inflight_expiry_key(buf, sizeof(buf), 1700000000000, "p-0001"),
            2 + 16 + 1 + 6);
        assert_string_equal(buf, "t:0000018bcfe56800:p-0001");
        assert_int_equal(inflight_expiry_key(buf, sizeof(buf), 0, "x"), 20);
        assert_string_equal(buf, "t:0000000000000000:x");
        assert_int_equal(inflight_expiry_key(buf, sizeof(buf), INT64_MAX, "x"),
                         20);
        assert_string_equal(buf, "t:7fffffffffffffff:x");
        assert_int_equal(inflight_expiry_key(buf, sizeof(buf), -1, "x"), 0);
        assert_int_equal(inflight_expiry_key(buf, 20, 0, "x"), 0);

        /* The longest id the codec keeps fits both key buffers. */
        char id[KP_PAYMENT_ID_MAX + 2];
        memset(id, 'a', sizeof(id) - 1);
        id[sizeof(id) - 1] = '\0';
        char ikey[INFLIGHT_DEDUP_KEY_SIZE];
        assert_int_equal(inflight_dedup_key(ikey, sizeof(ikey), id),
                         2 + strlen(id));
        assert_int_equal(inflight_expiry_key(buf, sizeof(buf), NOW, id),
                         19 + strlen(id));
}

static void test_expiry_key_parse(void **state) {
        (void)state;
        char buf[INFLIGHT_EXPIRY_KEY_SIZE];
        int64_t ms;
        const char *id;
        size_t idlen;

        /* Round trip, with an id that holds ':' itself. */
        size_t n = inflight_expiry_key(buf, sizeof(buf), NOW, "a:b:c");
        assert_int_equal(inflight_expiry_key_parse(buf, n, &ms, &id, &idlen),
                         1);
        assert_int_equal(ms, NOW);
        assert_int_equal(idlen, 5);
        assert_memory_equal(id, "a:b:c", 5);

        /* Not the index: the scan is past its end. */
        const char *other[] = {"i:p-1", "u:", "t", "totals"};
        for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++)
                assert_int_equal(
                    inflight_expiry_key_parse(other[i], strlen(other[i]), &ms,
                                              &id, &idlen),
                    0);
        /* In the index but malformed. */
        const char *bad[] = {
            "t:",
            "t:0000018bcfe56800",    /* no ':' and id */
            "t:0000018BCFE56800:p",  /* upper case */
            "t:0000018bcfe5680:p-1", /* 15 digits */
            "t:0000018bcfe56800-p",  /* wrong separator */
            "t:000001 bcfe56800:p",  /* not hex */
            "t:8000000000000000:p",  /* above INT64_MAX */
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                if (inflight_expiry_key_parse(bad[i], strlen(bad[i]), &ms, &id,
                                              &idlen) != -1)
                        fail_msg("parsed: %s", bad[i]);
        /* An empty id is still a well-formed key. */
        assert_int_equal(inflight_expiry_key_parse("t:0000000000000010:", 19,
                                                   &ms, &id, &idlen),
                         1);
        assert_int_equal(ms, 16);
        assert_int_equal(idlen, 0);
}

static int cmp_keys(const void *a, const void *b) {
        /* Byte order, as RocksDB's default comparator. */
        return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void test_expiry_key_order(void **state) {
        (void)state;
        /* Ascending times across digit-count boundaries, each with an id
         * (descending) that would sort them backwards if the ids mattered
         * more than the times. */
        const int64_t times[] = {
            0,
            1,
            9,
            10,
            15,
            16,
            255,
            256,
            4095,
            4096,
            INT64_C(1) << 40,
            NOW - 1,
            NOW,
            NOW + 1,
            INT64_C(1) << 52,
            INT64_MAX,
        };
        const size_t cnt = sizeof(times) / sizeof(times[0]);
        char bufs[sizeof(times) / sizeof(times[0])][INFLIGHT_EXPIRY_KEY_SIZE];
        const char *keys[sizeof(times) / sizeof(times[0])];
        for (size_t i = 0; i < cnt; i++) {
                char id[8];
                snprintf(id, sizeof(id), "%c", (char)('z' - i));
                assert_true(inflight_expiry_key(bufs[i], sizeof(bufs[i]),
                                                times[i], id) > 0);
                keys[i] = bufs[i];
        }
        /* Shuffle (reverse), sort by bytes, and expect time order back. */
        for (size_t i = 0; i < cnt / 2; i++) {
                const char *k     = keys[i];
                keys[i]           = keys[cnt - 1 - i];
                keys[cnt - 1 - i] = k;
        }
        qsort(keys, cnt, sizeof(keys[0]), cmp_keys);
        for (size_t i = 0; i < cnt; i++) {
                int64_t ms;
                const char *id;
                size_t idlen;
                assert_int_equal(
                    inflight_expiry_key_parse(keys[i], strlen(keys[i]), &ms,
                                              &id, &idlen),
                    1);
                assert_int_equal(ms, times[i]);
        }
        /* Same time: by id. */
        char a[INFLIGHT_EXPIRY_KEY_SIZE], b[INFLIGHT_EXPIRY_KEY_SIZE];
        inflight_expiry_key(a, sizeof(a), NOW, "a");
        inflight_expiry_key(b, sizeof(b), NOW, "b");
        assert_true(strcmp(a, b) < 0);
        /* Every "i:" key sorts before every "t:" key, so a scan that starts
         * after "t:" sees only the index. */
        char ikey[INFLIGHT_DEDUP_KEY_SIZE];
        inflight_dedup_key(ikey, sizeof(ikey), "~~~~");
        inflight_expiry_key(a, sizeof(a), 0, "");
        assert_true(strcmp(ikey, INFLIGHT_EXPIRY_PREFIX) < 0);
        assert_true(strcmp(INFLIGHT_EXPIRY_PREFIX, a) < 0);
}

static void test_dedup_value(void **state) {
        (void)state;
        int64_t ms = 5;
        assert_int_equal(inflight_dedup_value_decode("1700000000000", 13, &ms),
                         KP_OK);
        assert_int_equal(ms, 1700000000000);
        assert_int_equal(inflight_dedup_value_decode("0", 1, &ms), KP_OK);
        assert_int_equal(ms, 0);
        /* Only the given length counts. */
        assert_int_equal(inflight_dedup_value_decode("123junk", 3, &ms), KP_OK);
        assert_int_equal(ms, 123);
        const char *bad[] = {"",    "abc", "-5",  "+5",
                             " 5",  "5 ",  "1.5", "99999999999999999999",
                             "0x10"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                ms = 77;
                if (inflight_dedup_value_decode(bad[i], strlen(bad[i]), &ms) !=
                    KP_ERR_PARSE)
                        fail_msg("decoded: '%s'", bad[i]);
                assert_int_equal(ms, 77);
        }
        assert_int_equal(inflight_dedup_value_decode(NULL, 0, &ms),
                         KP_ERR_PARSE);
}

static void test_dedup_cutoff(void **state) {
        (void)state;
        assert_int_equal(inflight_dedup_cutoff(NOW, RETENTION),
                         NOW - RETENTION);
        assert_int_equal(inflight_dedup_cutoff(INT64_MIN + 5, 1000), INT64_MIN);
        assert_int_equal(inflight_dedup_cutoff(0, 1000), -1000);
}

/* ------------------------------------------------------------------------
 * INCOMING. */

static void test_accept_stamps(void **state) {
        (void)state;
        kp_payment_t p, out, stored;
        inflight_totals_t t0 = {2, 500, 10, 3, 1, 8, 0};
        inflight_decision_t d;

        parse_ok(VALID_JSON, &p);
        assert_int_equal(
            inflight_on_incoming(&p, -1, RETENTION, &t0, PART, NOW, &d), KP_OK);
        assert_int_equal(d.action, INFLIGHT_ACCEPT);
        assert_int_equal(d.reason, KP_REASON_NONE);
        assert_int_equal(d.record_dedup, 1);
        assert_int_equal(d.expired_first_seen_ms, -1);
        assert_totals(&d.totals, 3, 1750, 11, 3, 1, 8, 0);

        /* DEBIT keyed by the payer, murmur2 partitioner. */
        assert_int_equal(d.emit.topic, KP_TOPIC_INFLIGHT);
        assert_int_equal(d.emit.partition, -1);
        assert_string_equal(d.emit.key, "alice");
        parse_buf(d.emit.value, d.emit.value_len, &out);
        assert_int_equal(out.state, KP_PAY_DEBIT);
        assert_int_equal(out.inflight_ms, NOW);
        assert_int_equal(out.origin_partition, PART);
        assert_string_equal(out.id, "p-0001");
        assert_string_equal(out.from, "alice");
        assert_string_equal(out.to, "bob");
        assert_int_equal(out.amount, 1250);
        assert_string_equal(out.currency, "USD");
        assert_int_equal(out.created_ms, 1700000000000);
        assert_int_equal(out.complete_ms, -1);
        assert_string_equal(out.reason, "");
        assert_note_kept(&out);
        kp_payment_clear(&out);

        /* The in-flight record: as received, plus the stamps. */
        parse_buf(d.stored, d.stored_len, &stored);
        assert_int_equal(stored.state, KP_PAY_INCOMING);
        assert_int_equal(stored.inflight_ms, NOW);
        assert_int_equal(stored.origin_partition, PART);
        assert_int_equal(stored.amount, 1250);
        assert_note_kept(&stored);
        kp_payment_clear(&stored);

        inflight_decision_clear(&d);
        assert_null(d.emit.value);
        assert_null(d.stored);
        inflight_decision_clear(&d); /* twice is harmless */
        inflight_decision_clear(NULL);
        kp_payment_clear(&p);
}

/* Stage stamps are kpay's own: a client's debit_ms / credit_ms on an
 * INCOMING never reach the DEBIT (they would skew kpay-metrics' stages). */
static void test_accept_drops_client_stage_stamps(void **state) {
        (void)state;
        kp_payment_t p, out;
        inflight_totals_t t0 = {0};
        inflight_decision_t d;
        parse_ok(
            "{\"v\":1,\"id\":\"p-st\",\"from\":\"alice\",\"to\":"
            "\"bob\",\"amount\":5,\"state\":\"INCOMING\","
            "\"created_ms\":1700000000000,\"debit_ms\":1,"
            "\"credit_ms\":2}",
            &p);
        assert_int_equal(p.debit_ms, 1);
        assert_int_equal(
            inflight_on_incoming(&p, -1, RETENTION, &t0, PART, NOW, &d), KP_OK);
        assert_int_equal(d.action, INFLIGHT_ACCEPT);
        parse_buf(d.emit.value, d.emit.value_len, &out);
        assert_int_equal(out.state, KP_PAY_DEBIT);
        assert_int_equal(out.debit_ms, -1);
        assert_int_equal(out.credit_ms, -1);
        kp_payment_clear(&out);
        inflight_decision_clear(&d);
        kp_payment_clear(&p);
}

static void test_accept_system_account(void **state) {
        (void)state;
        kp_payment_t p;
        inflight_totals_t t0 = {0};
        inflight_decision_t d;
        parse_ok(
            "{\"v\":1,\"id\":\"fund-1\",\"from\":\"@bank\",\"to\":\"a.b_c"
            ":d-1\",\"amount\":9223372036854775807,\"state\":\"INCOMING\"}",
            &p);
        assert_int_equal(
            inflight_on_incoming(&p, -1, RETENTION, &t0, 0, NOW, &d), KP_OK);
        assert_int_equal(d.action, INFLIGHT_ACCEPT);
        assert_string_equal(d.emit.key, "@bank");
        assert_totals(&d.totals, 1, INT64_MAX, 1, 0, 0, 0, 0);
        inflight_decision_clear(&d);
        kp_payment_clear(&p);
}

static void test_reject_reasons(void **state) {
        (void)state;
        char longid[KP_PAYMENT_ID_MAX + 2], json[512];
        memset(longid, 'q', KP_PAYMENT_ID_MAX + 1);
        longid[KP_PAYMENT_ID_MAX + 1] = '\0';
        const struct {
                const char *id, *from, *to, *amount, *currency, *state;
                const char *reason;
        } cases[] = {
            {"p-1", "alice", "bob", "10", "USD", "DEBIT", "invalid_state"},
            {"p-1", "alice", "bob", "10", "USD", "COMPLETE", "invalid_state"},
            {"p-1", "alice", "bob", "10", "USD", "WHATEVER", "invalid_state"},
            /* The state is checked first: this one breaks a rule too. */
            {"p-1", "alice", "alice", "0", "usd", "REJECTED", "invalid_state"},
            {"", "alice", "bob", "10", "USD", "INCOMING", "invalid_id"},
            {"p\\u0001", "alice", "bob", "10", "USD", "INCOMING", "invalid_id"},
            {longid, "alice", "bob", "10", "USD", "INCOMING", "invalid_id"},
            {"p-1", "al ice", "bob", "10", "USD", "INCOMING",
             "invalid_account"},
            {"p-1", "alice", "", "10", "USD", "INCOMING", "invalid_account"},
            {"p-1", "@", "bob", "10", "USD", "INCOMING", "invalid_account"},
            {"p-1", "alice", "alice", "10", "USD", "INCOMING", "same_account"},
            {"p-1", "alice", "bob", "0", "USD", "INCOMING", "invalid_amount"},
            {"p-1", "alice", "bob", "-5", "USD", "INCOMING", "invalid_amount"},
            {"p-1", "alice", "bob", "10", "usd", "INCOMING",
             "invalid_currency"},
            {"p-1", "alice", "bob", "10", "EURO", "INCOMING",
             "invalid_currency"},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                kp_payment_t p, out;
                inflight_decision_t d;
                inflight_totals_t t0 = {1, 100, 1, 0, 0, 0, 0};
                snprintf(json, sizeof(json),
                         "{\"v\":1,\"id\":\"%s\",\"from\":\"%s\",\"to\":\"%s\","
                         "\"amount\":%s,\"currency\":\"%s\",\"state\":\"%s\","
                         "\"created_ms\":1,\"x-extra\":true}",
                         cases[i].id, cases[i].from, cases[i].to,
                         cases[i].amount, cases[i].currency, cases[i].state);
                parse_ok(json, &p);
                assert_int_equal(
                    inflight_on_incoming(&p, -1, RETENTION, &t0, PART, NOW, &d),
                    KP_OK);
                if (d.action != INFLIGHT_REJECT ||
                    d.reason != kp_reason_from_str(cases[i].reason) ||
                    d.reason == KP_REASON_OTHER)
                        fail_msg("case %zu (%s): action %d reason %s", i, json,
                                 (int)d.action, kp_reason2str(d.reason));
                /* One outcome: recorded for dedup (unless the id itself,
                 * the dedup key, is invalid), in rejected, never in
                 * flight. */
                assert_int_equal(d.record_dedup,
                                 strcmp(cases[i].reason, "invalid_id") != 0);
                assert_null(d.stored);
                assert_totals(&d.totals, 1, 100, 1, 1, 0, 0, 0);
                assert_int_equal(d.emit.topic, KP_TOPIC_COMPLETE);
                assert_int_equal(d.emit.partition, PART);
                assert_string_equal(d.emit.key, p.id);
                parse_buf(d.emit.value, d.emit.value_len, &out);
                assert_int_equal(out.state, KP_PAY_REJECTED);
                assert_string_equal(out.reason, cases[i].reason);
                assert_int_equal(out.complete_ms, NOW);
                assert_int_equal(out.origin_partition, PART);
                assert_int_equal(out.inflight_ms, -1);
                assert_string_equal(out.id, p.id);
                assert_int_equal(out.amount, p.amount);
                assert_int_equal(out.created_ms, 1);
                assert_true(
                    json_is_true(json_object_get(out.extra, "x-extra")));
                kp_payment_clear(&out);
                inflight_decision_clear(&d);
                kp_payment_clear(&p);
        }
}

static void test_dedup_duplicate(void **state) {
        (void)state;
        kp_payment_t p;
        inflight_totals_t t0 = {1, 1250, 1, 0, 4, 0, 0};
        inflight_decision_t d;
        parse_ok(VALID_JSON, &p);

        /* Seen a second ago, at the window's very edge, or "in the future"
         * (another instance's clock): a duplicate, dropped. */
        const int64_t seen[] = {NOW - 1000, NOW - RETENTION, NOW, NOW + 5000};
        for (size_t i = 0; i < sizeof(seen) / sizeof(seen[0]); i++) {
                assert_int_equal(inflight_on_incoming(&p, seen[i], RETENTION,
                                                      &t0, PART, NOW, &d),
                                 KP_OK);
                assert_int_equal(d.action, INFLIGHT_DUPLICATE);
                assert_int_equal(d.record_dedup, 0);
                assert_null(d.emit.value);
                assert_null(d.stored);
                assert_totals(&d.totals, 1, 1250, 1, 0, 5, 0, 0);
                inflight_decision_clear(&d);
        }

        /* One ms past the window: new again, and the stale index entry is
         * to be replaced. */
        assert_int_equal(inflight_on_incoming(&p, NOW - RETENTION - 1,
                                              RETENTION, &t0, PART, NOW, &d),
                         KP_OK);
        assert_int_equal(d.action, INFLIGHT_ACCEPT);
        assert_int_equal(d.record_dedup, 1);
        assert_int_equal(d.expired_first_seen_ms, NOW - RETENTION - 1);
        assert_totals(&d.totals, 2, 2500, 2, 0, 4, 0, 0);
        inflight_decision_clear(&d);
        kp_payment_clear(&p);
}

/* A resubmitted invalid payment is dropped as a duplicate, not rejected a
 * second time: dedup comes before validation. */
static void test_dedup_before_validation(void **state) {
        (void)state;
        kp_payment_t p;
        inflight_totals_t t = {0};
        inflight_decision_t d;
        parse_ok(
            "{\"v\":1,\"id\":\"bad-1\",\"from\":\"alice\",\"to\":\"bob\","
            "\"amount\":0,\"state\":\"INCOMING\"}",
            &p);
        assert_int_equal(
            inflight_on_incoming(&p, -1, RETENTION, &t, PART, NOW, &d), KP_OK);
        assert_int_equal(d.action, INFLIGHT_REJECT);
        assert_int_equal(d.reason, KP_REASON_INVALID_AMOUNT);
        assert_int_equal(d.record_dedup, 1);
        t = d.totals;
        inflight_decision_clear(&d);

        /* The resubmission, ten minutes later, finds the id recorded at
         * NOW. */
        assert_int_equal(inflight_on_incoming(&p, NOW, RETENTION, &t, PART,
                                              NOW + 600000, &d),
                         KP_OK);
        assert_int_equal(d.action, INFLIGHT_DUPLICATE);
        assert_null(d.emit.value);
        assert_totals(&d.totals, 0, 0, 0, 1, 1, 0, 0);
        inflight_decision_clear(&d);

        /* The same for a payment in the wrong state. */
        kp_payment_clear(&p);
        parse_ok(
            "{\"v\":1,\"id\":\"bad-2\",\"from\":\"alice\",\"to\":\"bob\","
            "\"amount\":5,\"state\":\"CREDIT\"}",
            &p);
        assert_int_equal(
            inflight_on_incoming(&p, NOW, RETENTION, &t, PART, NOW + 1, &d),
            KP_OK);
        assert_int_equal(d.action, INFLIGHT_DUPLICATE);
        inflight_decision_clear(&d);
        kp_payment_clear(&p);
}

/* Issue 13: payments with an empty (or otherwise invalid) id shared one
 * dedup key, so the second on a partition was dropped as a duplicate with
 * no outcome. Each is rejected with invalid_id, and none is recorded. */
static void test_invalid_id_never_a_duplicate(void **state) {
        (void)state;
        char longid[KP_PAYMENT_ID_MAX + 8], json[512];
        memset(longid, 'q', sizeof(longid) - 1);
        longid[sizeof(longid) - 1] = '\0';
        const char *ids[]          = {"", longid};
        for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
                kp_payment_t p;
                inflight_totals_t t = {0};
                inflight_decision_t d;
                snprintf(json, sizeof(json),
                         "{\"v\":1,\"id\":\"%s\",\"from\":\"alice\","
                         "\"to\":\"bob\",\"amount\":5,\"state\":\"INCOMING\"}",
                         ids[i]);
                parse_ok(json, &p);
                /* The first, and a second that finds the shared key
                 * recorded (by an older kpay, or a second ago). */
                const int64_t seen[] = {-1, NOW - 1000};
                for (int k = 0; k < 2; k++) {
                        assert_int_equal(
                            inflight_on_incoming(&p, seen[k], RETENTION, &t,
                                                 PART, NOW, &d),
                            KP_OK);
                        assert_int_equal(d.action, INFLIGHT_REJECT);
                        assert_int_equal(d.reason, KP_REASON_INVALID_ID);
                        assert_int_equal(d.record_dedup, 0);
                        assert_int_equal(d.expired_first_seen_ms, -1);
                        assert_int_equal(d.emit.topic, KP_TOPIC_COMPLETE);
                        assert_non_null(d.emit.value);
                        t = d.totals;
                        inflight_decision_clear(&d);
                }
                assert_totals(&t, 0, 0, 0, 2, 0, 0, 0);
                kp_payment_clear(&p);
        }
}

static void test_incoming_overflow(void **state) {
        (void)state;
        kp_payment_t p, bad;
        inflight_decision_t d;
        parse_ok(VALID_JSON, &p); /* amount 1250 */
        parse_ok(
            "{\"v\":1,\"id\":\"b\",\"from\":\"a\",\"to\":\"a\","
            "\"amount\":1,\"state\":\"INCOMING\"}",
            &bad);

        /* The amount is 128 bits wide: a payment near INT64_MAX on top of
         * INT64_MAX in flight is accepted, exactly (issue 13, defect 4). */
        inflight_totals_t edge = {0, INT64_MAX - 1250, 0, 0, 0, 0, 0};
        assert_int_equal(
            inflight_on_incoming(&p, -1, RETENTION, &edge, PART, NOW, &d),
            KP_OK);
        assert_true(d.totals.inflight_amount == INT64_MAX);
        inflight_decision_clear(&d);
        edge.inflight_amount = (kp_i128_t)INT64_MAX * 3;
        assert_int_equal(
            inflight_on_incoming(&p, -1, RETENTION, &edge, PART, NOW, &d),
            KP_OK);
        assert_int_equal(d.action, INFLIGHT_ACCEPT);
        assert_true(d.totals.inflight_amount ==
                    (kp_i128_t)INT64_MAX * 3 + 1250);
        inflight_decision_clear(&d);

        const struct {
                inflight_totals_t t;
                const kp_payment_t *p;
                int64_t seen;
        } cases[] = {
            {{INT64_MAX, 0, 0, 0, 0, 0, 0}, &p, -1},
            {{0, 0, INT64_MAX, 0, 0, 0, 0}, &p, -1},
            {{0, 0, 0, 0, INT64_MAX, 0, 0}, &p, NOW},
            {{0, 0, 0, INT64_MAX, 0, 0, 0}, &bad, -1},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                int64_t live = kp_mem_live_allocations();
                assert_int_equal(
                    inflight_on_incoming(cases[i].p, cases[i].seen, RETENTION,
                                         &cases[i].t, PART, NOW, &d),
                    KP_ERR_OVERFLOW);
                /* Nothing to apply and nothing to free. */
                assert_int_equal(kp_mem_live_allocations(), live);
        }
        kp_payment_clear(&p);
        kp_payment_clear(&bad);
}

static void test_incoming_invalid_args(void **state) {
        (void)state;
        kp_payment_t p;
        inflight_totals_t t = {0};
        inflight_decision_t d;
        parse_ok(VALID_JSON, &p);
        assert_int_equal(
            inflight_on_incoming(NULL, -1, RETENTION, &t, 0, NOW, &d),
            KP_ERR_INVALID_ARG);
        assert_int_equal(
            inflight_on_incoming(&p, -1, RETENTION, NULL, 0, NOW, &d),
            KP_ERR_INVALID_ARG);
        assert_int_equal(
            inflight_on_incoming(&p, -1, RETENTION, &t, -1, NOW, &d),
            KP_ERR_INVALID_ARG);
        kp_payment_clear(&p);
}

/* ------------------------------------------------------------------------
 * Completions. */

/* Accepts VALID_JSON and returns the stored in-flight payment. */
static void accept_one(inflight_totals_t *t, kp_payment_t *stored) {
        kp_payment_t p;
        inflight_decision_t d;
        parse_ok(VALID_JSON, &p);
        assert_int_equal(
            inflight_on_incoming(&p, -1, RETENTION, t, PART, NOW, &d), KP_OK);
        assert_int_equal(d.action, INFLIGHT_ACCEPT);
        parse_buf(d.stored, d.stored_len, stored);
        *t = d.totals;
        inflight_decision_clear(&d);
        kp_payment_clear(&p);
}

static void test_complete_known(void **state) {
        (void)state;
        inflight_totals_t t = {0};
        kp_payment_t stored, c;
        inflight_completion_t what;
        accept_one(&t, &stored);
        assert_totals(&t, 1, 1250, 1, 0, 0, 0, 0);

        /* The outcome's amount is not trusted: the stored one entered the
         * totals, the stored one leaves them. */
        parse_ok(
            "{\"v\":1,\"id\":\"p-0001\",\"from\":\"alice\",\"to\":\"bob\","
            "\"amount\":999,\"state\":\"COMPLETE\",\"complete_ms\":5}",
            &c);
        assert_int_equal(inflight_on_complete(&c, &stored, &t, &what), KP_OK);
        assert_int_equal(what, INFLIGHT_COMPLETED);
        assert_totals(&t, 0, 0, 1, 0, 0, 1, 0);
        kp_payment_clear(&c);
        kp_payment_clear(&stored);
}

static void test_rejected_known(void **state) {
        (void)state;
        inflight_totals_t t = {0};
        kp_payment_t stored, c;
        inflight_completion_t what;
        accept_one(&t, &stored);
        parse_ok(
            "{\"v\":1,\"id\":\"p-0001\",\"from\":\"alice\",\"to\":\"bob\","
            "\"amount\":1250,\"state\":\"REJECTED\",\"reason\":"
            "\"insufficient_funds\"}",
            &c);
        assert_int_equal(inflight_on_complete(&c, &stored, &t, &what), KP_OK);
        assert_int_equal(what, INFLIGHT_REJECTED);
        assert_totals(&t, 0, 0, 1, 1, 0, 0, 0);
        kp_payment_clear(&c);
        kp_payment_clear(&stored);
}

static void test_complete_unknown_and_wrong_state(void **state) {
        (void)state;
        inflight_totals_t t = {3, 30, 3, 0, 0, 0, 0};
        kp_payment_t c;
        inflight_completion_t what;
        const char *outcomes[] = {"COMPLETE", "REJECTED"};
        for (size_t i = 0; i < 2; i++) {
                char json[256];
                snprintf(json, sizeof(json),
                         "{\"v\":1,\"id\":\"nope\",\"from\":\"a\",\"to\":\"b\","
                         "\"amount\":10,\"state\":\"%s\"}",
                         outcomes[i]);
                parse_ok(json, &c);
                assert_int_equal(inflight_on_complete(&c, NULL, &t, &what),
                                 KP_OK);
                assert_int_equal(what, INFLIGHT_UNKNOWN);
                kp_payment_clear(&c);
        }
        assert_totals(&t, 3, 30, 3, 0, 0, 0, 2);

        const char *wrong[] = {"INCOMING", "DEBIT",     "CREDIT",
                               "REFUND",   "CONFIRMED", "NOPE"};
        for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
                char json[256];
                snprintf(json, sizeof(json),
                         "{\"v\":1,\"id\":\"x\",\"from\":\"a\",\"to\":\"b\","
                         "\"amount\":10,\"state\":\"%s\"}",
                         wrong[i]);
                parse_ok(json, &c);
                assert_false(inflight_is_outcome(c.state));
                assert_int_equal(inflight_on_complete(&c, NULL, &t, &what),
                                 KP_OK);
                assert_int_equal(what, INFLIGHT_WRONG_STATE);
                kp_payment_clear(&c);
        }
        assert_totals(&t, 3, 30, 3, 0, 0, 0, 2); /* unchanged */
        assert_true(inflight_is_outcome(KP_PAY_COMPLETE));
        assert_true(inflight_is_outcome(KP_PAY_REJECTED));
}

static void test_complete_overflow(void **state) {
        (void)state;
        kp_payment_t c, flight;
        inflight_completion_t what = INFLIGHT_WRONG_STATE;
        parse_ok(
            "{\"v\":1,\"id\":\"p\",\"from\":\"a\",\"to\":\"b\","
            "\"amount\":10,\"state\":\"COMPLETE\"}",
            &c);
        parse_ok(
            "{\"v\":1,\"id\":\"p\",\"from\":\"a\",\"to\":\"b\","
            "\"amount\":10,\"state\":\"INCOMING\"}",
            &flight);
        const struct {
                inflight_totals_t t;
                int known;
        } cases[] = {
            {{0, 0, 0, 0, 0, 0, INT64_MAX}, 0},
            {{INT64_MIN, 10, 1, 0, 0, 0, 0}, 1},
            {{1, 10, 1, 0, 0, INT64_MAX, 0}, 1},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                inflight_totals_t t = cases[i].t;
                assert_int_equal(
                    inflight_on_complete(&c, cases[i].known ? &flight : NULL,
                                         &t, &what),
                    KP_ERR_OVERFLOW);
                assert_memory_equal(&t, &cases[i].t, sizeof(t));
        }
        /* A REJECTED with rejected at the top. */
        kp_payment_clear(&c);
        parse_ok(
            "{\"v\":1,\"id\":\"p\",\"from\":\"a\",\"to\":\"b\","
            "\"amount\":10,\"state\":\"REJECTED\"}",
            &c);
        inflight_totals_t t = {1, 10, 1, INT64_MAX, 0, 0, 0};
        assert_int_equal(inflight_on_complete(&c, &flight, &t, &what),
                         KP_ERR_OVERFLOW);
        assert_int_equal(t.inflight_count, 1);
        kp_payment_clear(&c);
        kp_payment_clear(&flight);
}

/* A partition's life: the totals add up to one outcome per distinct id and
 * nothing in flight at the end. */
static void test_lifecycle_invariant(void **state) {
        (void)state;
        inflight_totals_t t = {0};
        inflight_decision_t d;
        inflight_completion_t what;
        kp_payment_t p1, p2, p3, s1, s3, c;
        char detail[256];

        parse_ok(
            "{\"v\":1,\"id\":\"p1\",\"from\":\"a\",\"to\":\"b\","
            "\"amount\":100,\"state\":\"INCOMING\"}",
            &p1);
        parse_ok(
            "{\"v\":1,\"id\":\"p2\",\"from\":\"a\",\"to\":\"a\","
            "\"amount\":5,\"state\":\"INCOMING\"}",
            &p2);
        parse_ok(
            "{\"v\":1,\"id\":\"p3\",\"from\":\"c\",\"to\":\"b\","
            "\"amount\":7,\"state\":\"INCOMING\"}",
            &p3);

        /* p1 accepted. */
        assert_int_equal(
            inflight_on_incoming(&p1, -1, RETENTION, &t, 0, NOW, &d), KP_OK);
        parse_buf(d.stored, d.stored_len, &s1);
        t = d.totals;
        inflight_decision_clear(&d);
        /* p2 rejected here; its REJECTED comes back on the complete topic. */
        assert_int_equal(
            inflight_on_incoming(&p2, -1, RETENTION, &t, 0, NOW, &d), KP_OK);
        assert_int_equal(d.action, INFLIGHT_REJECT);
        t = d.totals;
        assert_int_equal(kp_payment_parse(d.emit.value, d.emit.value_len, &c,
                                          detail, sizeof(detail)),
                         KP_PAY_E_OK);
        inflight_decision_clear(&d);
        assert_int_equal(inflight_on_complete(&c, NULL, &t, &what), KP_OK);
        assert_int_equal(what, INFLIGHT_UNKNOWN);
        kp_payment_clear(&c);
        /* p3 accepted. */
        assert_int_equal(
            inflight_on_incoming(&p3, -1, RETENTION, &t, 0, NOW, &d), KP_OK);
        parse_buf(d.stored, d.stored_len, &s3);
        t = d.totals;
        inflight_decision_clear(&d);
        assert_totals(&t, 2, 107, 2, 1, 0, 0, 1);
        /* p1 resubmitted: dropped. */
        assert_int_equal(
            inflight_on_incoming(&p1, NOW, RETENTION, &t, 0, NOW + 1, &d),
            KP_OK);
        assert_int_equal(d.action, INFLIGHT_DUPLICATE);
        t = d.totals;
        inflight_decision_clear(&d);
        /* p1 completes, p3 is rejected by the account processor. */
        s1.state = KP_PAY_COMPLETE;
        assert_int_equal(inflight_on_complete(&s1, &s1, &t, &what), KP_OK);
        assert_int_equal(what, INFLIGHT_COMPLETED);
        s3.state = KP_PAY_REJECTED;
        assert_int_equal(inflight_on_complete(&s3, &s3, &t, &what), KP_OK);
        assert_int_equal(what, INFLIGHT_REJECTED);

        assert_totals(&t, 0, 0, 2, 2, 1, 1, 1);
        /* completed + rejected = distinct ids = 3. */
        assert_int_equal(t.completed + t.rejected, 3);

        kp_payment_clear(&p1);
        kp_payment_clear(&p2);
        kp_payment_clear(&p3);
        kp_payment_clear(&s1);
        kp_payment_clear(&s3);
}

/* What kpay-inflight reads and keeps, indexed by the header's constants. */
static void test_layout(void **state) {
        (void)state;
        assert_string_equal(inflight_layout.service, "inflight");
        assert_int_equal(inflight_layout.inputs[INFLIGHT_IN_INCOMING],
                         KP_TOPIC_INCOMING);
        assert_int_equal(inflight_layout.inputs[INFLIGHT_IN_COMPLETE],
                         KP_TOPIC_COMPLETE);
        assert_int_equal(inflight_layout.inputs[2], KP_TOPIC_NONE);
        assert_string_equal(inflight_layout.stores[INFLIGHT_ST_INFLIGHT],
                            "inflight");
        assert_string_equal(inflight_layout.stores[INFLIGHT_ST_DEDUP], "dedup");
        assert_string_equal(inflight_layout.stores[INFLIGHT_ST_TOTALS],
                            "totals");
        assert_null(inflight_layout.stores[3]);
        /* Only the dedup changelog expires its keys, after the default
         * window plus the margin. */
        assert_non_null(inflight_layout.store_retention_ms);
        assert_null(inflight_layout.store_retention_ms[INFLIGHT_ST_INFLIGHT]);
        assert_null(inflight_layout.store_retention_ms[INFLIGHT_ST_TOTALS]);
        int64_t r;
        assert_int_equal(
            kp_parse_int64(
                inflight_layout.store_retention_ms[INFLIGHT_ST_DEDUP], &r),
            KP_OK);
        assert_int_equal(r, inflight_dedup_changelog_retention_ms(
                                INFLIGHT_DEDUP_RETENTION_DEFAULT_MS));
}

/* The dedup changelog's retention: the window plus a day, saturating. */
static void test_dedup_changelog_retention(void **state) {
        (void)state;
        assert_int_equal(inflight_dedup_changelog_retention_ms(1000),
                         1000 + 86400000);
        assert_int_equal(inflight_dedup_changelog_retention_ms(
                             INFLIGHT_DEDUP_RETENTION_DEFAULT_MS),
                         INT64_C(691200000));
        assert_int_equal(inflight_dedup_changelog_retention_ms(INT64_MAX - 5),
                         INT64_MAX);
}

/* A restored dedup entry gives back its expiry key; anything else none. */
static void test_expiry_key_of_entry(void **state) {
        (void)state;
        char buf[INFLIGHT_EXPIRY_KEY_SIZE], want[INFLIGHT_EXPIRY_KEY_SIZE];
        size_t wlen =
            inflight_expiry_key(want, sizeof(want), 1700000000123, "p-1");
        size_t n = inflight_expiry_key_of_entry(buf, sizeof(buf), "i:p-1", 5,
                                                "1700000000123", 13);
        assert_int_equal(n, wlen);
        assert_memory_equal(buf, want, n);
        assert_memory_equal(buf, "t:0000018bcfe5687b:p-1", n);
        /* A t: key (an older changelog had them), a tombstone, a bad
         * value, an id with a NUL, no room: nothing. */
        assert_int_equal(
            inflight_expiry_key_of_entry(buf, sizeof(buf),
                                         "t:0000018bcfe5687b:p-1", 22, "1", 1),
            0);
        assert_int_equal(
            inflight_expiry_key_of_entry(buf, sizeof(buf), "i:p-1", 5, NULL, 0),
            0);
        assert_int_equal(inflight_expiry_key_of_entry(buf, sizeof(buf), "i:p-1",
                                                      5, "12x", 3),
                         0);
        assert_int_equal(inflight_expiry_key_of_entry(buf, sizeof(buf),
                                                      "i:p\0-1", 6, "12", 2),
                         0);
        assert_int_equal(inflight_expiry_key_of_entry(buf, 10, "i:p-1", 5,
                                                      "1700000000123", 13),
                         0);
        assert_int_equal(
            inflight_expiry_key_of_entry(buf, sizeof(buf), "i", 1, "12", 2), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_totals_encode_exact, setup,
                                            teardown),
            cmocka_unit_test(test_dedup_changelog_retention),
            cmocka_unit_test(test_expiry_key_of_entry),
            cmocka_unit_test_setup_teardown(test_totals_round_trip, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_totals_per_currency, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_totals_decode_strict, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_dedup_keys, setup, teardown),
            cmocka_unit_test_setup_teardown(test_expiry_key_parse, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_expiry_key_order, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_dedup_value, setup, teardown),
            cmocka_unit_test_setup_teardown(test_dedup_cutoff, setup, teardown),
            cmocka_unit_test_setup_teardown(test_accept_stamps, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(
                test_accept_drops_client_stage_stamps, setup, teardown),
            cmocka_unit_test_setup_teardown(test_accept_system_account, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_reject_reasons, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_dedup_duplicate, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_invalid_id_never_a_duplicate,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_dedup_before_validation, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_incoming_overflow, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_incoming_invalid_args, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_complete_known, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_rejected_known, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(
                test_complete_unknown_and_wrong_state, setup, teardown),
            cmocka_unit_test_setup_teardown(test_complete_overflow, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_lifecycle_invariant, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_layout, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
