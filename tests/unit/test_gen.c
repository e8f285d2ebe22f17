/* Unit tests of kpay-gen's logic (gen.c): argument parsing (amount ranges,
 * exact decimal ratios, id prefixes), the deterministic stream (same seed,
 * same records; amounts in range; distinct accounts; ratios honoured;
 * duplicates repeat earlier valid payments), the bodies of broken records
 * as the codec sees them, the schedule, percentiles, the outcome tracker
 * and the summary JSON, with no leaks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "gen.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_payment.h"

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

static gen_params_t params(uint64_t seed) {
        gen_params_t gp = {
            .seed          = seed,
            .accounts      = 100,
            .amount_min    = 100,
            .amount_max    = 10000,
            .invalid_ppm   = 0,
            .duplicate_ppm = 0,
        };
        return gp;
}

/* ------------------------------------------------------------------------
 * Argument parsing. */

static void assert_amount_ok(const char *s, int64_t lo, int64_t hi) {
        char errstr[256];
        int64_t a = -7, b = -7;
        if (gen_parse_amount_range(s, &a, &b, errstr, sizeof(errstr)))
                fail_msg("amount \"%s\": %s", s, errstr);
        assert_int_equal(a, lo);
        assert_int_equal(b, hi);
}

static void assert_amount_bad(const char *s) {
        char errstr[256] = "";
        int64_t a = -7, b = -7;
        if (gen_parse_amount_range(s, &a, &b, errstr, sizeof(errstr)) !=
            KP_ERR_INVALID_ARG)
                fail_msg("amount \"%s\" accepted as %lld:%lld", s, (long long)a,
                         (long long)b);
        assert_true(strlen(errstr) > 0);
        assert_null(strchr(errstr, '\n'));
        /* Nothing is written on failure. */
        assert_int_equal(a, -7);
        assert_int_equal(b, -7);
}

static void test_parse_amount(void **state) {
        char errstr[256];
        int64_t a, b;
        (void)state;
        assert_amount_ok("100:10000", 100, 10000);
        assert_amount_ok("1:1", 1, 1);
        assert_amount_ok("250", 250, 250);
        assert_amount_ok("1:9223372036854775807", 1, INT64_MAX);
        assert_amount_bad("5:1");
        assert_amount_bad("0:5");
        assert_amount_bad("-1:5");
        assert_amount_bad("0");
        assert_amount_bad("");
        assert_amount_bad(":5");
        assert_amount_bad("5:");
        assert_amount_bad("1:2:3");
        assert_amount_bad("a:b");
        assert_amount_bad("1.5:2");
        assert_amount_bad("1:2.5");
        assert_amount_bad(" 1:2");
        assert_amount_bad("1:9223372036854775808");
        /* The reason says which rule broke. */
        gen_parse_amount_range("5:1", &a, &b, errstr, sizeof(errstr));
        assert_non_null(strstr(errstr, "above"));
        gen_parse_amount_range("0:1", &a, &b, errstr, sizeof(errstr));
        assert_non_null(strstr(errstr, "at least 1"));
}

static void assert_ratio(const char *s, uint32_t ppm) {
        char errstr[256];
        uint32_t v = 12345;
        if (gen_parse_ratio_ppm(s, &v, errstr, sizeof(errstr)))
                fail_msg("ratio \"%s\": %s", s, errstr);
        if (v != ppm)
                fail_msg("ratio \"%s\": %u ppm, expected %u", s, v, ppm);
}

static void assert_ratio_bad(const char *s) {
        char errstr[256] = "";
        uint32_t v       = 12345;
        if (gen_parse_ratio_ppm(s, &v, errstr, sizeof(errstr)) !=
            KP_ERR_INVALID_ARG)
                fail_msg("ratio \"%s\" accepted as %u ppm", s, v);
        assert_int_equal(v, 12345);
        assert_true(strlen(errstr) > 0);
}

static void test_parse_ratio(void **state) {
        (void)state;
        assert_ratio("0", 0);
        assert_ratio("0.0", 0);
        assert_ratio("0.05", 50000);
        assert_ratio("0.5", 500000);
        assert_ratio("00.5", 500000);
        assert_ratio("0.123456", 123456);
        assert_ratio("0.000001", 1);
        assert_ratio("0.999999", 999999);
        assert_ratio("1", 1000000);
        assert_ratio("1.0", 1000000);
        assert_ratio("1.000000", 1000000);
        /* 0.1 has no exact binary form; the parse is exact all the same. */
        assert_ratio("0.1", 100000);
        assert_ratio("0.3", 300000);
        assert_ratio("0.29", 290000);

        assert_ratio_bad("1.5");
        assert_ratio_bad("1.000001");
        assert_ratio_bad("2");
        assert_ratio_bad("10");
        assert_ratio_bad("-0.1");
        assert_ratio_bad("+0.1");
        assert_ratio_bad("abc");
        assert_ratio_bad("0.0000001");
        assert_ratio_bad("0.0000000");
        assert_ratio_bad("");
        assert_ratio_bad(".5");
        assert_ratio_bad("5.");
        assert_ratio_bad("0.");
        assert_ratio_bad("1e-3");
        assert_ratio_bad("0x1");
        assert_ratio_bad(" 0.1");
        assert_ratio_bad("0.1 ");
        assert_ratio_bad("0,1");
        assert_ratio_bad("0.1.2");
        assert_ratio_bad("99999999999999999999");
}

