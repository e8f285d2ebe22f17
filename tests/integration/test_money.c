/* Integration test of money on the real pipeline (issue 13, defects 4 and
 * 7): real kpay-inflight, kpay-account and kpay-confirmed processes on the
 * fixture's broker, one partition, so that every total of a test is one
 * store value.
 *
 * - Payments near INT64_MAX: each gets exactly one outcome (COMPLETE, or
 *   REJECTED balance_overflow, with the refund where the credit failed),
 *   each reaches kpay.payments.confirmed, nothing is dead-lettered, and the
 *   totals hold the exact sums beyond int64 (they used to dead-letter with
 *   ERR_OVERFLOW: the client never learned the outcome).
 * - Two currencies between the same accounts, and a system account holding
 *   both: separate balances (a EUR payment is not paid with USD), totals
 *   per currency, and the books sum to 0 in each currency (they used to be
 *   one int64 per account). */
#include <inttypes.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "it_util.h"
#include "kpay/kp_money.h"
#include "kpay/kp_topics.h"

#define PARTITIONS 1

static char prefix[64], root[256];
static it_daemon_t inflight, account, confirmed;

static void topic(char *buf, size_t size, kp_topic_id_t id) {
        kp_topic_name(buf, size, prefix, id);
}

static void nap_ms(int ms) {
        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
}

static void start(it_daemon_t *d, const char *bin_env, const char *id) {
        const char *extra[] = {"--state-dir", d->state, NULL};
        it_daemon_init(d, bin_env, root, id);
        it_daemon_spawn(d, prefix, extra);
}

static int setup(void **state) {
        (void)state;
        it_unique_prefix(prefix, sizeof(prefix), "money");
        snprintf(root, sizeof(root), "/tmp/kpay-it-money-XXXXXX");
        if (!mkdtemp(root))
                return -1;
        if (it_admin_topics(prefix, PARTITIONS))
                return -1;
        start(&inflight, "KPAY_INFLIGHT_BIN", "inflight-1");
        start(&account, "KPAY_ACCOUNT_BIN", "account-1");
        start(&confirmed, "KPAY_CONFIRMED_BIN", "confirmed-1");
        it_daemon_wait_ready(&inflight, 90000);
        it_daemon_wait_ready(&account, 90000);
        it_daemon_wait_ready(&confirmed, 90000);
        return 0;
}

static int teardown(void **state) {
        (void)state;
        it_daemon_t *all[] = {&inflight, &account, &confirmed};
        it_daemons_teardown(all, 3, root);
        return 0;
}

/* One payment to submit. */
typedef struct pay_s {
        const char *id, *from, *to, *currency;
        int64_t amount;
} pay_t;

/* Produces @p cnt payments in one go (one producer, one flush), so that
 * they enter flight together. */
static void submit(const pay_t *p, size_t cnt) {
        char in[256], buf[512];
        topic(in, sizeof(in), KP_TOPIC_INCOMING);
        rd_kafka_t *rk = it_producer();
        for (size_t i = 0; i < cnt; i++) {
                snprintf(buf, sizeof(buf),
                         "{\"v\":1,\"id\":\"%s\",\"from\":\"%s\",\"to\":\"%s\","
                         "\"amount\":%" PRId64
                         ",\"currency\":\"%s\",\"state\":\"INCOMING\","
                         "\"created_ms\":%" PRId64 "}",
                         p[i].id, p[i].from, p[i].to, p[i].amount,
                         p[i].currency, (int64_t)time(NULL) * 1000);
                it_produce(rk, in, -1, p[i].id, buf);
        }
        it_producer_close(rk);
}

/* The records of @p topic whose key starts with @p id_prefix, as parsed
 * JSON values in an array (json_decref() it). */
static json_t *records(kp_topic_id_t id, const char *id_prefix) {
        char t[256];
        it_rec_t *recs;
        topic(t, sizeof(t), id);
        json_t *out = json_array();
        size_t cnt  = it_read_all(t, "read_committed", &recs);
        for (size_t i = 0; i < cnt; i++) {
                if (!recs[i].key ||
                    strncmp(recs[i].key, id_prefix, strlen(id_prefix)))
                        continue;
                json_error_t jerr;
                json_t *v =
                    recs[i].value ? json_loads(recs[i].value, 0, &jerr) : NULL;
                if (!v)
                        fail_msg("%s: a record that is not JSON: %s", t,
                                 recs[i].value ? recs[i].value : "(null)");
                json_array_append_new(out, v);
        }
        it_free_recs(recs, cnt);
        return out;
}

