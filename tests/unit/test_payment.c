/* Unit tests of kp_payment: parse, validate, serialize, account commands. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kpay/kp_mem.h"
#include "kpay/kp_payment.h"

#define PAY_PREFIX "{\"v\":1,\"id\":\"p-1\",\"from\":\"alice\",\"to\":\"bob\","
#define PAY_VALID  PAY_PREFIX "\"amount\":1250,\"state\":\"INCOMING\"}"

static int64_t live_at_start;

static int setup(void **state) {
        (void)state;
        live_at_start = kp_mem_live_allocations();
        return 0;
}

static int teardown(void **state) {
        (void)state;
        assert_int_equal(kp_mem_live_allocations(), live_at_start);
        return 0;
}

/* The same record with its first key's first character written as a
 * \\u escape: it means the same, but the fast reader (kp_jscan.h) refuses
 * escapes, so this copy takes the jansson path. NULL when @p buf has no
 * first key to rewrite. kp_free() it. */
static char *escaped_first_key(const char *buf, size_t len, size_t *outlen) {
        const char *q = buf;
        while ((size_t)(q - buf) < len &&
               (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r'))
                q++;
        if ((size_t)(q - buf) + 2 >= len || q[0] != '{' || q[1] != '"' ||
            q[2] == '"' || (unsigned char)q[2] < 0x20 ||
            (unsigned char)q[2] > 0x7e || q[2] == '\\')
                return NULL;
        size_t at = (size_t)(q - buf) + 2;
        char *out = kp_malloc(len + 6);
        memcpy(out, buf, at);
        snprintf(out + at, 7, "\\u%04x", (unsigned char)buf[at]);
        memcpy(out + at + 6, buf + at + 1, len - at - 1);
        *outlen = len + 5;
        return out;
}

/* Parses @p buf both ways (as it is, mostly through the fast reader, and
 * through jansson) and checks that they agree on everything: the error,
 * its detail and every field. */
static void check_paths_agree(const char *name, const char *buf, size_t len) {
        size_t elen;
        char *esc = escaped_first_key(buf, len, &elen);
        kp_payment_t a, b;
        char da[256], db[256];
        if (!esc)
                return;
        kp_pay_err_t ea = kp_payment_parse(buf, len, &a, da, sizeof(da));
        kp_pay_err_t eb = kp_payment_parse(esc, elen, &b, db, sizeof(db));
        /* A JSON syntax error is jansson's on both paths, and its byte
         * position moves with the escape. */
        if (ea != eb || (ea != KP_PAY_E_NOT_JSON && strcmp(da, db)))
                fail_msg("%s: fast path %s (%s), jansson %s (%s)", name,
                         kp_pay_err2code(ea), da, kp_pay_err2code(eb), db);
        if (ea == KP_PAY_E_OK) {
                /* Every field, also those that serialize alike (a stamp of
                 * 0 and of -1 are both left out). */
                assert_true(
                    a.v == b.v && a.amount == b.amount && a.state == b.state &&
                    a.created_ms == b.created_ms &&
                    a.inflight_ms == b.inflight_ms &&
                    a.complete_ms == b.complete_ms &&
                    a.origin_partition == b.origin_partition &&
                    a.debit_ms == b.debit_ms && a.credit_ms == b.credit_ms);
                assert_true(!strcmp(a.id, b.id) && !strcmp(a.from, b.from) &&
                            !strcmp(a.to, b.to) &&
                            !strcmp(a.currency, b.currency) &&
                            !strcmp(a.reason, b.reason));
                char *sa = kp_payment_serialize(&a, NULL);
                char *sb = kp_payment_serialize(&b, NULL);
                if (strcmp(sa, sb))
                        fail_msg("%s: fast path %s, jansson %s", name, sa, sb);
                kp_free(sa);
                kp_free(sb);
        }
        kp_payment_clear(&a);
        kp_payment_clear(&b);
        kp_free(esc);
}

static void parse_ok(const char *json, kp_payment_t *p) {
        char detail[256];
        kp_pay_err_t err =
            kp_payment_parse(json, strlen(json), p, detail, sizeof(detail));
        if (err != KP_PAY_E_OK)
                fail_msg("parse of %s failed: %s: %s", json,
                         kp_pay_err2code(err), detail);
        check_paths_agree(json, json, strlen(json));
}

/* Parses @p json, which must be valid, and returns the validation result. */
static kp_reason_t validate_json(const char *json) {
        kp_payment_t p;
        kp_reason_t reason;
        parse_ok(json, &p);
        reason = kp_payment_validate(&p);
        kp_payment_clear(&p);
        return reason;
}

/* A payment with the given id, from, to, amount and currency. */
static char *pay_json(const char *id, const char *from, const char *to,
                      const char *amount, const char *currency) {
        return kp_asprintf(
            "{\"v\":1,\"id\":\"%s\",\"from\":\"%s\",\"to\":\"%s\","
            "\"amount\":%s,\"currency\":\"%s\","
            "\"state\":\"INCOMING\"}",
            id, from, to, amount, currency);
}

static kp_reason_t validate_fields(const char *id, const char *from,
                                   const char *to, const char *amount,
                                   const char *currency) {
        char *json         = pay_json(id, from, to, amount, currency);
        kp_reason_t reason = validate_json(json);
        kp_free(json);
        return reason;
}

static char *repeat(char c, size_t n) {
        char *s = kp_malloc(n + 1);
        memset(s, c, n);
        s[n] = '\0';
        return s;
}

static void test_err_table(void **state) {
        (void)state;
        assert_int_equal(KP_PAY_E_OK, 0);
#define CHECK(name, code, desc)                                                \
        assert_string_equal(kp_pay_err2code(KP_PAY_E_##name), code);           \
        assert_string_equal(kp_pay_err2str(KP_PAY_E_##name), desc);
        KP_PAY_ERR_TABLE(CHECK)
#undef CHECK
        assert_string_equal(kp_pay_err2code((kp_pay_err_t)999), "unknown");
        assert_string_equal(kp_pay_err2str((kp_pay_err_t)999), "unknown error");
}

/* Every reason of the table round-trips through its wire code; NONE is "",
 * OTHER "other", and any string kpay does not know is OTHER. */
static void test_reason_table(void **state) {
        (void)state;
        int rows = 0;
        assert_int_equal(KP_REASON_NONE, 0);
#define CHECK(name, code, desc)                                                \
        assert_string_equal(kp_reason2str(KP_REASON_##name), code);            \
        assert_int_equal(kp_reason_from_str(code), KP_REASON_##name);          \
        rows++;
        KP_REASON_TABLE(CHECK)
#undef CHECK
        assert_int_equal(rows, KP_REASON_OTHER - 1);
        for (int r = 0; r < KP_REASON__CNT; r++) {
                const char *code = kp_reason2str((kp_reason_t)r);
                assert_non_null(code);
                assert_true(strlen(code) <= KP_PAYMENT_REASON_MAX);
                assert_int_equal(kp_reason_from_str(code), r);
                for (int q = 0; q < r; q++)
                        assert_string_not_equal(code,
                                                kp_reason2str((kp_reason_t)q));
        }
        assert_string_equal(kp_reason2str(KP_REASON_NONE), "");
        assert_string_equal(kp_reason2str(KP_REASON_OTHER), "other");
        assert_string_equal(kp_reason2str(KP_REASON__CNT), "other");
        assert_string_equal(kp_reason2str((kp_reason_t)-1), "other");
        assert_string_equal(kp_reason2str(KP_REASON_INSUFFICIENT_FUNDS),
                            "insufficient_funds");
        assert_int_equal(kp_reason_from_str(NULL), KP_REASON_NONE);
        assert_int_equal(kp_reason_from_str(""), KP_REASON_NONE);
        assert_int_equal(kp_reason_from_str("made_up\"}"), KP_REASON_OTHER);
        assert_int_equal(kp_reason_from_str("Insufficient_Funds"),
                         KP_REASON_OTHER);
        assert_int_equal(kp_reason_from_str("insufficient_funds "),
                         KP_REASON_OTHER);
        assert_int_equal(kp_reason_from_str("other"), KP_REASON_OTHER);
}

static void test_parse_minimal_defaults(void **state) {
        kp_payment_t p;
        (void)state;
        parse_ok(PAY_VALID, &p);
        assert_int_equal(p.v, 1);
        assert_string_equal(p.id, "p-1");
        assert_string_equal(p.from, "alice");
        assert_string_equal(p.to, "bob");
        assert_int_equal(p.amount, 1250);
        assert_string_equal(p.currency, "USD");
        assert_int_equal(p.state, KP_PAY_INCOMING);
        assert_string_equal(p.reason, "");
        assert_int_equal(p.created_ms, 0);
        assert_int_equal(p.inflight_ms, -1);
        assert_int_equal(p.complete_ms, -1);
        assert_int_equal(p.origin_partition, -1);
        assert_int_equal(p.debit_ms, -1);
        assert_int_equal(p.credit_ms, -1);
        assert_null(p.extra);
        assert_int_equal(kp_payment_validate(&p), KP_REASON_NONE);
        kp_payment_clear(&p);
        kp_payment_clear(&p); /* reusable, idempotent */
}

/* The stage stamps (D3): optional, parsed, carried forward, written only
 * when set, so that a record without them is written as before. */
static void test_stage_stamps(void **state) {
        kp_payment_t p;
        size_t len;
        char *out;
        (void)state;
        parse_ok(
            "{\"v\":1,\"id\":\"p-1\",\"from\":\"a\",\"to\":\"b\","
            "\"amount\":5,\"state\":\"COMPLETE\",\"debit_ms\":17,"
            "\"credit_ms\":null,\"x\":1}",
            &p);
        assert_int_equal(p.debit_ms, 17);
        assert_int_equal(p.credit_ms, -1);
        out = kp_payment_serialize(&p, &len);
        assert_non_null(strstr(out,
                               "\"origin_partition\":null,"
                               "\"debit_ms\":17,\"x\":1}"));
        assert_null(strstr(out, "credit_ms"));
        kp_free(out);
        p.credit_ms = 20;
        out         = kp_payment_serialize(&p, &len);
        assert_non_null(strstr(out, "\"debit_ms\":17,\"credit_ms\":20,"));
        kp_free(out);
        kp_payment_clear(&p);
        /* A stamp of the wrong type is a broken record. */
        char detail[128];
        assert_int_equal(
            kp_payment_parse("{\"v\":1,\"id\":\"p\",\"from\":\"a\","
                             "\"to\":\"b\",\"amount\":5,\"state\":\"DEBIT\","
                             "\"debit_ms\":\"x\"}",
                             strlen("{\"v\":1,\"id\":\"p\",\"from\":\"a\","
                                    "\"to\":\"b\",\"amount\":5,\"state\":"
                                    "\"DEBIT\",\"debit_ms\":\"x\"}"),
                             &p, detail, sizeof(detail)),
            KP_PAY_E_WRONG_TYPE);
}

static void test_round_trip_full(void **state) {
        static const char in[] =
            "{\"x_first\":\"s\",\"v\":1,\"id\":\"p-0001\",\"from\":\"alice\","
            "\"to\":\"bob\",\"amount\":1250,\"currency\":\"EUR\","
            "\"state\":\"REJECTED\",\"reason\":\"insufficient_funds\","
            "\"created_ms\":1700000000000,\"inflight_ms\":1700000000003,"
            "\"complete_ms\":1700000000009,\"origin_partition\":7,"
            "\"x_real\":1.5,\"x_int\":-3,\"x_true\":true,\"x_false\":false,"
            "\"x_null\":null,\"x_arr\":[1,\"a\",{\"b\":null}],"
            "\"x_obj\":{\"k\":[]},\"x_nul\":\"a\\u0000b\"}";
        static const char want[] =
            "{\"v\":1,\"id\":\"p-0001\",\"from\":\"alice\",\"to\":\"bob\","
            "\"amount\":1250,\"currency\":\"EUR\",\"state\":\"REJECTED\","
            "\"reason\":\"insufficient_funds\",\"created_ms\":1700000000000,"
            "\"inflight_ms\":1700000000003,\"complete_ms\":1700000000009,"
            "\"origin_partition\":7,\"x_first\":\"s\",\"x_real\":1.5,"
            "\"x_int\":-3,\"x_true\":true,\"x_false\":false,\"x_null\":null,"
            "\"x_arr\":[1,\"a\",{\"b\":null}],\"x_obj\":{\"k\":[]},"
            "\"x_nul\":\"a\\u0000b\"}";
        kp_payment_t p, q;
        size_t len, len2;
        char *out, *out2;
        (void)state;

        parse_ok(in, &p);
        assert_int_equal(p.state, KP_PAY_REJECTED);
        assert_string_equal(p.reason, "insufficient_funds");
        assert_int_equal(p.created_ms, 1700000000000LL);
        assert_int_equal(p.inflight_ms, 1700000000003LL);
        assert_int_equal(p.complete_ms, 1700000000009LL);
        assert_int_equal(p.origin_partition, 7);
        assert_non_null(p.extra);
        assert_int_equal(json_object_size(p.extra), 9);
        assert_true(json_is_real(json_object_get(p.extra, "x_real")));
        assert_true(json_is_null(json_object_get(p.extra, "x_null")));
        assert_null(json_object_get(p.extra, "v"));

        out = kp_payment_serialize(&p, &len);
        assert_non_null(out);
        assert_int_equal(len, strlen(out));
        assert_string_equal(out, want);

        parse_ok(out, &q);
        assert_int_equal(q.v, p.v);
        assert_string_equal(q.id, p.id);
        assert_string_equal(q.from, p.from);
        assert_string_equal(q.to, p.to);
        assert_int_equal(q.amount, p.amount);
        assert_string_equal(q.currency, p.currency);
        assert_int_equal(q.state, p.state);
        assert_string_equal(q.reason, p.reason);
        assert_int_equal(q.created_ms, p.created_ms);
        assert_int_equal(q.inflight_ms, p.inflight_ms);
        assert_int_equal(q.complete_ms, p.complete_ms);
        assert_int_equal(q.origin_partition, p.origin_partition);
        assert_true(json_equal(q.extra, p.extra));

        out2 = kp_payment_serialize(&q, &len2);
        assert_int_equal(len2, len);
        assert_string_equal(out2, out);

        kp_free(out);
        kp_free(out2);
        kp_payment_clear(&p);
        kp_payment_clear(&q);
}

static void test_round_trip_nulls(void **state) {
        static const char in[] =
            "{\"v\":1,\"id\":\"p-2\",\"from\":\"@bank\",\"to\":\"carol\","
            "\"amount\":1,\"currency\":null,\"state\":\"DEBIT\","
            "\"reason\":null,\"created_ms\":null,\"inflight_ms\":null,"
            "\"complete_ms\":null,\"origin_partition\":null}";
        static const char want[] =
            "{\"v\":1,\"id\":\"p-2\",\"from\":\"@bank\",\"to\":\"carol\","
            "\"amount\":1,\"currency\":\"USD\",\"state\":\"DEBIT\","
            "\"reason\":null,\"created_ms\":0,\"inflight_ms\":null,"
            "\"complete_ms\":null,\"origin_partition\":null}";
        kp_payment_t p, q;
        char *out;
        (void)state;

        parse_ok(in, &p);
        assert_string_equal(p.currency, "USD");
        assert_string_equal(p.reason, "");
        assert_int_equal(p.created_ms, 0);
        assert_int_equal(p.inflight_ms, -1);
        assert_int_equal(p.complete_ms, -1);
        assert_int_equal(p.origin_partition, -1);
        assert_null(p.extra);
        out = kp_payment_serialize(&p, NULL);
        assert_string_equal(out, want);
        parse_ok(out, &q);
        assert_int_equal(q.inflight_ms, -1);
        assert_int_equal(q.origin_partition, -1);
        assert_string_equal(q.reason, "");
        assert_null(q.extra);
        kp_free(out);
        kp_payment_clear(&p);
        kp_payment_clear(&q);
}

static void test_serialize_by_hand(void **state) {
        kp_payment_t p;
        char *out;
        (void)state;
        memset(&p, 0, sizeof(p));
        p.v = 1;
        strcpy(p.id, "h-1");
        strcpy(p.from, "x");
        strcpy(p.to, "y");
        p.amount = INT64_MAX;
        strcpy(p.currency, "GBP");
        p.state            = KP_PAY_COMPLETE;
        p.created_ms       = 5;
        p.inflight_ms      = 6;
        p.complete_ms      = -1;
        p.origin_partition = 0;
        out                = kp_payment_serialize(&p, NULL);
        assert_string_equal(
            out,
            "{\"v\":1,\"id\":\"h-1\",\"from\":\"x\",\"to\":\"y\","
            "\"amount\":9223372036854775807,\"currency\":\"GBP\","
            "\"state\":\"COMPLETE\",\"reason\":null,\"created_ms\":5,"
            "\"inflight_ms\":6,\"complete_ms\":null,\"origin_partition\":0}");
        kp_free(out);

        /* Invalid UTF-8 in a hand-made struct still serializes. */
        strcpy(p.reason, "bad\xff");
        out = kp_payment_serialize(&p, NULL);
        assert_non_null(strstr(out, "\"reason\":\"bad?\""));
        kp_free(out);

        /* extra cannot override a known field. */
        p.extra = json_pack("{s:i,s:s}", "amount", 3, "note", "n");
        assert_non_null(p.extra);
        out = kp_payment_serialize(&p, NULL);
        assert_non_null(strstr(out, "\"amount\":9223372036854775807"));
        assert_null(strstr(out, "\"amount\":3"));
        assert_non_null(strstr(out, ",\"note\":\"n\"}"));
        kp_free(out);
        kp_payment_clear(&p);
        assert_null(p.extra);
}

static void test_states(void **state) {
        static const struct {
                const char *name;
                kp_pay_state_t state;
        } states[] = {
            {"INCOMING", KP_PAY_INCOMING},   {"DEBIT", KP_PAY_DEBIT},
            {"CREDIT", KP_PAY_CREDIT},       {"COMPLETE", KP_PAY_COMPLETE},
            {"CONFIRMED", KP_PAY_CONFIRMED}, {"REJECTED", KP_PAY_REJECTED},
            {"REFUND", KP_PAY_REFUND},
        };
        size_t i;
        (void)state;
        for (i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
                kp_payment_t p;
                char *json, *out, *want;
                json = kp_asprintf(PAY_PREFIX "\"amount\":5,\"state\":\"%s\"}",
                                   states[i].name);
                parse_ok(json, &p);
                assert_int_equal(p.state, states[i].state);
                assert_string_equal(kp_pay_state2str(states[i].state),
                                    states[i].name);
                out  = kp_payment_serialize(&p, NULL);
                want = kp_asprintf("\"state\":\"%s\"", states[i].name);
                assert_non_null(strstr(out, want));
                kp_free(want);
                kp_free(out);
                kp_free(json);
                kp_payment_clear(&p);
        }
        assert_string_equal(kp_pay_state2str(KP_PAY_STATE_UNKNOWN), "UNKNOWN");
        assert_string_equal(kp_pay_state2str((kp_pay_state_t)77), "UNKNOWN");
}

static void test_unknown_state(void **state) {
        static const char *const unknown[] = {"PENDING", "debit", "", "UNKNOWN",
                                              "INCOMING "};
        size_t i;
        (void)state;
        for (i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
                kp_payment_t p;
                char *out;
                char *json = kp_asprintf(
                    PAY_PREFIX "\"amount\":5,\"state\":\"%s\"}", unknown[i]);
                parse_ok(json, &p);
                assert_int_equal(p.state, KP_PAY_STATE_UNKNOWN);
                /* a business-rule-wise valid payment: the processor rejects
                 * it as invalid_state */
                assert_int_equal(kp_payment_validate(&p), KP_REASON_NONE);
                out = kp_payment_serialize(&p, NULL);
                assert_non_null(strstr(out, "\"state\":\"UNKNOWN\""));
                kp_free(out);
                kp_free(json);
                kp_payment_clear(&p);
        }
}

static void test_system_accounts(void **state) {
        char *acct64 = repeat('a', 64), *acct65 = repeat('a', 65);
        char *sys64 = kp_asprintf("@%s", acct64);
        char *sys65 = kp_asprintf("@%s", acct65);
        (void)state;
        assert_true(kp_account_is_system("@bank"));
        assert_false(kp_account_is_system("bank"));
        assert_false(kp_account_is_system(""));
        assert_false(kp_account_is_system(NULL));

        assert_true(kp_account_id_valid("@bank"));
        assert_true(kp_account_id_valid("A.z_0:9-x"));
        assert_true(kp_account_id_valid(acct64));
        assert_true(kp_account_id_valid(sys64));
        assert_false(kp_account_id_valid(acct65));
        assert_false(kp_account_id_valid(sys65));
        assert_false(kp_account_id_valid("@"));
        assert_false(kp_account_id_valid("@@x"));
        assert_false(kp_account_id_valid("a@b"));
        assert_false(kp_account_id_valid(""));
        assert_false(kp_account_id_valid("a b"));
        assert_false(kp_account_id_valid("a/b"));
        assert_false(kp_account_id_valid(NULL));

        assert_int_equal(validate_fields("p", "@bank", "alice", "100", "USD"),
                         KP_REASON_NONE);
        assert_int_equal(validate_fields("p", "alice", "@bank", "100", "USD"),
                         KP_REASON_NONE);
        assert_int_equal(validate_fields("p", sys64, "alice", "100", "USD"),
                         KP_REASON_NONE);
        assert_int_equal(validate_fields("p", "@", "alice", "1", "USD"),
                         KP_REASON_INVALID_ACCOUNT);
        assert_int_equal(validate_fields("p", "@@x", "alice", "1", "USD"),
                         KP_REASON_INVALID_ACCOUNT);
        assert_int_equal(validate_fields("p", "@bank", "@bank", "1", "USD"),
                         KP_REASON_SAME_ACCOUNT);
        kp_free(acct64);
        kp_free(acct65);
        kp_free(sys64);
        kp_free(sys65);
}

static void test_validation_boundaries(void **state) {
        char *id128 = repeat('i', 128), *id129 = repeat('i', 129);
        char *id300 = repeat('i', 300);
        char *a64 = repeat('b', 64), *a65 = repeat('b', 65);
        char *a200 = repeat('b', 200);
        char *utf8 = kp_asprintf("%s\xc3\xa9\xc3\xa9", id128);
        kp_payment_t p;
        char *json;
        (void)state;

        assert_true(kp_payment_id_valid(id128));
        assert_false(kp_payment_id_valid(id129));
        assert_false(kp_payment_id_valid(""));
        assert_false(kp_payment_id_valid(NULL));
        assert_true(kp_payment_id_valid(" ~"));
        assert_false(kp_payment_id_valid("a\x7f"));
        assert_false(kp_payment_id_valid("a\x1f"));

        assert_int_equal(validate_fields(id128, "a", "b", "1", "USD"),
                         KP_REASON_NONE);
        assert_int_equal(validate_fields(id129, "a", "b", "1", "USD"),
                         KP_REASON_INVALID_ID);
        assert_int_equal(validate_fields("", "a", "b", "1", "USD"),
                         KP_REASON_INVALID_ID);
        assert_int_equal(validate_fields("a\\tb", "a", "b", "1", "USD"),
                         KP_REASON_INVALID_ID);
        assert_int_equal(validate_fields("a\\u007f", "a", "b", "1", "USD"),
                         KP_REASON_INVALID_ID);
        assert_int_equal(validate_fields("caf\xc3\xa9", "a", "b", "1", "USD"),
                         KP_REASON_INVALID_ID);

        /* Overlong (but under 4x) strings are cut to limit + 1: still
         * invalid, never silently valid. */
        json = pay_json(id300, "a", "b", "1", "USD");
        parse_ok(json, &p);
        assert_int_equal(strlen(p.id), KP_PAYMENT_ID_MAX + 1);
        assert_int_equal(kp_payment_validate(&p), KP_REASON_INVALID_ID);
        kp_payment_clear(&p);
        kp_free(json);
        json = pay_json(utf8, "a", "b", "1", "USD");
        parse_ok(json, &p);
        assert_int_equal(strlen(p.id), KP_PAYMENT_ID_MAX + 1);
        assert_int_equal(kp_payment_validate(&p), KP_REASON_INVALID_ID);
        kp_payment_clear(&p);
        kp_free(json);
        json = pay_json("p", a200, "b", "1", "USD");
        parse_ok(json, &p);
        assert_int_equal(strlen(p.from), KP_ACCOUNT_FIELD_MAX + 1);
        assert_int_equal(kp_payment_validate(&p), KP_REASON_INVALID_ACCOUNT);
        kp_payment_clear(&p);
        kp_free(json);

        assert_int_equal(validate_fields("p", a64, "b", "1", "USD"),
                         KP_REASON_NONE);
        assert_int_equal(validate_fields("p", "b", a64, "1", "USD"),
                         KP_REASON_NONE);
        assert_int_equal(validate_fields("p", a65, "b", "1", "USD"),
                         KP_REASON_INVALID_ACCOUNT);
        assert_int_equal(validate_fields("p", "b", a65, "1", "USD"),
                         KP_REASON_INVALID_ACCOUNT);
        assert_int_equal(validate_fields("p", "", "b", "1", "USD"),
                         KP_REASON_INVALID_ACCOUNT);
        assert_int_equal(validate_fields("p", "a b", "b", "1", "USD"),
                         KP_REASON_INVALID_ACCOUNT);
        assert_int_equal(validate_fields("p", "a", "b/c", "1", "USD"),
                         KP_REASON_INVALID_ACCOUNT);

        assert_int_equal(validate_fields("p", "alice", "alice", "1", "USD"),
                         KP_REASON_SAME_ACCOUNT);

        assert_int_equal(validate_fields("p", "a", "b", "1", "USD"),
                         KP_REASON_NONE);
        assert_int_equal(
            validate_fields("p", "a", "b", "9223372036854775807", "USD"),
            KP_REASON_NONE);
        assert_int_equal(validate_fields("p", "a", "b", "0", "USD"),
                         KP_REASON_INVALID_AMOUNT);
        assert_int_equal(validate_fields("p", "a", "b", "-5", "USD"),
                         KP_REASON_INVALID_AMOUNT);
        assert_int_equal(
            validate_fields("p", "a", "b", "-9223372036854775808", "USD"),
            KP_REASON_INVALID_AMOUNT);

        assert_int_equal(validate_fields("p", "a", "b", "1", "EUR"),
                         KP_REASON_NONE);
        assert_int_equal(validate_fields("p", "a", "b", "1", "usd"),
                         KP_REASON_INVALID_CURRENCY);
        assert_int_equal(validate_fields("p", "a", "b", "1", "US"),
                         KP_REASON_INVALID_CURRENCY);
        assert_int_equal(validate_fields("p", "a", "b", "1", "USDX"),
                         KP_REASON_INVALID_CURRENCY);
        assert_int_equal(validate_fields("p", "a", "b", "1", ""),
                         KP_REASON_INVALID_CURRENCY);
        assert_int_equal(validate_fields("p", "a", "b", "1", "U$D"),
                         KP_REASON_INVALID_CURRENCY);

        /* INT64_MAX round trips exactly. */
        json = pay_json("p", "a", "b", "9223372036854775807", "USD");
        parse_ok(json, &p);
        assert_true(p.amount == INT64_MAX);
        kp_payment_clear(&p);
        kp_free(json);

        kp_free(id128);
        kp_free(id129);
        kp_free(id300);
        kp_free(a64);
        kp_free(a65);
        kp_free(a200);
        kp_free(utf8);
}

/* Account ids at the boundary, with and without '@', as parsed from JSON:
 * an id one character too long never becomes a valid (other) id, however
 * the parser cuts it, and stays invalid through a round trip (the REJECTED
 * outcome that echoes it). */
static void test_account_length_boundaries(void **state) {
        (void)state;
        static const struct {
                int at, len; /* '@' or not, then len letters */
                int valid;
        } cases[] = {{0, 63, 1}, {0, 64, 1}, {0, 65, 0}, {0, 66, 0},
                     {0, 67, 0}, {1, 63, 1}, {1, 64, 1}, {1, 65, 0},
                     {1, 66, 0}, {1, 67, 0}, {1, 200, 0}};
        for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
                char id[256];
                snprintf(
                    id, sizeof(id), "%s%.*s", cases[i].at ? "@" : "",
                    cases[i].len,
                    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
                for (int side = 0; side < 2; side++) {
                        kp_payment_t p, back;
                        char *json =
                            side ? pay_json("p", "@bank", id, "1", "USD")
                                 : pay_json("p", id, "bob", "1", "USD");
                        parse_ok(json, &p);
                        kp_free(json);
                        const char *got  = side ? p.to : p.from;
                        kp_reason_t want = cases[i].valid
                                               ? KP_REASON_NONE
                                               : KP_REASON_INVALID_ACCOUNT;
                        if (kp_payment_validate(&p) != want)
                                fail_msg(
                                    "%s of %d characters%s: %s",
                                    side ? "to" : "from",
                                    cases[i].len + cases[i].at,
                                    cases[i].at ? " (with @)" : "",
                                    cases[i].valid ? "refused" : "accepted");
                        if (cases[i].valid)
                                assert_string_equal(got, id);
                        size_t len;
                        char *out = kp_payment_serialize(&p, &len);
                        parse_ok(out, &back);
                        assert_int_equal(kp_payment_validate(&back), want);
                        kp_free(out);
                        kp_payment_clear(&back);
                        kp_payment_clear(&p);
                }
                /* The same for an account command's account. */
                char cmd[512], detail[256];
                kp_account_cmd_t c;
                snprintf(cmd, sizeof(cmd),
                         "{\"v\":1,\"command\":\"FREEZE\",\"account\":\"%s\","
                         "\"id\":\"c1\"}",
                         id);
                kp_pay_err_t err = kp_account_cmd_parse(cmd, strlen(cmd), &c,
                                                        detail, sizeof(detail));
                if ((err == KP_PAY_E_OK) != cases[i].valid)
                        fail_msg(
                            "command for an account of %d characters%s: %s",
                            cases[i].len + cases[i].at,
                            cases[i].at ? " (with @)" : "",
                            err ? detail : "accepted");
        }
}

struct bad_input {
        const char *name;
        const char *buf;
        size_t len; /* 0: strlen(buf) */
        kp_pay_err_t err;
        const char *detail; /* a substring of the detail, or NULL */
};

static void check_bad(const struct bad_input *b) {
        kp_payment_t p;
        char detail[256];
        size_t len = b->len ? b->len : strlen(b->buf);
        kp_pay_err_t err;
        memset(detail, 'X', sizeof(detail));
        err = kp_payment_parse(b->buf, len, &p, detail, sizeof(detail));
        if (err != b->err)
                fail_msg("%s: expected %s, got %s (%s)", b->name,
                         kp_pay_err2code(b->err), kp_pay_err2code(err),
                         err ? detail : "");
        assert_null(p.extra);
        assert_non_null(memchr(detail, '\0', sizeof(detail)));
        assert_true(strlen(detail) > 0);
        if (b->detail && !strstr(detail, b->detail))
                fail_msg("%s: detail '%s' lacks '%s'", b->name, detail,
                         b->detail);
        check_paths_agree(b->name, b->buf, len);
}

#define P PAY_PREFIX

static void test_malformed(void **state) {
        static const char nul_byte[]        = "{\"v\":1,\0\"id\":\"x\"}";
        static const struct bad_input bad[] = {
            {"not json", "not json", 0, KP_PAY_E_NOT_JSON, NULL},
            {"empty input", "", 0, KP_PAY_E_NOT_JSON, NULL},
            {"truncated", P "\"amount\":12", 0, KP_PAY_E_NOT_JSON, NULL},
            {"truncated string", "{\"v\":1,\"id\":\"p-", 0, KP_PAY_E_NOT_JSON,
             NULL},
            {"trailing garbage", PAY_VALID "x", 0, KP_PAY_E_NOT_JSON, NULL},
            {"two objects", PAY_VALID PAY_VALID, 0, KP_PAY_E_NOT_JSON, NULL},
            {"raw NUL byte", nul_byte, sizeof(nul_byte) - 1, KP_PAY_E_NOT_JSON,
             NULL},
            {"array", "[1,2,3]", 0, KP_PAY_E_NOT_OBJECT, NULL},
            {"string", "\"payment\"", 0, KP_PAY_E_NOT_OBJECT, NULL},
            {"number", "42", 0, KP_PAY_E_NOT_OBJECT, NULL},
            {"null", "null", 0, KP_PAY_E_NOT_OBJECT, NULL},
            {"invalid utf-8",
             "{\"v\":1,\"id\":\"\xff\xfe\",\"from\":\"a\",\"to\":\"b\","
             "\"amount\":1,\"state\":\"INCOMING\"}",
             0, KP_PAY_E_NOT_JSON, "0xff"},
            {"overlong utf-8",
             P "\"amount\":1,\"state\":\"INCOMING\","
               "\"x\":\"\xc0\xaf\"}",
             0, KP_PAY_E_NOT_JSON, NULL},
            {"float amount", P "\"amount\":12.5,\"state\":\"INCOMING\"}", 0,
             KP_PAY_E_AMOUNT_NOT_INTEGER, "amount"},
            {"amount 12.0", P "\"amount\":12.0,\"state\":\"INCOMING\"}", 0,
             KP_PAY_E_AMOUNT_NOT_INTEGER, "amount"},
            {"amount 1e2", P "\"amount\":1e2,\"state\":\"INCOMING\"}", 0,
             KP_PAY_E_AMOUNT_NOT_INTEGER, "amount"},
            {"string amount", P "\"amount\":\"12\",\"state\":\"INCOMING\"}", 0,
             KP_PAY_E_AMOUNT_NOT_INTEGER, "amount"},
            {"boolean amount", P "\"amount\":true,\"state\":\"INCOMING\"}", 0,
             KP_PAY_E_AMOUNT_NOT_INTEGER, "amount"},
            {"object amount", P "\"amount\":{},\"state\":\"INCOMING\"}", 0,
             KP_PAY_E_AMOUNT_NOT_INTEGER, "amount"},
            {"amount 2^63",
             P "\"amount\":9223372036854775808,\"state\":\"INCOMING\"}", 0,
             KP_PAY_E_NOT_JSON, "integer"},
            {"amount -2^63-1",
             P "\"amount\":-9223372036854775809,\"state\":\"INCOMING\"}", 0,
             KP_PAY_E_NOT_JSON, "integer"},
            {"amount 1e400", P "\"amount\":1e400,\"state\":\"INCOMING\"}", 0,
             KP_PAY_E_NOT_JSON, NULL},
            {"null amount", P "\"amount\":null,\"state\":\"INCOMING\"}", 0,
             KP_PAY_E_MISSING_FIELD, "amount"},
            {"missing amount", P "\"state\":\"INCOMING\"}", 0,
             KP_PAY_E_MISSING_FIELD, "amount"},
            {"missing id",
             "{\"v\":1,\"from\":\"a\",\"to\":\"b\",\"amount\":1,"
             "\"state\":\"INCOMING\"}",
             0, KP_PAY_E_MISSING_FIELD, "'id'"},
            {"missing from",
             "{\"v\":1,\"id\":\"p\",\"to\":\"b\",\"amount\":1,"
             "\"state\":\"INCOMING\"}",
             0, KP_PAY_E_MISSING_FIELD, "'from'"},
            {"missing to",
             "{\"v\":1,\"id\":\"p\",\"from\":\"a\",\"amount\":1,"
             "\"state\":\"INCOMING\"}",
             0, KP_PAY_E_MISSING_FIELD, "'to'"},
            {"missing state", P "\"amount\":1}", 0, KP_PAY_E_MISSING_FIELD,
             "'state'"},
            {"null id",
             "{\"v\":1,\"id\":null,\"from\":\"a\",\"to\":\"b\",\"amount\":1,"
             "\"state\":\"INCOMING\"}",
             0, KP_PAY_E_MISSING_FIELD, "'id'"},
            {"v missing",
             "{\"id\":\"p\",\"from\":\"a\",\"to\":\"b\",\"amount\":1,"
             "\"state\":\"INCOMING\"}",
             0, KP_PAY_E_NO_VERSION, NULL},
            {"v null", "{\"v\":null,\"id\":\"p\"}", 0, KP_PAY_E_NO_VERSION,
             NULL},
            {"v string",
             "{\"v\":\"1\",\"id\":\"p\",\"from\":\"a\",\"to\":\"b\","
             "\"amount\":1,\"state\":\"INCOMING\"}",
             0, KP_PAY_E_NO_VERSION, NULL},
            {"v real", "{\"v\":1.0,\"id\":\"p\"}", 0, KP_PAY_E_NO_VERSION,
             NULL},
            {"v=2",
             "{\"v\":2,\"id\":\"p\",\"from\":\"a\",\"to\":\"b\",\"amount\":1,"
             "\"state\":\"INCOMING\"}",
             0, KP_PAY_E_UNKNOWN_VERSION, "2"},
            {"v=2 with other fields", "{\"v\":2,\"payment\":{}}", 0,
             KP_PAY_E_UNKNOWN_VERSION, NULL},
            {"v=0", "{\"v\":0,\"id\":\"p\"}", 0, KP_PAY_E_UNKNOWN_VERSION,
             NULL},
            {"v=-1", "{\"v\":-1}", 0, KP_PAY_E_UNKNOWN_VERSION, NULL},
            {"id number",
             "{\"v\":1,\"id\":42,\"from\":\"a\",\"to\":\"b\",\"amount\":1,"
             "\"state\":\"INCOMING\"}",
             0, KP_PAY_E_WRONG_TYPE, "'id'"},
            {"from object",
             "{\"v\":1,\"id\":\"p\",\"from\":{\"a\":1},\"to\":\"b\","
             "\"amount\":1,\"state\":\"INCOMING\"}",
             0, KP_PAY_E_WRONG_TYPE, "'from'"},
            {"to array",
             "{\"v\":1,\"id\":\"p\",\"from\":\"a\",\"to\":[\"b\"],"
             "\"amount\":1,\"state\":\"INCOMING\"}",
             0, KP_PAY_E_WRONG_TYPE, "'to'"},
            {"state number", P "\"amount\":1,\"state\":3}", 0,
             KP_PAY_E_WRONG_TYPE, "'state'"},
            {"state with NUL", P "\"amount\":1,\"state\":\"DEBIT\\u0000\"}", 0,
             KP_PAY_E_WRONG_TYPE, "'state'"},
            {"currency number",
             P "\"amount\":1,\"state\":\"INCOMING\",\"currency\":840}", 0,
             KP_PAY_E_WRONG_TYPE, "'currency'"},
            {"reason array",
             P "\"amount\":1,\"state\":\"INCOMING\",\"reason\":[]}", 0,
             KP_PAY_E_WRONG_TYPE, "'reason'"},
            {"created_ms string",
             P "\"amount\":1,\"state\":\"INCOMING\",\"created_ms\":\"1\"}", 0,
             KP_PAY_E_WRONG_TYPE, "'created_ms'"},
            {"inflight_ms real",
             P "\"amount\":1,\"state\":\"INCOMING\",\"inflight_ms\":1.5}", 0,
             KP_PAY_E_WRONG_TYPE, "'inflight_ms'"},
            {"complete_ms bool",
             P "\"amount\":1,\"state\":\"INCOMING\",\"complete_ms\":false}", 0,
             KP_PAY_E_WRONG_TYPE, "'complete_ms'"},
            {"origin_partition string",
             P "\"amount\":1,\"state\":\"INCOMING\","
               "\"origin_partition\":\"7\"}",
             0, KP_PAY_E_WRONG_TYPE, "'origin_partition'"},
            {"origin_partition 2^40",
             P "\"amount\":1,\"state\":\"INCOMING\","
               "\"origin_partition\":1099511627776}",
             0, KP_PAY_E_WRONG_TYPE, "'origin_partition'"},
            {"origin_partition 2^31",
             P "\"amount\":1,\"state\":\"INCOMING\","
               "\"origin_partition\":2147483648}",
             0, KP_PAY_E_WRONG_TYPE, "'origin_partition'"},
            {"origin_partition -1",
             P "\"amount\":1,\"state\":\"INCOMING\",\"origin_partition\":-1}",
             0, KP_PAY_E_WRONG_TYPE, "'origin_partition'"},
            {"embedded NUL in id",
             "{\"v\":1,\"id\":\"a\\u0000b\",\"from\":\"a\",\"to\":\"b\","
             "\"amount\":1,\"state\":\"INCOMING\"}",
             0, KP_PAY_E_WRONG_TYPE, "NUL"},
            {"embedded NUL in from",
             "{\"v\":1,\"id\":\"p\",\"from\":\"a\\u0000\",\"to\":\"b\","
             "\"amount\":1,\"state\":\"INCOMING\"}",
             0, KP_PAY_E_WRONG_TYPE, "'from'"},
            {"duplicate keys",
             P "\"amount\":1,\"amount\":2,\"state\":\"INCOMING\"}", 0,
             KP_PAY_E_NOT_JSON, "duplicate"},
            {"duplicate unknown keys",
             P "\"amount\":1,\"state\":\"INCOMING\",\"x\":1,\"x\":1}", 0,
             KP_PAY_E_NOT_JSON, "duplicate"},
        };
        size_t i;
        (void)state;
        assert_true(sizeof(bad) / sizeof(bad[0]) >= 25);
        for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                check_bad(&bad[i]);
}

#undef P

static void test_too_long(void **state) {
        char *id10k = repeat('x', 10000), *id512 = repeat('x', 512),
             *id513 = repeat('x', 513), *from261 = repeat('f', 261),
             *cur33 = repeat('U', 33), *reason = repeat('r', 257);
        struct bad_input b = {"10,000-char id", NULL, 0, KP_PAY_E_TOO_LONG,
                              "'id'"};
        char *json;
        kp_payment_t p;
        (void)state;

        b.buf = json = pay_json(id10k, "a", "b", "1", "USD");
        check_bad(&b);
        kp_free(json);
        b.name = "513-char id";
        b.buf = json = pay_json(id513, "a", "b", "1", "USD");
        check_bad(&b);
        kp_free(json);
        b.name   = "261-char from";
        b.detail = "'from'";
        b.buf = json = pay_json("p", from261, "b", "1", "USD");
        check_bad(&b);
        kp_free(json);
        b.name   = "33-char currency";
        b.detail = "'currency'";
        b.buf = json = pay_json("p", "a", "b", "1", cur33);
        check_bad(&b);
        kp_free(json);
        b.name   = "257-char reason";
        b.detail = "'reason'";
        b.buf = json = kp_asprintf(
            PAY_PREFIX "\"amount\":1,\"state\":\"REJECTED\",\"reason\":\"%s\"}",
            reason);
        check_bad(&b);
        kp_free(json);

        /* 4x the limit exactly still parses (and fails validation). */
        json = pay_json(id512, "a", "b", "1", "USD");
        parse_ok(json, &p);
        assert_int_equal(kp_payment_validate(&p), KP_REASON_INVALID_ID);
        kp_payment_clear(&p);
        kp_free(json);

        kp_free(id10k);
        kp_free(id512);
        kp_free(id513);
        kp_free(from261);
        kp_free(cur33);
        kp_free(reason);
}

static void test_detail_buffers(void **state) {
        kp_payment_t p;
        char small[8];
        (void)state;
        /* No detail buffer at all. */
        assert_int_equal(kp_payment_parse("[]", 2, &p, NULL, 0),
                         KP_PAY_E_NOT_OBJECT);
        assert_int_equal(kp_payment_parse(NULL, 0, &p, NULL, 0),
                         KP_PAY_E_NOT_JSON);
        /* A small one is truncated and terminated. */
        assert_int_equal(
            kp_payment_parse("{\"v\":7}", 7, &p, small, sizeof(small)),
            KP_PAY_E_UNKNOWN_VERSION);
        assert_int_equal(strlen(small), sizeof(small) - 1);
        /* On success the detail is empty. */
        assert_int_equal(kp_payment_parse(PAY_VALID, strlen(PAY_VALID), &p,
                                          small, sizeof(small)),
                         KP_PAY_E_OK);
        assert_string_equal(small, "");
        kp_payment_clear(&p);
        /* The length is honoured: the buffer need not be NUL-terminated. */
        assert_int_equal(kp_payment_parse(PAY_VALID "garbage",
                                          strlen(PAY_VALID), &p, NULL, 0),
                         KP_PAY_E_OK);
        kp_payment_clear(&p);
}

static void test_copy(void **state) {
        static const char in[] = PAY_PREFIX
            "\"amount\":3,\"state\":\"CREDIT\",\"x\":{\"deep\":[1]}}";
        kp_payment_t p, q;
        char *a, *b;
        (void)state;
        parse_ok(in, &p);
        kp_payment_copy(&q, &p);
        assert_ptr_not_equal(q.extra, p.extra);
        assert_true(json_equal(q.extra, p.extra));
        a = kp_payment_serialize(&p, NULL);
        b = kp_payment_serialize(&q, NULL);
        assert_string_equal(a, b);
        kp_free(b);
        /* The copy is deep: changing it leaves the original alone. */
        json_array_append_new(
            json_object_get(json_object_get(q.extra, "x"), "deep"),
            json_integer(2));
        kp_payment_clear(&p);
        b = kp_payment_serialize(&q, NULL);
        assert_non_null(strstr(b, "\"deep\":[1,2]"));
        assert_non_null(strstr(a, "\"deep\":[1]"));
        kp_free(a);
        kp_free(b);
        kp_payment_clear(&q);

        /* Without extra. */
        parse_ok(PAY_VALID, &p);
        kp_payment_copy(&q, &p);
        assert_null(q.extra);
        assert_string_equal(q.id, "p-1");
        kp_payment_clear(&p);
        kp_payment_clear(&q);
}

static kp_pay_err_t cmd_parse(const char *json, kp_account_cmd_t *cmd,
                              char *detail, size_t size) {
        return kp_account_cmd_parse(json, strlen(json), cmd, detail, size);
}

static void test_account_cmd(void **state) {
        static const char in[] =
            "{\"v\":1,\"command\":\"FREEZE\",\"account\":\"alice\","
            "\"id\":\"cmd-1\",\"created_ms\":1700000000000}";
        kp_account_cmd_t cmd, cmd2;
        char detail[256];
        char *out;
        size_t len;
        (void)state;

        assert_int_equal(cmd_parse(in, &cmd, detail, sizeof(detail)),
                         KP_PAY_E_OK);
        assert_int_equal(cmd.v, 1);
        assert_int_equal(cmd.command, KP_CMD_FREEZE);
        assert_string_equal(cmd.account, "alice");
        assert_string_equal(cmd.id, "cmd-1");
        assert_int_equal(cmd.created_ms, 1700000000000LL);
        out = kp_account_cmd_serialize(&cmd, &len);
        assert_string_equal(out, in);
        assert_int_equal(len, strlen(in));
        assert_int_equal(cmd_parse(out, &cmd2, detail, sizeof(detail)),
                         KP_PAY_E_OK);
        assert_memory_equal(&cmd, &cmd2, sizeof(cmd));
        kp_free(out);

        /* id and created_ms are optional; unknown fields are ignored. */
        assert_int_equal(
            cmd_parse("{\"v\":1,\"command\":\"UNFREEZE\",\"account\":\"@bank\","
                      "\"extra\":[1]}",
                      &cmd, detail, sizeof(detail)),
            KP_PAY_E_OK);
        assert_int_equal(cmd.command, KP_CMD_UNFREEZE);
        assert_string_equal(cmd.account, "@bank");
        assert_string_equal(cmd.id, "");
        assert_int_equal(cmd.created_ms, 0);
        out = kp_account_cmd_serialize(&cmd, NULL);
        assert_string_equal(out,
                            "{\"v\":1,\"command\":\"UNFREEZE\",\"account\":"
                            "\"@bank\",\"id\":null,\"created_ms\":0}");
        assert_int_equal(cmd_parse(out, &cmd2, detail, sizeof(detail)),
                         KP_PAY_E_OK);
        assert_memory_equal(&cmd, &cmd2, sizeof(cmd));
        kp_free(out);
}

static void test_account_cmd_errors(void **state) {
        static const struct {
                const char *json;
                kp_pay_err_t err;
        } bad[] = {
            {"{\"v\":1,\"command\":\"DELETE\",\"account\":\"a\"}",
             KP_PAY_E_WRONG_TYPE},
            {"{\"v\":1,\"command\":\"freeze\",\"account\":\"a\"}",
             KP_PAY_E_WRONG_TYPE},
            {"{\"v\":1,\"command\":\"FREEZE\\u0000\",\"account\":\"a\"}",
             KP_PAY_E_WRONG_TYPE},
            {"{\"v\":1,\"command\":7,\"account\":\"a\"}", KP_PAY_E_WRONG_TYPE},
            {"{\"v\":1,\"command\":\"FREEZE\",\"account\":\"a b\"}",
             KP_PAY_E_WRONG_TYPE},
            {"{\"v\":1,\"command\":\"FREEZE\",\"account\":\"@\"}",
             KP_PAY_E_WRONG_TYPE},
            {"{\"v\":1,\"command\":\"FREEZE\",\"account\":\"\"}",
             KP_PAY_E_WRONG_TYPE},
            {"{\"v\":1,\"command\":\"FREEZE\",\"account\":3}",
             KP_PAY_E_WRONG_TYPE},
            {"{\"v\":1,\"command\":\"FREEZE\"}", KP_PAY_E_MISSING_FIELD},
            {"{\"v\":1,\"account\":\"a\"}", KP_PAY_E_MISSING_FIELD},
            {"{\"v\":1,\"command\":\"FREEZE\",\"account\":\"a\",\"id\":5}",
             KP_PAY_E_WRONG_TYPE},
            {"{\"v\":1,\"command\":\"FREEZE\",\"account\":\"a\","
             "\"created_ms\":\"x\"}",
             KP_PAY_E_WRONG_TYPE},
            {"{\"command\":\"FREEZE\",\"account\":\"a\"}", KP_PAY_E_NO_VERSION},
            {"{\"v\":2,\"command\":\"FREEZE\",\"account\":\"a\"}",
             KP_PAY_E_UNKNOWN_VERSION},
            {"[\"command\"]", KP_PAY_E_NOT_OBJECT},
            {"{\"v\":1,\"command\":", KP_PAY_E_NOT_JSON},
        };
        size_t i;
        (void)state;
        for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                kp_account_cmd_t cmd;
                char detail[256] = "";
                kp_pay_err_t err =
                    cmd_parse(bad[i].json, &cmd, detail, sizeof(detail));
                if (err != bad[i].err)
                        fail_msg("%s: expected %s, got %s", bad[i].json,
                                 kp_pay_err2code(bad[i].err),
                                 kp_pay_err2code(err));
                assert_true(strlen(detail) > 0);
        }
}

static void test_is_account_cmd(void **state) {
        static const struct {
                const char *json;
                int is_cmd;
        } cases[] = {
            {"{\"v\":1,\"command\":\"FREEZE\",\"account\":\"a\"}", 1},
            {"{\"command\":\"anything\"}", 1},
            {"{\"v\":1,\"\\u0063ommand\":\"FREEZE\",\"account\":\"a\"}", 1},
            {PAY_VALID, 0},
            {"{\"v\":1,\"id\":\"command\",\"from\":\"command\",\"to\":\"b\","
             "\"amount\":1,\"state\":\"INCOMING\"}",
             0},
            {"{\"v\":1,\"id\":\"a\\\\b\",\"x\":{\"command\":1}}", 0},
            {"{\"command\":null}", 0},
            {"[\"command\"]", 0},
            {"\"command\"", 0},
            {"command", 0},
            {"{\"command\":\"FREEZE\"", 0},
            {"", 0},
        };
        size_t i;
        (void)state;
        for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
                if (kp_is_account_cmd(cases[i].json, strlen(cases[i].json)) !=
                    cases[i].is_cmd)
                        fail_msg("kp_is_account_cmd(%s) != %d", cases[i].json,
                                 cases[i].is_cmd);
        assert_false(kp_is_account_cmd(NULL, 0));
        /* The length is honoured. */
        assert_false(kp_is_account_cmd("{\"command\":1}", 5));
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_err_table, setup, teardown),
            cmocka_unit_test_setup_teardown(test_reason_table, setup, teardown),
            cmocka_unit_test_setup_teardown(test_account_length_boundaries,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_parse_minimal_defaults, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_round_trip_full, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_stage_stamps, setup, teardown),
            cmocka_unit_test_setup_teardown(test_round_trip_nulls, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_serialize_by_hand, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_states, setup, teardown),
            cmocka_unit_test_setup_teardown(test_unknown_state, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_system_accounts, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_validation_boundaries, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
            cmocka_unit_test_setup_teardown(test_too_long, setup, teardown),
            cmocka_unit_test_setup_teardown(test_detail_buffers, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_copy, setup, teardown),
            cmocka_unit_test_setup_teardown(test_account_cmd, setup, teardown),
            cmocka_unit_test_setup_teardown(test_account_cmd_errors, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_is_account_cmd, setup,
                                            teardown),
        };
        int64_t live = kp_mem_live_allocations();
        int rc       = cmocka_run_group_tests(tests, NULL, NULL);
        if (kp_mem_live_allocations() != live) {
                fprintf(stderr, "leak: %lld kp allocations live\n",
                        (long long)(kp_mem_live_allocations() - live));
                return 1;
        }
        return rc;
}