static void test_check_id_prefix(void **state) {
        char errstr[256], buf[GEN_ID_PREFIX_MAX + 2];
        (void)state;
        assert_int_equal(
            gen_check_id_prefix("gen-1700000000-42-", errstr, sizeof(errstr)),
            KP_OK);
        assert_int_equal(gen_check_id_prefix("", errstr, sizeof(errstr)),
                         KP_OK);
        assert_int_equal(gen_check_id_prefix("with space \"quote\" \\", errstr,
                                             sizeof(errstr)),
                         KP_OK);
        memset(buf, 'x', GEN_ID_PREFIX_MAX);
        buf[GEN_ID_PREFIX_MAX] = '\0';
        assert_int_equal(gen_check_id_prefix(buf, errstr, sizeof(errstr)),
                         KP_OK);
        /* The longest prefix still makes valid ids. */
        char id[KP_PAYMENT_ID_MAX + 64];
        gen_fund_id(id, sizeof(id), buf, INT64_MAX);
        assert_true(kp_payment_id_valid(id));
        gen_payment_id(id, sizeof(id), buf, UINT64_MAX);
        assert_true(kp_payment_id_valid(id));
        buf[GEN_ID_PREFIX_MAX]     = 'x';
        buf[GEN_ID_PREFIX_MAX + 1] = '\0';
        assert_int_equal(gen_check_id_prefix(buf, errstr, sizeof(errstr)),
                         KP_ERR_INVALID_ARG);
        assert_int_equal(
            gen_check_id_prefix("tab\there", errstr, sizeof(errstr)),
            KP_ERR_INVALID_ARG);
        assert_int_equal(
            gen_check_id_prefix("\xc3\xa9", errstr, sizeof(errstr)),
            KP_ERR_INVALID_ARG);
}

static void test_params_check(void **state) {
        char errstr[256];
        gen_params_t gp = params(1);
        (void)state;
        assert_int_equal(gen_params_check(&gp, errstr, sizeof(errstr)), KP_OK);
        gp.accounts = 1;
        assert_int_equal(gen_params_check(&gp, errstr, sizeof(errstr)),
                         KP_ERR_INVALID_ARG);
        gp            = params(1);
        gp.amount_min = 0;
        assert_int_equal(gen_params_check(&gp, errstr, sizeof(errstr)),
                         KP_ERR_INVALID_ARG);
        gp            = params(1);
        gp.amount_min = 10;
        gp.amount_max = 9;
        assert_int_equal(gen_params_check(&gp, errstr, sizeof(errstr)),
                         KP_ERR_INVALID_ARG);
        gp               = params(1);
        gp.invalid_ppm   = 600000;
        gp.duplicate_ppm = 400000;
        assert_int_equal(gen_params_check(&gp, errstr, sizeof(errstr)), KP_OK);
        gp.duplicate_ppm = 400001;
        assert_int_equal(gen_params_check(&gp, errstr, sizeof(errstr)),
                         KP_ERR_INVALID_ARG);
}

/* ------------------------------------------------------------------------
 * The stream. */

static void test_draw_deterministic(void **state) {
        (void)state;
        /* splitmix64's first output for state 0 (the reference value of
         * the algorithm): mix(0 + golden). */
        assert_true(gen_mix64(UINT64_C(0x9e3779b97f4a7c15)) ==
                    UINT64_C(0xe220a8397b1dcdaf));
        assert_true(gen_draw(42, 7, 3) == gen_draw(42, 7, 3));
        assert_true(gen_draw(42, 7, 3) != gen_draw(43, 7, 3));
        assert_true(gen_draw(42, 7, 3) != gen_draw(42, 8, 3));
        assert_true(gen_draw(42, 7, 3) != gen_draw(42, 7, 4));
}

static void test_same_seed_same_stream(void **state) {
        gen_params_t gp = params(20240601);
        gen_record_t a, b;
        kp_payment_t pa, pb;
        size_t la, lb;
        (void)state;
        gp.invalid_ppm   = 100000;
        gp.duplicate_ppm = 100000;
        for (uint64_t k = 0; k < 20000; k++) {
                gen_record(&gp, k, &a);
                gen_record(&gp, k, &b);
                assert_memory_equal(&a, &b, sizeof(a));
                gen_payment("run-", &a, 1700000000000, &pa);
                gen_payment("run-", &b, 1700000000000, &pb);
                char *ba = gen_body(&pa, a.kind, a.invalid, &la);
                char *bb = gen_body(&pb, b.kind, b.invalid, &lb);
                assert_int_equal(la, lb);
                assert_memory_equal(ba, bb, la);
                kp_free(ba);
                kp_free(bb);
        }
        /* A known record, so that the stream cannot change unnoticed
         * between versions (a seed must keep reproducing the same run). */
        gp = params(1);
        gen_record(&gp, 0, &a);
        gen_payment("p-", &a, 1700000000000, &pa);
        char *body = gen_body(&pa, a.kind, a.invalid, &la);
        char expect[512];
        snprintf(
            expect, sizeof(expect),
            "{\"v\":1,\"id\":\"p-0\",\"from\":\"acc-%lld\",\"to\":"
            "\"acc-%lld\",\"amount\":%lld,\"currency\":\"USD\","
            "\"state\":\"INCOMING\",\"reason\":null,\"created_ms\":"
            "1700000000000,\"inflight_ms\":null,\"complete_ms\":null,"
            "\"origin_partition\":null}",
            (long long)(gen_draw(1, 0, 3) % 100),
            (long long)((gen_draw(1, 0, 3) % 100 + 1 + gen_draw(1, 0, 4) % 99) %
                        100),
            (long long)(100 + gen_draw(1, 0, 5) % 9901));
        assert_string_equal(body, expect);
        assert_int_equal(la, strlen(expect));
        kp_free(body);
}

static void test_different_seeds_differ(void **state) {
        gen_params_t g1 = params(1), g2 = params(2);
        gen_record_t a, b;
        int same = 0;
        (void)state;
        for (uint64_t k = 0; k < 10000; k++) {
                gen_record(&g1, k, &a);
                gen_record(&g2, k, &b);
                if (a.from == b.from && a.to == b.to && a.amount == b.amount)
                        same++;
        }
        /* By chance: 1 in 100 * 99 * 9901 per record. */
        assert_true(same < 5);
}