/* Waits until every payment of @p p has an outcome on
 * kpay.payments.complete and on kpay.payments.confirmed, then checks it
 * has exactly one of each, with the state @p want[i] ("COMPLETE" or
 * "REJECTED:<reason>"), and that the DLQ holds nothing. */
static void expect_outcomes(const char *id_prefix, const pay_t *p,
                            const char *const *want, size_t cnt) {
        int64_t deadline = it_now_ms() + 120000;
        json_t *complete, *confirmed_recs;
        for (;;) {
                complete       = records(KP_TOPIC_COMPLETE, id_prefix);
                confirmed_recs = records(KP_TOPIC_CONFIRMED, id_prefix);
                if (json_array_size(complete) >= cnt &&
                    json_array_size(confirmed_recs) >= cnt)
                        break;
                if (it_now_ms() > deadline) {
                        it_dump_log(inflight.log, 20);
                        it_dump_log(account.log, 20);
                        it_dump_log(confirmed.log, 20);
                        fail_msg(
                            "%zu of %zu outcomes, %zu of %zu on "
                            "kpay.payments.confirmed",
                            json_array_size(complete), cnt,
                            json_array_size(confirmed_recs), cnt);
                }
                json_decref(complete);
                json_decref(confirmed_recs);
                nap_ms(200);
        }
        for (size_t i = 0; i < cnt; i++) {
                int n = 0, nconf = 0;
                size_t j;
                json_t *r;
                json_array_foreach(complete, j, r) {
                        if (strcmp(json_string_value(json_object_get(r, "id")),
                                   p[i].id))
                                continue;
                        n++;
                        const char *st =
                            json_string_value(json_object_get(r, "state"));
                        const char *reason =
                            json_string_value(json_object_get(r, "reason"));
                        char got[128];
                        snprintf(got, sizeof(got), "%s%s%s", st,
                                 reason ? ":" : "", reason ? reason : "");
                        if (strcmp(got, want[i]))
                                fail_msg("%s: %s, expected %s", p[i].id, got,
                                         want[i]);
                }
                json_array_foreach(confirmed_recs, j, r) {
                        if (!strcmp(json_string_value(json_object_get(r, "id")),
                                    p[i].id))
                                nconf++;
                }
                if (n != 1 || nconf != 1)
                        fail_msg(
                            "%s: %d outcomes, %d on "
                            "kpay.payments.confirmed",
                            p[i].id, n, nconf);
        }
        json_decref(complete);
        json_decref(confirmed_recs);
        json_t *dlq = records(KP_TOPIC_DLQ, "");
        if (json_array_size(dlq)) {
                it_dump_log(inflight.log, 10);
                it_dump_log(confirmed.log, 10);
                fail_msg("%zu records dead-lettered", json_array_size(dlq));
        }
        json_decref(dlq);
}

/* The value of account @p acct (an empty account when it has none). */
static json_t *account_value(const char *acct) {
        char path[256];
        snprintf(path, sizeof(path), "/v1/stores/balances/keys/%s", acct);
        char *body = NULL;
        int status = it_http_get(account.endpoint, path, &body);
        free(body);
        if (status == 404)
                return json_pack("{s:{}}", "balances");
        json_t *j = it_get_json(account.endpoint, path, 200);
        json_t *v = json_incref(json_object_get(j, "value"));
        json_decref(j);
        return v;
}

static kp_i128_t balance(const char *acct, const char *currency) {
        json_t *v   = account_value(acct);
        kp_i128_t b = it_balance(v, currency);
        json_decref(v);
        return b;
}

static void assert_money(const char *what, kp_i128_t got, kp_i128_t want) {
        char g[KP_I128_DEC_SIZE], w[KP_I128_DEC_SIZE];
        if (got == want)
                return;
        kp_i128_format(got, g);
        kp_i128_format(want, w);
        fail_msg("%s: %s, expected %s", what, g, w);
}

/* Per currency: the sum of every balance (exactly 0 each), and no regular
 * account below 0; @p currencies how many there must be. */