static void check_ranges(gen_params_t gp, uint64_t n) {
        gen_record_t rec;
        int64_t *from_seen = kp_calloc((size_t)gp.accounts, sizeof(int64_t));
        int64_t lo = INT64_MAX, hi = INT64_MIN;
        for (uint64_t k = 0; k < n; k++) {
                gen_record(&gp, k, &rec);
                assert_true(rec.index == k);
                assert_true(rec.from >= 0 && rec.from < gp.accounts);
                assert_true(rec.to >= 0 && rec.to < gp.accounts);
                assert_true(rec.from != rec.to);
                assert_true(rec.amount >= gp.amount_min);
                assert_true(rec.amount <= gp.amount_max);
                if (rec.amount < lo)
                        lo = rec.amount;
                if (rec.amount > hi)
                        hi = rec.amount;
                from_seen[rec.from]++;
        }
        /* Every account pays, roughly as often as the others (when there
         * are enough records to tell). */
        for (int64_t i = 0; i < gp.accounts && n / gp.accounts >= 100; i++) {
                int64_t expect = (int64_t)n / gp.accounts;
                if (from_seen[i] < expect / 2 || from_seen[i] > expect * 2)
                        fail_msg("account %lld pays %lld times of %lld",
                                 (long long)i, (long long)from_seen[i],
                                 (long long)n);
        }
        /* Both ends of a small range are reached. */
        if (gp.amount_max - gp.amount_min < 1000) {
                assert_int_equal(lo, gp.amount_min);
                assert_int_equal(hi, gp.amount_max);
        }
        kp_free(from_seen);
}

static void test_amounts_and_accounts_in_range(void **state) {
        gen_params_t gp = params(99);
        (void)state;
        check_ranges(gp, 100000);
        gp.accounts   = 2;
        gp.amount_min = 7;
        gp.amount_max = 9;
        check_ranges(gp, 100000);
        gp.amount_min = 5;
        gp.amount_max = 5;
        check_ranges(gp, 1000);
        gp            = params(3);
        gp.amount_min = 1;
        gp.amount_max = INT64_MAX;
        gp.accounts   = 1000;
        check_ranges(gp, 100000);
        gp.amount_min = INT64_MAX;
        check_ranges(gp, 1000);
}

static void test_ratios_honoured(void **state) {
        gen_params_t gp = params(7);
        gen_record_t rec, orig;
        int64_t kinds[3] = {0}, inv[GEN_INV__CNT] = {0};
        const int64_t n = 100000;
        (void)state;
        gp.invalid_ppm   = 50000;  /* 5 % */
        gp.duplicate_ppm = 100000; /* 10 % */
        for (int64_t k = 0; k < n; k++) {
                gen_record(&gp, (uint64_t)k, &rec);
                kinds[rec.kind]++;
                if (rec.kind == GEN_INVALID) {
                        assert_true(rec.invalid < GEN_INV__CNT);
                        inv[rec.invalid]++;
                        assert_true(rec.payment == (uint64_t)k);
                } else if (rec.kind == GEN_DUPLICATE) {
                        /* It repeats an earlier record that is a new,
                         * valid payment, with that payment's fields. */
                        assert_true(rec.payment < (uint64_t)k);
                        gen_record(&gp, rec.payment, &orig);
                        assert_int_equal(orig.kind, GEN_VALID);
                        assert_int_equal(orig.payment, rec.payment);
                        assert_int_equal(orig.from, rec.from);
                        assert_int_equal(orig.to, rec.to);
                        assert_int_equal(orig.amount, rec.amount);
                } else {
                        assert_true(rec.payment == (uint64_t)k);
                }
        }
        /* Binomial: sigma is about 69 for 5 % and 95 for 10 % of 100k;
         * allow 5 sigma. */
        if (kinds[GEN_INVALID] < 5000 - 350 || kinds[GEN_INVALID] > 5000 + 350)
                fail_msg("%lld invalid of %lld", (long long)kinds[GEN_INVALID],
                         (long long)n);
        if (kinds[GEN_DUPLICATE] < 10000 - 480 ||
            kinds[GEN_DUPLICATE] > 10000 + 480)
                fail_msg("%lld duplicates of %lld",
                         (long long)kinds[GEN_DUPLICATE], (long long)n);
        /* Every kind of broken record, about a sixth each. */
        for (int i = 0; i < GEN_INV__CNT; i++)
                if (inv[i] < kinds[GEN_INVALID] / 6 - 200 ||
                    inv[i] > kinds[GEN_INVALID] / 6 + 200)
                        fail_msg("%lld %s records of %lld invalid",
                                 (long long)inv[i],
                                 gen_invalid_name((gen_invalid_t)i),
                                 (long long)kinds[GEN_INVALID]);

        /* No ratio: only new payments; ratio 1: nothing else. */
        gp = params(7);
        memset(kinds, 0, sizeof(kinds));
        for (int64_t k = 0; k < 10000; k++) {
                gen_record(&gp, (uint64_t)k, &rec);
                kinds[rec.kind]++;
        }
        assert_int_equal(kinds[GEN_VALID], 10000);
        gp.invalid_ppm = GEN_PPM;
        memset(kinds, 0, sizeof(kinds));
        for (int64_t k = 0; k < 10000; k++) {
                gen_record(&gp, (uint64_t)k, &rec);
                kinds[rec.kind]++;
        }
        assert_int_equal(kinds[GEN_INVALID], 10000);
        /* All duplicates: record 0 is new (nothing before it), and every
         * other one repeats it. */
        gp.invalid_ppm   = 0;
        gp.duplicate_ppm = GEN_PPM;
        gen_record(&gp, 0, &rec);
        assert_int_equal(rec.kind, GEN_VALID);
        for (int64_t k = 1; k < 1000; k++) {
                gen_record(&gp, (uint64_t)k, &rec);
                assert_int_equal(rec.kind, GEN_DUPLICATE);
                assert_true(rec.payment == 0);
        }
}

static void test_ids(void **state) {
        char buf[256];
        (void)state;
        assert_string_equal(gen_account_id(buf, sizeof(buf), 0), "acc-0");
        assert_string_equal(gen_account_id(buf, sizeof(buf), 99), "acc-99");
        assert_string_equal(gen_payment_id(buf, sizeof(buf), "gen-1-", 42),
                            "gen-1-42");
        assert_string_equal(gen_fund_id(buf, sizeof(buf), "gen-1-", 7),
                            "gen-1-fund-7");
}

static int starts_with(const char *s, const char *prefix) {
        return !strncmp(s, prefix, strlen(prefix));
}

/* Parses @p body (of @p len bytes, not NUL-terminated for the codec). */
static kp_pay_err_t parse_body(const char *body, size_t len, kp_payment_t *p) {
        char detail[256];
        return kp_payment_parse(body, len, p, detail, sizeof(detail));
}

static void test_valid_bodies(void **state) {
        gen_params_t gp = params(5);
        gen_record_t rec;
        kp_payment_t p, q;
        size_t len;
        (void)state;
        for (uint64_t k = 0; k < 200; k++) {
                gen_record(&gp, k, &rec);
                gen_payment("gen-9-", &rec, 1700000000123, &p);
                char *body = gen_body(&p, rec.kind, rec.invalid, &len);
                assert_int_equal(len, strlen(body));
                assert_int_equal(parse_body(body, len, &q), KP_PAY_E_OK);
                assert_int_equal(kp_payment_validate(&q), KP_REASON_NONE);
                assert_int_equal(q.state, KP_PAY_INCOMING);
                assert_string_equal(q.currency, "USD");
                assert_int_equal(q.amount, rec.amount);
                assert_int_equal(q.created_ms, 1700000000123);
                assert_int_equal(q.inflight_ms, -1);
                assert_int_equal(q.origin_partition, -1);
                char id[64], acc[32];
                assert_string_equal(
                    q.id, gen_payment_id(id, sizeof(id), "gen-9-", k));
                assert_string_equal(q.from,
                                    gen_account_id(acc, sizeof(acc), rec.from));
                assert_string_equal(q.to,
                                    gen_account_id(acc, sizeof(acc), rec.to));
                kp_payment_clear(&q);
                kp_free(body);
        }
        /* Funding: from @bank (a system account), valid. */
        gen_fund_payment("gen-9-", 3, 1000000, 1700000000000, &p);
        char *body = gen_body(&p, GEN_VALID, GEN_INV_NOT_JSON, &len);
        assert_int_equal(parse_body(body, len, &q), KP_PAY_E_OK);
        assert_int_equal(kp_payment_validate(&q), KP_REASON_NONE);
        assert_string_equal(q.id, "gen-9-fund-3");
        assert_string_equal(q.from, "@bank");
        assert_string_equal(q.to, "acc-3");
        assert_int_equal(q.amount, 1000000);
        kp_payment_clear(&q);
        kp_free(body);
}

static void test_invalid_bodies(void **state) {
        static const kp_pay_err_t expect[GEN_INV__CNT] = {
            [GEN_INV_NOT_JSON]        = KP_PAY_E_NOT_JSON,
            [GEN_INV_FLOAT_AMOUNT]    = KP_PAY_E_AMOUNT_NOT_INTEGER,
            [GEN_INV_STRING_AMOUNT]   = KP_PAY_E_AMOUNT_NOT_INTEGER,
            [GEN_INV_UNKNOWN_VERSION] = KP_PAY_E_UNKNOWN_VERSION,
            [GEN_INV_MISSING_FIELD]   = KP_PAY_E_MISSING_FIELD,
            [GEN_INV_TRUNCATED]       = KP_PAY_E_NOT_JSON,
        };
        /* Prefixes that look like the markers the bodies are edited at
         * must not confuse the edits. */
        static const char *const prefixes[] = {
            "gen-", ",\"amount\":1,\"from\":\"x\"-", "{\"v\":1,", "a\\\"b-"};
        gen_record_t rec = {.index   = 12,
                            .kind    = GEN_INVALID,
                            .payment = 12,
                            .from    = 3,
                            .to      = 4,
                            .amount  = 1250};
        kp_payment_t p, q;
        size_t len;
        (void)state;
        for (size_t pi = 0; pi < sizeof(prefixes) / sizeof(prefixes[0]); pi++) {
                gen_payment(prefixes[pi], &rec, 1700000000000, &p);
                for (int i = 0; i < GEN_INV__CNT; i++) {
                        char *body =
                            gen_body(&p, GEN_INVALID, (gen_invalid_t)i, &len);
                        assert_int_equal(len, strlen(body));
                        kp_pay_err_t err = parse_body(body, len, &q);
                        if (err != expect[i])
                                fail_msg("%s body %s: %s, expected %s",
                                         gen_invalid_name((gen_invalid_t)i),
                                         body, kp_pay_err2code(err),
                                         kp_pay_err2code(expect[i]));
                        if (err == KP_PAY_E_OK)
                                kp_payment_clear(&q);
                        kp_free(body);
                }
        }
        /* The exact edits. */
        gen_payment("g-", &rec, 1700000000000, &p);
        char *body = gen_body(&p, GEN_INVALID, GEN_INV_FLOAT_AMOUNT, &len);
        assert_non_null(strstr(body, "\"amount\":1250.5,"));
        kp_free(body);
        body = gen_body(&p, GEN_INVALID, GEN_INV_STRING_AMOUNT, &len);
        assert_non_null(strstr(body, "\"amount\":\"1250\","));
        kp_free(body);
        body = gen_body(&p, GEN_INVALID, GEN_INV_UNKNOWN_VERSION, &len);
        assert_true(starts_with(body, "{\"v\":2,\"id\":\"g-12\","));
        kp_free(body);
        body = gen_body(&p, GEN_INVALID, GEN_INV_MISSING_FIELD, &len);
        assert_true(
            starts_with(body, "{\"v\":1,\"id\":\"g-12\",\"to\":\"acc-4\","));
        assert_null(strstr(body, "from"));
        kp_free(body);
        body = gen_body(&p, GEN_INVALID, GEN_INV_NOT_JSON, &len);
        assert_non_null(strstr(body, "g-12"));
        kp_free(body);
        size_t full;
        char *valid = gen_body(&p, GEN_VALID, GEN_INV_NOT_JSON, &full);
        body        = gen_body(&p, GEN_INVALID, GEN_INV_TRUNCATED, &len);
        assert_int_equal(len, full / 2);
        assert_memory_equal(body, valid, len);
        kp_free(body);
        kp_free(valid);
        assert_string_equal(gen_invalid_name(GEN_INV_FLOAT_AMOUNT),
                            "float_amount");
        assert_string_equal(gen_invalid_name(GEN_INV__CNT), "unknown");
}

/* ------------------------------------------------------------------------
 * The schedule. */