static void assert_books(size_t currencies) {
        kp_money_t sum;
        kp_money_init(&sum);
        json_t *items = it_store_items(account.endpoint, "balances");
        it_books_add(&sum, items);
        json_decref(items);
        assert_int_equal(sum.cnt, currencies);
        for (size_t i = 0; i < sum.cnt; i++)
                assert_money(sum.e[i].currency, sum.e[i].amount, 0);
        kp_money_clear(&sum);
}

/* The sums of the outcomes on kpay.payments.complete, per currency:
 * COMPLETE into @p done, REJECTED into @p rejected. */
static void outcome_sums(kp_money_t *done, kp_money_t *rejected) {
        json_t *recs = records(KP_TOPIC_COMPLETE, "");
        size_t i;
        json_t *r;
        json_array_foreach(recs, i, r) {
                const char *st = json_string_value(json_object_get(r, "state"));
                const char *cur =
                    json_string_value(json_object_get(r, "currency"));
                int64_t amount =
                    json_integer_value(json_object_get(r, "amount"));
                assert_int_equal(
                    kp_money_add(strcmp(st, "COMPLETE") ? rejected : done, cur,
                                 amount),
                    KP_OK);
        }
        json_decref(recs);
}

/* Waits until nothing is in flight (count 0, every currency's amount 0)
 * and kpay-confirmed's totals equal the outcomes, per currency. */
static void expect_totals(void) {
        int64_t deadline = it_now_ms() + 60000;
        for (;;) {
                kp_money_t inflight_amt, conf, rej, done, rejected;
                kp_money_init(&inflight_amt);
                kp_money_init(&conf);
                kp_money_init(&rej);
                kp_money_init(&done);
                kp_money_init(&rejected);
                json_t *it = it_store_items(inflight.endpoint, "totals");
                json_t *v  = json_object_get(json_array_get(it, 0), "value");
                int64_t count =
                    json_integer_value(json_object_get(v, "inflight_count"));
                it_money_add(&inflight_amt,
                             json_object_get(v, "inflight_amounts"),
                             "inflight_amounts");
                json_decref(it);
                it = it_store_items(confirmed.endpoint, "totals");
                size_t i;
                json_t *e;
                json_array_foreach(it, i, e) {
                        if (strcmp(json_string_value(json_object_get(e, "key")),
                                   "all"))
                                continue;
                        v = json_object_get(e, "value");
                        it_money_add(&conf,
                                     json_object_get(v, "confirmed_amounts"),
                                     "confirmed_amounts");
                        it_money_add(&rej,
                                     json_object_get(v, "rejected_amounts"),
                                     "rejected_amounts");
                }
                json_decref(it);
                outcome_sums(&done, &rejected);
                int ok = count == 0 && kp_money_is_zero(&inflight_amt) &&
                         kp_money_equal(&conf, &done) &&
                         kp_money_equal(&rej, &rejected);
                char *s = NULL;
                if (!ok && it_now_ms() > deadline) {
                        json_t *dump = json_pack(
                            "{s:I, s:o, s:o, s:o, s:o, s:o}", "inflight_count",
                            (json_int_t)count, "inflight",
                            kp_money_to_json(&inflight_amt,
                                             KP_MONEY_JSON_STRING),
                            "confirmed",
                            kp_money_to_json(&conf, KP_MONEY_JSON_STRING),
                            "complete_outcomes",
                            kp_money_to_json(&done, KP_MONEY_JSON_STRING),
                            "rejected",
                            kp_money_to_json(&rej, KP_MONEY_JSON_STRING),
                            "rejected_outcomes",
                            kp_money_to_json(&rejected, KP_MONEY_JSON_STRING));
                        s = json_dumps(dump, JSON_COMPACT);
                        json_decref(dump);
                }
                kp_money_clear(&inflight_amt);
                kp_money_clear(&conf);
                kp_money_clear(&rej);
                kp_money_clear(&done);
                kp_money_clear(&rejected);
                if (ok)
                        return;
                if (s)
                        fail_msg("totals do not match the outcomes: %s", s);
                nap_ms(200);
        }
}