static void test_schedule(void **state) {
        const int64_t s = 5000000000;
        (void)state;
        /* As fast as possible: everything is due at once. */
        assert_int_equal(gen_due_ns(s, 0, 0), s);
        assert_int_equal(gen_due_ns(s, 123456, 0), s);
        assert_int_equal(gen_due_ns(s, 0, 1000), s);
        assert_int_equal(gen_due_ns(s, 1, 1000), s + 1000000);
        assert_int_equal(gen_due_ns(s, 1000, 1000), s + 1000000000);
        assert_int_equal(gen_due_ns(s, 1, 1), s + 1000000000);
        /* A rate that does not divide a second: no drift accumulates, the
         * k-th record is due at exactly floor(k * 1e9 / rate). */
        assert_int_equal(gen_due_ns(s, 1, 3), s + 333333333);
        assert_int_equal(gen_due_ns(s, 2, 3), s + 666666666);
        assert_int_equal(gen_due_ns(s, 3, 3), s + 1000000000);
        assert_int_equal(gen_due_ns(s, 3000000, 3), s + 1000000000000000);
        assert_int_equal(gen_due_ns(s, 3000001, 3),
                         s + 1000000000000000 + 333333333);
        assert_int_equal(gen_due_ns(0, 7, 7000), 1000000);
        assert_int_equal(gen_due_ns(0, 10000000, 10000000), 1000000000);
        /* Never earlier than the one before. */
        int64_t prev = gen_due_ns(s, 0, 997);
        for (uint64_t k = 1; k < 100000; k++) {
                int64_t due = gen_due_ns(s, k, 997);
                assert_true(due >= prev);
                assert_true(due - prev <= 1003010 && due - prev >= 1003009);
                prev = due;
        }
        /* Far beyond the clock: saturates instead of wrapping. */
        assert_true(gen_due_ns(s, UINT64_MAX, 1) == INT64_MAX);
        assert_true(gen_due_ns(INT64_MAX - 10, 1, 1) == INT64_MAX);
}

/* ------------------------------------------------------------------------
 * Percentiles. */

static void test_percentiles(void **state) {
        int64_t v[100], one[1] = {42};
        int64_t four[4] = {40, 10, 30, 20};
        int64_t ties[5] = {5, 5, 5, 5, 9};
        (void)state;
        for (int i = 0; i < 100; i++)
                v[i] = 100 - i; /* 100 .. 1, unsorted */
        gen_sort_i64(v, 100);
        for (int i = 0; i < 100; i++)
                assert_int_equal(v[i], i + 1);
        assert_int_equal(gen_percentile(v, 100, 50), 50);
        assert_int_equal(gen_percentile(v, 100, 95), 95);
        assert_int_equal(gen_percentile(v, 100, 99), 99);
        assert_int_equal(gen_percentile(v, 100, 100), 100);
        assert_int_equal(gen_percentile(v, 100, 1), 1);
        /* Nearest rank on 10 values: p50 is the 5th, p95 and p99 the
         * 10th. */
        assert_int_equal(gen_percentile(v, 10, 50), 5);
        assert_int_equal(gen_percentile(v, 10, 95), 10);
        assert_int_equal(gen_percentile(v, 10, 90), 9);
        assert_int_equal(gen_percentile(one, 1, 50), 42);
        assert_int_equal(gen_percentile(one, 1, 99), 42);
        assert_int_equal(gen_percentile(NULL, 0, 50), 0);
        gen_sort_i64(four, 4);
        assert_int_equal(gen_percentile(four, 4, 50), 20);
        assert_int_equal(gen_percentile(four, 4, 75), 30);
        assert_int_equal(gen_percentile(four, 4, 76), 40);
        assert_int_equal(gen_percentile(four, 4, 95), 40);
        gen_sort_i64(ties, 5);
        assert_int_equal(gen_percentile(ties, 5, 80), 5);
        assert_int_equal(gen_percentile(ties, 5, 81), 9);
}

/* ------------------------------------------------------------------------
 * Outcome tracking. */

static void outcome(kp_payment_t *p, const char *id, kp_pay_state_t state,
                    const char *reason, int64_t created, int64_t complete) {
        memset(p, 0, sizeof(*p));
        p->v = 1;
        snprintf(p->id, sizeof(p->id), "%s", id);
        snprintf(p->from, sizeof(p->from), "acc-1");
        snprintf(p->to, sizeof(p->to), "acc-2");
        p->amount = 100;
        p->state  = state;
        snprintf(p->reason, sizeof(p->reason), "%s", reason);
        p->created_ms       = created;
        p->inflight_ms      = created;
        p->complete_ms      = complete;
        p->origin_partition = 0;
}

static void test_tracker(void **state) {
        gen_tracker_t *t = gen_tracker_new("run-", 3);
        gen_outcomes_t o;
        kp_payment_t p;
        char id[64];
        (void)state;

        for (int64_t i = 0; i < 3; i++)
                gen_tracker_expect_fund(t, i);
        for (uint64_t n = 0; n < 10; n++)
                if (n != 4) /* 4 was a broken record */
                        gen_tracker_expect(t, n);
        gen_tracker_expect(t, 3); /* twice counts once */
        assert_int_equal(gen_tracker_expected(t), 12);
        assert_int_equal(gen_tracker_pending(t), 12);
        assert_int_equal(gen_tracker_pending_fund(t), 3);

        /* Funding outcomes. */
        for (int i = 0; i < 3; i++) {
                snprintf(id, sizeof(id), "run-fund-%d", i);
                outcome(&p, id, KP_PAY_COMPLETE, "", 1000, 1010);
                assert_int_equal(gen_tracker_outcome(t, &p), 1);
        }
        assert_int_equal(gen_tracker_pending_fund(t), 0);
        assert_int_equal(gen_tracker_pending(t), 9);

        /* Not ours, or not an outcome: ignored. */
        outcome(&p, "other-1", KP_PAY_COMPLETE, "", 1000, 1001);
        assert_int_equal(gen_tracker_outcome(t, &p), 0);
        outcome(&p, "run-1", KP_PAY_DEBIT, "", 1000, -1);
        assert_int_equal(gen_tracker_outcome(t, &p), 0);
        outcome(&p, "run-01", KP_PAY_COMPLETE, "", 1000, 1001);
        assert_int_equal(gen_tracker_outcome(t, &p), 0);
        outcome(&p, "run-1x", KP_PAY_COMPLETE, "", 1000, 1001);
        assert_int_equal(gen_tracker_outcome(t, &p), 0);
        outcome(&p, "run-", KP_PAY_COMPLETE, "", 1000, 1001);
        assert_int_equal(gen_tracker_outcome(t, &p), 0);
        assert_int_equal(gen_tracker_pending(t), 9);

        /* Payments 0..5 complete with latencies 10..60 ms, 6 and 7 are
         * rejected. */
        for (int n = 0; n < 6; n++) {
                if (n == 4)
                        continue;
                snprintf(id, sizeof(id), "run-%d", n);
                outcome(&p, id, KP_PAY_COMPLETE, "", 1000, 1000 + 10 * (n + 1));
                assert_int_equal(gen_tracker_outcome(t, &p), 1);
        }
        outcome(&p, "run-6", KP_PAY_REJECTED, "insufficient_funds", 1000, 1100);
        assert_int_equal(gen_tracker_outcome(t, &p), 1);
        outcome(&p, "run-7", KP_PAY_REJECTED, "account_frozen", 1000, 1200);
        assert_int_equal(gen_tracker_outcome(t, &p), 1);
        assert_int_equal(gen_tracker_pending(t), 2); /* 8 and 9 */

        /* A second outcome of 6: counted as multiple, once per id. */
        outcome(&p, "run-6", KP_PAY_COMPLETE, "", 1000, 1300);
        assert_int_equal(gen_tracker_outcome(t, &p), 1);
        assert_int_equal(gen_tracker_outcome(t, &p), 1);
        /* The broken record 4 and a payment never sent: unexpected. */
        outcome(&p, "run-4", KP_PAY_COMPLETE, "", 1000, 1001);
        assert_int_equal(gen_tracker_outcome(t, &p), 1);
        outcome(&p, "run-100000", KP_PAY_COMPLETE, "", 1000, 1001);
        assert_int_equal(gen_tracker_outcome(t, &p), 1);
        outcome(&p, "run-fund-3", KP_PAY_COMPLETE, "", 1000, 1001);
        assert_int_equal(gen_tracker_outcome(t, &p), 1);

        /* 9 failed delivery: no longer waited for. Failing twice, or
         * failing one that has its outcome, changes nothing. */
        gen_tracker_failed(t, 0, 9);
        gen_tracker_failed(t, 0, 9);
        gen_tracker_failed(t, 0, 0);
        gen_tracker_failed(t, 1, 0);
        gen_tracker_failed(t, 0, 12345);
        assert_int_equal(gen_tracker_pending(t), 1);
        /* Waited for: the 10 with outcomes and 8. */
        assert_int_equal(gen_tracker_awaited(t), 11);

        gen_tracker_outcomes(t, &o);
        assert_int_equal(o.expected, 12);
        /* 9 failed; 0 and funding 0 "failed" after their outcome (a
         * report of an ambiguous delivery): all three count. */
        assert_int_equal(o.undelivered, 3);
        assert_int_equal(o.outcomes, 10);
        assert_int_equal(o.complete, 8); /* 3 funding + 0,1,2,3,5 */
        assert_int_equal(o.rejected, 2);
        assert_int_equal(o.reason_cnt, 2);
        assert_string_equal(o.reasons[0], "insufficient_funds");
        assert_int_equal(o.reason_counts[0], 1);
        assert_string_equal(o.reasons[1], "account_frozen");
        assert_int_equal(o.reason_counts[1], 1);
        assert_int_equal(o.missing, 1);
        assert_int_equal(o.multiple_outcomes, 1);
        assert_int_equal(o.unexpected, 3);
        /* Latencies of the payments (funding ones are not measured): 10,
         * 20, 30, 40, 60, 100, 200. */
        assert_int_equal(o.latency_cnt, 7);
        assert_int_equal(o.p50_ms, 40);
        assert_int_equal(o.p95_ms, 200);
        assert_int_equal(o.p99_ms, 200);
        assert_int_equal(o.max_ms, 200);

        /* The last one arrives. */
        outcome(&p, "run-8", KP_PAY_COMPLETE, "", 1000, 1001);
        assert_int_equal(gen_tracker_outcome(t, &p), 1);
        assert_int_equal(gen_tracker_pending(t), 0);
        /* An outcome for the failed one (it was written after all) is
         * counted, and pending stays 0. */
        outcome(&p, "run-9", KP_PAY_COMPLETE, "", 1000, 1001);
        assert_int_equal(gen_tracker_outcome(t, &p), 1);
        assert_int_equal(gen_tracker_pending(t), 0);
        gen_tracker_outcomes(t, &o);
        assert_int_equal(o.outcomes, 12);
        assert_int_equal(o.missing, 0);
        gen_tracker_destroy(t);
        gen_tracker_destroy(NULL);
}

static void test_tracker_many(void **state) {
        gen_tracker_t *t = gen_tracker_new("", 0);
        gen_outcomes_t o;
        kp_payment_t p;
        char id[32];
        (void)state;
        for (uint64_t n = 0; n < 50000; n++)
                gen_tracker_expect(t, n);
        for (int n = 49999; n >= 0; n--) {
                snprintf(id, sizeof(id), "%d", n);
                /* Latency n % 1000 ms: percentiles are known exactly. */
                outcome(&p, id, KP_PAY_COMPLETE, "", 1700000000000,
                        1700000000000 + n % 1000);
                assert_int_equal(gen_tracker_outcome(t, &p), 1);
        }
        gen_tracker_outcomes(t, &o);
        assert_int_equal(o.outcomes, 50000);
        assert_int_equal(o.missing, 0);
        assert_int_equal(o.p50_ms, 499);
        assert_int_equal(o.p95_ms, 949);
        assert_int_equal(o.p99_ms, 989);
        assert_int_equal(o.max_ms, 999);
        gen_tracker_destroy(t);
}

/* ------------------------------------------------------------------------
 * Progress and summary. */