/* Payments near INT64_MAX (defect 4). */
static void test_near_int64_max(void **state) {
        (void)state;
        const int64_t M = INT64_MAX;
        /* 1. Four INT64_MAX payments from four system accounts, in flight
         *    together: in-flight 4 x INT64_MAX, then confirmed 4 x
         *    INT64_MAX on the one partition. */
        const pay_t big[] = {
            {"big-1", "@s1", "whale-1", "USD", M},
            {"big-2", "@s2", "whale-2", "USD", M},
            {"big-3", "@s3", "whale-3", "USD", M},
            {"big-4", "@s4", "whale-4", "USD", M},
        };
        const char *const big_want[] = {"COMPLETE", "COMPLETE", "COMPLETE",
                                        "COMPLETE"};
        submit(big, 4);
        expect_outcomes("big-", big, big_want, 4);

        /* 2. A debit that would pass INT64_MIN on a system account, and a
         *    credit that would pass INT64_MAX (refunded); then a normal
         *    payment from the full account. */
        const pay_t edge[] = {
            {"edge-1", "@s1", "whale-5", "USD", M},
            {"edge-2", "@s5", "whale-1", "USD", 5},
        };
        const char *const edge_want[] = {"REJECTED:balance_overflow",
                                         "REJECTED:balance_overflow"};
        submit(edge, 2);
        expect_outcomes("edge-", edge, edge_want, 2);
        const pay_t after[] = {{"after-1", "whale-1", "shrimp", "USD", M - 1}};
        const char *const after_want[] = {"COMPLETE"};
        submit(after, 1);
        expect_outcomes("after-", after, after_want, 1);

        assert_money("@s1", balance("@s1", "USD"), -M);
        assert_money("@s5", balance("@s5", "USD"), 0); /* refunded */
        assert_money("whale-1", balance("whale-1", "USD"), 1);
        assert_money("shrimp", balance("shrimp", "USD"), M - 1);
        assert_money("whale-5", balance("whale-5", "USD"), 0);
        assert_books(1);
        /* Confirmed: 5 x INT64_MAX - 1, rejected INT64_MAX + 5, exactly. */
        expect_totals();
}

/* Two currencies between the same accounts (defect 7). */
static void test_two_currencies(void **state) {
        (void)state;
        const pay_t fund[] = {
            {"cur-f1", "@bank", "alice", "USD", 1000},
            {"cur-f2", "@bank", "alice", "EUR", 500},
        };
        const char *const fund_want[] = {"COMPLETE", "COMPLETE"};
        submit(fund, 2);
        expect_outcomes("cur-f", fund, fund_want, 2);

        /* 300 EUR and 700 USD go through; then 400 EUR is more than the
         * 200 EUR left, whatever the 300 USD (one balance for both would
         * have had 500 and paid it). */
        const pay_t p1[]            = {{"cur-p1", "alice", "bob", "EUR", 300},
                                       {"cur-p2", "alice", "bob", "USD", 700}};
        const char *const p1_want[] = {"COMPLETE", "COMPLETE"};
        submit(p1, 2);
        expect_outcomes("cur-p", p1, p1_want, 2);
        const pay_t p3[]            = {{"cur-q3", "alice", "bob", "EUR", 400}};
        const char *const p3_want[] = {"REJECTED:insufficient_funds"};
        submit(p3, 1);
        expect_outcomes("cur-q", p3, p3_want, 1);
        /* And back the other way in EUR, from bob's EUR only. */
        const pay_t p4[]            = {{"cur-r4", "bob", "alice", "EUR", 301}};
        const char *const p4_want[] = {"REJECTED:insufficient_funds"};
        submit(p4, 1);
        expect_outcomes("cur-r", p4, p4_want, 1);

        assert_money("alice USD", balance("alice", "USD"), 300);
        assert_money("alice EUR", balance("alice", "EUR"), 200);
        assert_money("bob USD", balance("bob", "USD"), 700);
        assert_money("bob EUR", balance("bob", "EUR"), 300);
        /* A system account holds both currencies, each on its own. */
        assert_money("@bank USD", balance("@bank", "USD"), -1000);
        assert_money("@bank EUR", balance("@bank", "EUR"), -500);
        json_t *v = account_value("@bank");
        assert_int_equal(json_object_size(json_object_get(v, "balances")), 2);
        json_decref(v);
        /* Per currency, the books are 0 (USD also holds the first
         * test's); in flight 0; confirmed totals equal the outcomes. */
        assert_books(2);
        expect_totals();
}

static void test_clean_shutdown(void **state) {
        (void)state;
        it_daemon_stop(&inflight);
        it_daemon_stop(&account);
        it_daemon_stop(&confirmed);
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_near_int64_max),
            cmocka_unit_test(test_two_currencies),
            cmocka_unit_test(test_clean_shutdown),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