static void test_progress_line(void **state) {
        char buf[256];
        (void)state;
        assert_string_equal(
            gen_progress_line(buf, sizeof(buf), 1234, 10000, 1200, 9987, 75),
            "sent 1234/10000  acked 1200  998.7/s ETA 1:15");
        assert_string_equal(
            gen_progress_line(buf, sizeof(buf), 1, 100000, 0, 1002, 3725),
            "sent 1/100000  acked 0  100.2/s ETA 1:02:05");
        assert_string_equal(
            gen_progress_line(buf, sizeof(buf), 5, -1, 0, 0, -1),
            "sent 5  acked 0  0.0/s");
        assert_int_equal(gen_rate_x10(1000, 1000), 10000);
        assert_int_equal(gen_rate_x10(1, 3), 3333);
        assert_int_equal(gen_rate_x10(10, 0), 0);
        assert_int_equal(gen_rate_x10(0, 10), 0);
}

static json_t *load(const char *s) {
        json_error_t jerr;
        json_t *j = json_loads(s, JSON_REJECT_DUPLICATES, &jerr);
        if (!j)
                fail_msg("summary is not JSON (%s): %s", jerr.text, s);
        return j;
}

static json_int_t jint(json_t *obj, const char *key) {
        json_t *v = json_object_get(obj, key);
        if (!json_is_integer(v))
                fail_msg("%s is not an integer", key);
        return json_integer_value(v);
}

static void test_summary_json(void **state) {
        gen_summary_t s = {
            .topic           = "blue.kpay.payments.incoming",
            .id_prefix       = "gen-\"1\"-",
            .seed            = 42,
            .sent            = 1100,
            .acked           = 1099,
            .failed          = 1,
            .duplicates_sent = 50,
            .invalid_sent    = 20,
            .funded          = 100,
            .elapsed_ms      = 1234,
        };
        (void)state;
        char *js = gen_summary_json(&s);
        assert_null(strchr(js, '\n'));
        json_t *j = load(js);
        assert_string_equal(json_string_value(json_object_get(j, "topic")),
                            "blue.kpay.payments.incoming");
        assert_string_equal(json_string_value(json_object_get(j, "id_prefix")),
                            "gen-\"1\"-");
        assert_int_equal(jint(j, "seed"), 42);
        assert_int_equal(jint(j, "sent"), 1100);
        assert_int_equal(jint(j, "acked"), 1099);
        assert_int_equal(jint(j, "failed"), 1);
        assert_int_equal(jint(j, "duplicates_sent"), 50);
        assert_int_equal(jint(j, "invalid_sent"), 20);
        assert_int_equal(jint(j, "funded"), 100);
        assert_true(json_is_false(json_object_get(j, "interrupted")));
        /* Printed as the short decimals they are. */
        assert_non_null(strstr(js, "\"elapsed_s\":1.234,"));
        assert_non_null(strstr(js, "\"rate\":810.3,"));
        assert_null(json_object_get(j, "outcomes"));
        assert_null(json_object_get(j, "latency_ms"));
        json_decref(j);
        kp_free(js);

        /* With --wait, from a tracker. */
        gen_tracker_t *t = gen_tracker_new("gen-", 0);
        kp_payment_t p;
        gen_tracker_expect(t, 0);
        gen_tracker_expect(t, 1);
        gen_tracker_expect(t, 2);
        outcome(&p, "gen-0", KP_PAY_COMPLETE, "", 1000, 1020);
        gen_tracker_outcome(t, &p);
        outcome(&p, "gen-1", KP_PAY_REJECTED, "insufficient_funds", 1000, 1030);
        gen_tracker_outcome(t, &p);
        s.waited    = 1;
        s.timed_out = 1;
        s.wait_ms   = 120000;
        gen_tracker_outcomes(t, &s.outcomes);
        js         = gen_summary_json(&s);
        j          = load(js);
        json_t *oc = json_object_get(j, "outcomes");
        assert_int_equal(jint(oc, "complete"), 1);
        assert_int_equal(jint(oc, "rejected"), 1);
        assert_int_equal(jint(json_object_get(oc, "rejected_by_reason"),
                              "insufficient_funds"),
                         1);
        json_t *lat = json_object_get(j, "latency_ms");
        assert_int_equal(jint(lat, "p50"), 20);
        assert_int_equal(jint(lat, "p95"), 30);
        assert_int_equal(jint(lat, "p99"), 30);
        assert_int_equal(jint(lat, "max"), 30);
        assert_int_equal(jint(j, "expected"), 3);
        assert_int_equal(jint(j, "undelivered"), 0);
        assert_int_equal(jint(j, "missing"), 1);
        assert_int_equal(jint(j, "multiple_outcomes"), 0);
        assert_int_equal(jint(j, "unexpected"), 0);
        assert_true(json_is_true(json_object_get(j, "timed_out")));
        assert_non_null(strstr(js, "\"wait_s\":120.0"));
        json_decref(j);
        kp_free(js);

        /* The text summary names the same numbers. */
        char *text   = NULL;
        size_t tsize = 0;
        FILE *fp     = open_memstream(&text, &tsize);
        assert_non_null(fp);
        gen_summary_print(&s, fp);
        fclose(fp);
        assert_non_null(strstr(text, "1100 records"));
        assert_non_null(strstr(text,
                               "1 COMPLETE, 1 REJECTED "
                               "(insufficient_funds 1)"));
        assert_non_null(strstr(text, "missing 1"));
        assert_non_null(strstr(text, "p50 20 ms"));
        free(text);
        gen_tracker_destroy(t);
}

/* The books: per currency, never across; balanced only when every
 * currency sums to 0, nobody regular is overdrawn and every value reads. */
static void test_books(void **state) {
        (void)state;
        gen_books_t b;
        gen_books_init(&b);
        assert_true(gen_books_balanced(&b)); /* no account at all */
        const char *bank =
            "{\"balances\":{\"EUR\":\"-500\",\"USD\":\"-1000\"},"
            "\"frozen\":false,\"updated_ms\":1,\"last_payment\":\"f\"}";
        const char *alice =
            "{\"balances\":{\"EUR\":\"200\",\"USD\":"
            "\"300\"},\"frozen\":false,\"updated_ms\":1,"
            "\"last_payment\":\"p\"}";
        const char *bob =
            "{\"balances\":{\"EUR\":\"300\",\"USD\":"
            "\"700\"},\"frozen\":true,\"updated_ms\":1,"
            "\"last_payment\":null}";
        gen_books_add(&b, "@bank", 5, bank, strlen(bank));
        gen_books_add(&b, "alice", 5, alice, strlen(alice));
        /* USD and EUR apart: 1000 USD would not cover -500 EUR. */
        assert_false(gen_books_balanced(&b));
        assert_true(kp_money_get(&b.sums, "USD") == -700);
        assert_true(kp_money_get(&b.sums, "EUR") == -300);
        gen_books_add(&b, "bob", 3, bob, strlen(bob));
        assert_true(gen_books_balanced(&b));
        assert_int_equal(b.accounts, 3);
        assert_int_equal(b.sums.cnt, 2);

        /* The summary carries them, as decimal strings. */
        gen_summary_t s = {.waited = 1, .books = &b};
        char *js        = gen_summary_json(&s);
        assert_non_null(
            strstr(js,
                   "\"books\":{\"balanced\":true,\"accounts\":3,"
                   "\"overdrawn\":0,\"corrupt\":0,\"sums\":{\"EUR\":"
                   "\"0\",\"USD\":\"0\"}}"));
        kp_free(js);
        char *text   = NULL;
        size_t tsize = 0;
        FILE *fp     = open_memstream(&text, &tsize);
        assert_non_null(fp);
        gen_summary_print(&s, fp);
        fclose(fp);
        assert_non_null(strstr(text, "books     balance: EUR 0, USD 0"));
        free(text);

        /* A regular account below 0 (a system one may be), and a value
         * that does not decode: not balanced. */
        const char *minus =
            "{\"balances\":{\"USD\":\"-1\"},\"frozen\":"
            "false,\"updated_ms\":1,\"last_payment\":null}";
        const char *plus =
            "{\"balances\":{\"USD\":\"1\"},\"frozen\":"
            "false,\"updated_ms\":1,\"last_payment\":null}";
        gen_books_add(&b, "carol", 5, minus, strlen(minus));
        gen_books_add(&b, "dave", 4, plus, strlen(plus));
        assert_true(kp_money_is_zero(&b.sums));
        assert_int_equal(b.overdrawn, 1);
        assert_false(gen_books_balanced(&b));
        gen_books_clear(&b);
        gen_books_add(&b, "@x", 2, minus, strlen(minus));
        gen_books_add(&b, "dave", 4, plus, strlen(plus));
        assert_true(gen_books_balanced(&b));
        gen_books_add(&b, "eve", 3, "{\"balance\":\"x\"}", 15);
        assert_int_equal(b.corrupt, 1);
        assert_false(gen_books_balanced(&b));
        gen_books_clear(&b);
}

/* kpay-metrics' view (--metrics): counts summed, histograms merged. */
static void test_server_view(void **state) {
        (void)state;
        gen_server_t v;
        memset(&v, 0, sizeof(v));
        static const char ok[] =
            "{\"windows\":[{\"complete\":{\"count\":2},\"rejected\":"
            "{\"count\":1},\"invalid\":{\"count\":0},\"late\":1,\"final\":"
            "true,\"latency_ms\":{\"e2e\":{\"histogram\":{\"count\":3,"
            "\"sum\":60,\"min\":10,\"max\":30,\"buckets\":[10,1,20,1,30,1]}}}},"
            "{\"complete\":{\"count\":1},\"rejected\":{\"count\":0},"
            "\"invalid\":{\"count\":4},\"late\":0,\"final\":false,"
            "\"latency_ms\":{\"e2e\":{\"histogram\":{\"count\":1,\"sum\":"
            "40,\"min\":40,\"max\":40,\"buckets\":[40,1]}}}}]}";
        assert_int_equal(gen_server_view(ok, strlen(ok), &v), KP_OK);
        assert_true(v.fetched);
        assert_int_equal(v.windows, 2);
        assert_false(v.all_final);
        assert_int_equal(v.complete, 3);
        assert_int_equal(v.rejected, 1);
        assert_int_equal(v.invalid, 4);
        assert_int_equal(v.late, 1);
        assert_int_equal(v.latency_cnt, 4);
        assert_int_equal(v.p50_ms, 20);
        assert_int_equal(v.p99_ms, 40);
        assert_int_equal(v.max_ms, 40);
        v.url    = "http://x:1";
        char *js = NULL;
        gen_summary_t sum;
        memset(&sum, 0, sizeof(sum));
        sum.server = &v;
        js         = gen_summary_json(&sum);
        assert_non_null(strstr(js, "\"server\":{\"url\":\"http://x:1\""));
        kp_free(js);
        static const char *const bad[] = {"", "{}", "{\"windows\":[{}]}"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                assert_int_equal(gen_server_view(bad[i], strlen(bad[i]), &v),
                                 KP_ERR_PARSE);
                assert_false(v.fetched);
                assert_true(v.error[0] != '\0');
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_parse_amount, setup, teardown),
            cmocka_unit_test_setup_teardown(test_parse_ratio, setup, teardown),
            cmocka_unit_test_setup_teardown(test_check_id_prefix, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_params_check, setup, teardown),
            cmocka_unit_test_setup_teardown(test_draw_deterministic, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_same_seed_same_stream, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_different_seeds_differ, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_amounts_and_accounts_in_range,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_ratios_honoured, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_ids, setup, teardown),
            cmocka_unit_test_setup_teardown(test_valid_bodies, setup, teardown),
            cmocka_unit_test_setup_teardown(test_invalid_bodies, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_schedule, setup, teardown),
            cmocka_unit_test_setup_teardown(test_percentiles, setup, teardown),
            cmocka_unit_test_setup_teardown(test_tracker, setup, teardown),
            cmocka_unit_test_setup_teardown(test_tracker_many, setup, teardown),
            cmocka_unit_test_setup_teardown(test_progress_line, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_summary_json, setup, teardown),
            cmocka_unit_test_setup_teardown(test_books, setup, teardown),
            cmocka_unit_test_setup_teardown(test_server_view, setup, teardown),
        };
        return cmocka_run_group_tests_name("gen", tests, NULL, NULL);
}
