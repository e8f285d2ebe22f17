/* Integration test of kpay-web's payments API (docs/api.md, "Payments"):
 * real kpay-inflight, kpay-account, kpay-confirmed and two kpay-web
 * processes on the fixture's broker.
 *
 * - GET /api/v1/currencies serves the ISO 4217 exponents;
 * - decimal amounts per currency are converted exactly (USD "12.34" ->
 *   1234, JPY "100", BHD "1.234") or refused (never rounded), and a
 *   refused request writes nothing to kpay.payments.incoming;
 * - ids: generated (unique, valid), from Idempotency-Key or the body,
 *   both differing refused, the Location header, ids that need encoding;
 * - idempotency: the same Idempotency-Key twice, to either kpay-web
 *   instance, is one payment (one COMPLETE on kpay.payments.complete) and
 *   the same answer; the same key for another payment is 409;
 * - ?wait_ms returns the outcome: COMPLETE, and REJECTED
 *   insufficient_funds;
 * - GET /api/v1/payments/{id} in flight (kpay-account stopped) and final,
 *   with the timeline, also for payments produced straight to Kafka with
 *   librdkafka's consistent_random partitioner (kcat's default), which
 *   kpay-inflight moves to their home partition;
 * - kpay-confirmed's outcomes expire after --outcome-retention-ms. */
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
#include "kpay/kp_discovery.h"
#include "kpay/kp_topics.h"

#define PARTITIONS 4
#define WAIT       "?wait_ms=30000"

static char prefix[64], root[256];
static it_daemon_t inflight, account, confirmed, web[2];

static void topic(char *buf, size_t size, kp_topic_id_t id) {
        kp_topic_name(buf, size, prefix, id);
}

static void nap_ms(long ms) {
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------------
 * Calls. */

/* A call to kpay-web instance @p wi; the body as JSON in *jp (NULL when
 * not JSON), the Location header in @p loc (may be NULL). */
static int call(int wi, const char *method, const char *path,
                const char *headers, const char *body, json_t **jp, char *loc,
                size_t loc_size) {
        char *out = NULL, lbuf[512];
        int st    = it_http_hv(method, web[wi].endpoint, path, headers, body,
                               "Location", loc ? loc : lbuf,
                            loc ? loc_size : sizeof(lbuf), &out);
        json_error_t jerr;
        if (jp)
                *jp = out ? json_loads(out, 0, &jerr) : NULL;
        free(out);
        return st;
}

static const char *jstr(const json_t *o, const char *name) {
        const char *s = json_string_value(json_object_get(o, name));
        return s ? s : "";
}

static int64_t jint(const json_t *o, const char *name) {
        const json_t *v = json_object_get(o, name);
        if (!json_is_integer(v))
                fail_msg("\"%s\" is not an integer", name);
        return json_integer_value(v);
}

/* POSTs a payment and waits for its outcome; asserts 200. */
static json_t *pay_wait(int wi, const char *body, const char *headers) {
        json_t *j = NULL;
        int st    = call(wi, "POST", "/api/v1/payments" WAIT, headers, body, &j,
                         NULL, 0);
        if (st != 200) {
                char *s = j ? json_dumps(j, 0) : NULL;
                fail_msg("POST %s: %d %s", body, st, s ? s : "");
        }
        return j;
}

/* Asserts a refusal: status 400 with error @p code. */
static void refused(const char *body, const char *headers, const char *code) {
        json_t *j = NULL;
        int st =
            call(0, "POST", "/api/v1/payments", headers, body, &j, NULL, 0);
        if (st != 400 || strcmp(jstr(j, "error"), code))
                fail_msg("POST %s: %d %s, expected 400 %s", body, st,
                         jstr(j, "error"), code);
        assert_true(strlen(jstr(j, "message")) > 0);
        json_decref(j);
}

/* GET /api/v1/payments/<enc>: the status, the body in *jp. */
static int get_payment(int wi, const char *enc, json_t **jp) {
        char path[512];
        snprintf(path, sizeof(path), "/api/v1/payments/%s", enc);
        return call(wi, "GET", path, NULL, NULL, jp, NULL, 0);
}

/* Waits until GET of @p id answers 200 in @p state; returns the body. */
static json_t *wait_state(const char *id, const char *state) {
        int64_t deadline = it_now_ms() + 60000;
        for (;;) {
                json_t *j = NULL;
                int st    = get_payment(0, id, &j);
                if (st == 200 && !strcmp(jstr(j, "state"), state))
                        return j;
                if (it_now_ms() > deadline)
                        fail_msg("payment %s: %d %s, not %s", id, st,
                                 jstr(j, "state"), state);
                json_decref(j);
                nap_ms(50);
        }
}

/* Asserts the stages of @p j's timeline, in order, their times
 * non-decreasing and equal to the *_ms fields. */
static void assert_timeline(const json_t *j, const char *const *stages) {
        const json_t *tl = json_object_get(j, "timeline");
        size_t n         = 0;
        int64_t last     = 0;
        for (; stages[n]; n++) {
                const json_t *e = json_array_get(tl, n);
                char field[32];
                if (!e)
                        fail_msg("timeline ends before %s", stages[n]);
                assert_string_equal(jstr(e, "stage"), stages[n]);
                int64_t ms = jint(e, "ms");
                assert_true(ms >= last);
                last = ms;
                snprintf(field, sizeof(field), "%s_ms", stages[n]);
                assert_true(jint(j, field) == ms);
        }
        assert_int_equal(json_array_size(tl), n);
}

/* The records of @p id's topic (read_committed) keyed @p key; in *statep
 * the count of those whose state is @p state. */
static size_t records_of(kp_topic_id_t id, const char *key, const char *state,
                         size_t *statep) {
        char t[256], needle[64];
        it_rec_t *recs;
        size_t n = it_read_all((topic(t, sizeof(t), id), t), "read_committed",
                               &recs),
               c = 0;
        snprintf(needle, sizeof(needle), "\"state\":\"%s\"", state);
        *statep = 0;
        for (size_t i = 0; i < n; i++)
                if (recs[i].key && !strcmp(recs[i].key, key)) {
                        c++;
                        if (recs[i].value && strstr(recs[i].value, needle))
                                (*statep)++;
                }
        it_free_recs(recs, n);
        return c;
}

/* ------------------------------------------------------------------------ */

static void test_currencies(void **state) {
        (void)state;
        json_t *j = NULL;
        assert_int_equal(
            call(1, "GET", "/api/v1/currencies", NULL, NULL, &j, NULL, 0), 200);
        json_t *c = json_object_get(j, "currencies");
        assert_true(json_object_size(c) > 150);
        assert_int_equal(jint(c, "USD"), 2);
        assert_int_equal(jint(c, "JPY"), 0);
        assert_int_equal(jint(c, "BHD"), 3);
        assert_int_equal(jint(c, "CLF"), 4);
        assert_null(json_object_get(c, "XXX"));
        json_decref(j);
}

static void test_decimal_amounts(void **state) {
        (void)state;
        static const struct {
                const char *amount; /* as JSON */
                const char *currency;
                int64_t minor;
        } ok[] = {
            {"\"12.34\"", "USD", 1234},
            {"\"12.3\"", "USD", 1230},
            {"\"12\"", "USD", 1200},
            {"\"0.01\"", "USD", 1},
            {"\"100\"", "JPY", 100},
            {"\"1.234\"", "BHD", 1234},
            {"\"0.0001\"", "CLF", 1},
            {"1234", "USD", 1234},
            {"7", "JPY", 7},
        };
        char body[512];
        for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
                snprintf(body, sizeof(body),
                         "{\"from\":\"@bank\",\"to\":\"dec-%zu\","
                         "\"amount\":%s,\"currency\":\"%s\"}",
                         i, ok[i].amount, ok[i].currency);
                json_t *j = pay_wait(0, body, NULL);
                assert_string_equal(jstr(j, "state"), "COMPLETE");
                assert_string_equal(jstr(j, "currency"), ok[i].currency);
                if (jint(j, "amount") != ok[i].minor)
                        fail_msg("%s %s: %" PRId64 " minor units, not %" PRId64,
                                 ok[i].amount, ok[i].currency,
                                 jint(j, "amount"), ok[i].minor);
                json_decref(j);
        }
        /* The default currency is USD. */
        json_t *j =
            pay_wait(0,
                     "{\"from\":\"@bank\",\"to\":\"dec-usd\",\"amount\":"
                     "\"5.05\"}",
                     NULL);
        assert_string_equal(jstr(j, "currency"), "USD");
        assert_int_equal(jint(j, "amount"), 505);
        json_decref(j);

        static const struct {
                const char *amount;
                const char *currency;
                const char *code;
        } bad[] = {
            {"\"12.345\"", "USD", "invalid_amount"}, /* would round */
            {"\"12.340\"", "USD", "invalid_amount"},
            {"\"100.5\"", "JPY", "invalid_amount"},
            {"\"100.\"", "JPY", "invalid_amount"},
            {"\"1.2345\"", "BHD", "invalid_amount"},
            {"\"-5\"", "USD", "invalid_amount"},
            {"\"+5\"", "USD", "invalid_amount"},
            {"\"1e3\"", "USD", "invalid_amount"},
            {"\" 5\"", "USD", "invalid_amount"},
            {"\"5 \"", "USD", "invalid_amount"},
            {"\"\"", "USD", "invalid_amount"},
            {"\".5\"", "USD", "invalid_amount"},
            {"\"05\"", "USD", "invalid_amount"},
            {"\"1,5\"", "USD", "invalid_amount"},
            {"\"0\"", "USD", "invalid_amount"}, /* the codec: amount > 0 */
            {"\"0.00\"", "USD", "invalid_amount"},
            {"0", "USD", "invalid_amount"},
            {"-100", "USD", "invalid_amount"},
            {"12.5", "USD", "invalid_amount"}, /* a JSON real */
            {"true", "USD", "invalid_amount"},
            {"null", "USD", "invalid_amount"},
            {"\"92233720368547758.08\"", "USD", "invalid_amount"},
            {"\"9223372036854775808\"", "JPY", "invalid_amount"},
            {"\"1.00\"", "usd", "invalid_currency"},
            {"\"1.00\"", "XXX", "invalid_currency"}, /* no minor unit */
            {"\"1.00\"", "ABC", "invalid_currency"},
            {"100", "US", "invalid_currency"},
            {"100", "USDOLLARS", "invalid_currency"},
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                snprintf(body, sizeof(body),
                         "{\"id\":\"refused-%zu\",\"from\":\"@bank\",\"to\":"
                         "\"dec-bad\",\"amount\":%s,\"currency\":\"%s\"}",
                         i, bad[i].amount, bad[i].currency);
                refused(body, NULL, bad[i].code);
        }
        /* Other bad bodies: every one a 400 with a JSON error. */
        refused("{\"id\":\"refused-a\",\"from\":\"@bank\",\"to\":\"x\"}", NULL,
                "invalid_amount");
        refused(
            "{\"id\":\"refused-b\",\"from\":\"x\",\"to\":\"x\","
            "\"amount\":1}",
            NULL, "bad_request");
        refused(
            "{\"id\":\"refused-c\",\"from\":\"bad acct\",\"to\":\"x\","
            "\"amount\":1}",
            NULL, "bad_request");
        refused(
            "{\"id\":\"refused-d\",\"from\":\"a\",\"to\":\"b\","
            "\"amount\":1,\"colour\":\"red\"}",
            NULL, "bad_request");
        refused("{\"id\":\"refused-e\",\"from\":1,\"to\":\"b\",\"amount\":1}",
                NULL, "bad_request");
        refused("not json", NULL, "bad_request");
        refused("[1]", NULL, "bad_request");
        refused(
            "{\"id\":\"refused-f\",\"id\":\"refused-g\",\"from\":\"a\","
            "\"to\":\"b\",\"amount\":1}",
            NULL, "bad_request");

        /* Nothing refused reached Kafka. */
        char t[256];
        it_rec_t *recs;
        size_t n = it_read_all((topic(t, sizeof(t), KP_TOPIC_INCOMING), t),
                               "read_uncommitted", &recs);
        for (size_t i = 0; i < n; i++)
                if (recs[i].key && !strncmp(recs[i].key, "refused-", 8))
                        fail_msg("refused payment %s was produced",
                                 recs[i].key);
        it_free_recs(recs, n);
}

static void test_ids(void **state) {
        (void)state;
        char loc[512], loc2[512];
        json_t *a = NULL, *b = NULL;
        const char *body = "{\"from\":\"@bank\",\"to\":\"ids-1\",\"amount\":1}";

        /* Generated: valid, unique, and where Location says. */
        assert_int_equal(call(0, "POST", "/api/v1/payments", NULL, body, &a,
                              loc, sizeof(loc)),
                         202);
        assert_int_equal(call(1, "POST", "/api/v1/payments", NULL, body, &b,
                              loc2, sizeof(loc2)),
                         202);
        const char *ida = jstr(a, "id"), *idb = jstr(b, "id");
        assert_string_equal(jstr(a, "state"), "SUBMITTED");
        assert_int_equal(strncmp(ida, "web-", 4), 0);
        assert_int_equal(strlen(ida), 4 + 32);
        assert_true(strcmp(ida, idb) != 0);
        char want[600];
        snprintf(want, sizeof(want), "/api/v1/payments/%s", ida);
        assert_string_equal(loc, want);
        assert_string_equal(jstr(a, "location"), want);
        json_decref(wait_state(ida, "COMPLETE"));
        json_decref(wait_state(idb, "COMPLETE"));
        json_decref(a);
        json_decref(b);

        /* The Idempotency-Key is the id. */
        a = pay_wait(0, body, "Idempotency-Key: ids-key-1\r\n");
        assert_string_equal(jstr(a, "id"), "ids-key-1");
        json_decref(a);
        /* The same in both places is fine; different is refused. */
        a = pay_wait(0,
                     "{\"id\":\"ids-key-2\",\"from\":\"@bank\",\"to\":"
                     "\"ids-1\",\"amount\":1}",
                     "Idempotency-Key: ids-key-2\r\n");
        assert_string_equal(jstr(a, "id"), "ids-key-2");
        json_decref(a);
        refused(
            "{\"id\":\"ids-key-3\",\"from\":\"@bank\",\"to\":\"ids-1\","
            "\"amount\":1}",
            "Idempotency-Key: ids-key-4\r\n", "bad_request");
        /* The codec's id rules: 1-128 printable ASCII. */
        char longid[200], lbody[400];
        memset(longid, 'x', 129);
        longid[129] = '\0';
        snprintf(lbody, sizeof(lbody),
                 "{\"id\":\"%s\",\"from\":\"a\",\"to\":\"b\",\"amount\":1}",
                 longid);
        refused(lbody, NULL, "bad_request");
        refused("{\"id\":\"\",\"from\":\"a\",\"to\":\"b\",\"amount\":1}", NULL,
                "bad_request");
        refused(
            "{\"id\":\"caf\\u00e9\",\"from\":\"a\",\"to\":\"b\","
            "\"amount\":1}",
            NULL, "bad_request");
        refused(
            "{\"id\":\"tab\\there\",\"from\":\"a\",\"to\":\"b\","
            "\"amount\":1}",
            NULL, "bad_request");
        /* 128 characters are an id; one with '/', '?', '%' and a space is
         * found through its encoded Location. */
        longid[128] = '\0';
        snprintf(lbody, sizeof(lbody),
                 "{\"id\":\"%s\",\"from\":\"@bank\",\"to\":\"ids-1\","
                 "\"amount\":1}",
                 longid);
        a = pay_wait(0, lbody, NULL);
        assert_string_equal(jstr(a, "id"), longid);
        json_decref(a);
        assert_int_equal(
            call(0, "POST", "/api/v1/payments", NULL,
                 "{\"id\":\"odd/id?x=1%2 y\",\"from\":\"@bank\",\"to\":"
                 "\"ids-1\",\"amount\":1}",
                 &a, loc, sizeof(loc)),
            202);
        assert_string_equal(loc, "/api/v1/payments/odd%2Fid%3Fx%3D1%252%20y");
        json_decref(a);
        json_decref(wait_state("odd%2Fid%3Fx%3D1%252%20y", "COMPLETE"));
}

static void test_idempotency(void **state) {
        (void)state;
        const char *body =
            "{\"from\":\"@bank\",\"to\":\"idem-payee\",\"amount\":\"2.50\"}";
        const char *key = "Idempotency-Key: idem-1\r\n";
        /* Without waiting: 202 twice, the same answer. */
        json_t *a = NULL, *b = NULL;
        assert_int_equal(
            call(0, "POST", "/api/v1/payments", key, body, &a, NULL, 0), 202);
        assert_int_equal(
            call(1, "POST", "/api/v1/payments", key, body, &b, NULL, 0), 202);
        assert_true(json_equal(a, b));
        json_decref(a);
        json_decref(b);
        /* Waiting, on either instance: the outcome, the same. */
        a = pay_wait(0, body, key);
        b = pay_wait(1, body, key);
        assert_string_equal(jstr(a, "state"), "COMPLETE");
        assert_int_equal(jint(a, "amount"), 250);
        if (!json_equal(a, b)) {
                char *sa = json_dumps(a, 0), *sb = json_dumps(b, 0);
                fail_msg("two answers: %s / %s", sa, sb);
        }
        json_decref(a);
        json_decref(b);
        /* One payment: one COMPLETE outcome, one CONFIRMED. */
        size_t n;
        records_of(KP_TOPIC_COMPLETE, "idem-1", "COMPLETE", &n);
        assert_int_equal(n, 1);
        records_of(KP_TOPIC_CONFIRMED, "idem-1", "CONFIRMED", &n);
        assert_int_equal(n, 1);
        /* The same key for another payment is a conflict. */
        a = NULL;
        assert_int_equal(call(0, "POST", "/api/v1/payments", key,
                              "{\"from\":\"@bank\",\"to\":\"idem-payee\","
                              "\"amount\":\"2.51\"}",
                              &a, NULL, 0),
                         409);
        assert_string_equal(jstr(a, "error"), "conflict");
        json_decref(a);
        records_of(KP_TOPIC_COMPLETE, "idem-1", "COMPLETE", &n);
        assert_int_equal(n, 1);
}

static void test_wait_outcomes(void **state) {
        (void)state;
        static const char *const done[] = {"created", "inflight", "debit",
                                           "credit",  "complete", NULL};
        static const char *const rej[]  = {"created", "inflight", "complete",
                                           NULL};
        json_t *j                       = pay_wait(1,
                                                   "{\"id\":\"wait-ok\",\"from\":\"@bank\",\"to\":"
                                                                         "\"wait-rich\",\"amount\":\"10.00\"}",
                                                   NULL);
        assert_string_equal(jstr(j, "id"), "wait-ok");
        assert_string_equal(jstr(j, "state"), "COMPLETE");
        assert_string_equal(jstr(j, "from"), "@bank");
        assert_string_equal(jstr(j, "to"), "wait-rich");
        assert_true(json_is_null(json_object_get(j, "reason")));
        assert_timeline(j, done);
        json_decref(j);

        /* More than the payer has. */
        j = pay_wait(0,
                     "{\"id\":\"wait-poor\",\"from\":\"wait-rich\",\"to\":"
                     "\"wait-other\",\"amount\":\"10.01\"}",
                     NULL);
        assert_string_equal(jstr(j, "state"), "REJECTED");
        assert_string_equal(jstr(j, "reason"), "insufficient_funds");
        assert_int_equal(jint(j, "amount"), 1001);
        assert_true(json_is_null(json_object_get(j, "debit_ms")));
        assert_timeline(j, rej);
        json_decref(j);
        /* The final state is served by GET, from either instance. */
        j = NULL;
        assert_int_equal(get_payment(1, "wait-poor", &j), 200);
        assert_string_equal(jstr(j, "state"), "REJECTED");
        json_decref(j);
        j = NULL;
        assert_int_equal(get_payment(0, "no-such-payment", &j), 404);
        assert_string_equal(jstr(j, "error"), "not_found");
        json_decref(j);
}

/* A Payment as a client would produce it itself. */
static void payment_json(char *buf, size_t size, const char *id, const char *to,
                         int64_t amount) {
        snprintf(buf, size,
                 "{\"v\":1,\"id\":\"%s\",\"from\":\"@bank\",\"to\":\"%s\","
                 "\"amount\":%" PRId64
                 ",\"currency\":\"USD\",\"state\":"
                 "\"INCOMING\",\"created_ms\":%" PRId64 "}",
                 id, to, amount, (int64_t)time(NULL) * 1000);
}

#define FOREIGN 8

static void test_in_flight_then_final(void **state) {
        (void)state;
        static const char *const flight[] = {"created", "inflight", NULL};
        static const char *const done[]   = {"created", "inflight", "debit",
                                             "credit",  "complete", NULL};
        char ids[FOREIGN][32], val[512];

        /* No kpay-account: payments stay in flight. */
        it_daemon_stop(&account);
        json_t *j = NULL;
        assert_int_equal(call(0, "POST", "/api/v1/payments?wait_ms=300",
                              "Idempotency-Key: flight-web\r\n",
                              "{\"from\":\"@bank\",\"to\":\"fl-1\","
                              "\"amount\":5}",
                              &j, NULL, 0),
                         202); /* no outcome within wait_ms */
        assert_string_equal(jstr(j, "state"), "SUBMITTED");
        json_decref(j);
        /* And some from a client with kcat's partitioner, keyed by id. */
        char t[256];
        const char *props[] = {"partitioner", "consistent_random", NULL};
        rd_kafka_t *rk      = it_client(RD_KAFKA_PRODUCER, props);
        topic(t, sizeof(t), KP_TOPIC_INCOMING);
        for (int i = 0; i < FOREIGN; i++) {
                snprintf(ids[i], sizeof(ids[i]), "crc-%d", i);
                payment_json(val, sizeof(val), ids[i], "fl-2", 10 + i);
                it_produce(rk, t, -1, ids[i], val);
        }
        it_producer_close(rk);
        /* Some landed away from their home partition (else this test would
         * not test the re-routing). */
        it_rec_t *recs;
        size_t n = it_read_all(t, "read_committed", &recs), away = 0;
        for (size_t i = 0; i < n; i++)
                if (recs[i].key && !strncmp(recs[i].key, "crc-", 4) &&
                    recs[i].partition !=
                        kp_partition_for_key(recs[i].key, strlen(recs[i].key),
                                             PARTITIONS))
                        away++;
        it_free_recs(recs, n);
        assert_true(away > 0);

        /* In flight, found on the home partition's kpay-inflight. */
        j = wait_state("flight-web", "IN_FLIGHT");
        assert_timeline(j, flight);
        assert_true(json_is_null(json_object_get(j, "complete_ms")));
        json_decref(j);
        for (int i = 0; i < FOREIGN; i++) {
                j = wait_state(ids[i], "IN_FLIGHT");
                assert_int_equal(jint(j, "amount"), 10 + i);
                assert_timeline(j, flight);
                json_decref(j);
        }

        /* kpay-account back: final, from the outcomes. */
        it_daemon_start(&account, "KPAY_ACCOUNT_BIN", root, "account-1", prefix,
                        NULL);
        it_daemon_wait_ready(&account, 90000);
        j = wait_state("flight-web", "COMPLETE");
        assert_timeline(j, done);
        json_decref(j);
        for (int i = 0; i < FOREIGN; i++) {
                j = wait_state(ids[i], "COMPLETE");
                assert_timeline(j, done);
                json_decref(j);
        }
}

/* kpay-confirmed's store `outcomes` holds every id at its home partition,
 * whichever partitioner the client used. */
static void test_outcomes_store(void **state) {
        (void)state;
        char path[300];
        for (int i = 0; i < FOREIGN; i++) {
                char id[32];
                char *out = NULL;
                snprintf(id, sizeof(id), "crc-%d", i);
                snprintf(path, sizeof(path), "/v1/stores/outcomes/keys/%s", id);
                /* kpay-web may have answered from its follower before
                 * kpay-confirmed committed. */
                int64_t deadline = it_now_ms() + 60000;
                while (it_http_get(confirmed.endpoint, path, &out) != 200) {
                        free(out);
                        if (it_now_ms() > deadline) {
                                it_dump_log(confirmed.log, 40);
                                fail_msg("no outcome of %s in store outcomes",
                                         id);
                        }
                        nap_ms(50);
                }
                free(out);
                json_t *j = it_get_json(confirmed.endpoint, path, 200);
                assert_int_equal(
                    jint(j, "partition"),
                    kp_partition_for_key(id, strlen(id), PARTITIONS));
                json_t *v = json_object_get(j, "value");
                assert_string_equal(jstr(v, "state"), "COMPLETE");
                assert_true(jint(v, "recorded_ms") > 0);
                json_decref(j);
                /* One outcome, one CONFIRMED. */
                size_t c;
                assert_int_equal(
                    records_of(KP_TOPIC_COMPLETE, id, "COMPLETE", &c), 1);
                assert_int_equal(c, 1);
                records_of(KP_TOPIC_CONFIRMED, id, "CONFIRMED", &c);
                assert_int_equal(c, 1);
        }
}

/* Retention: kpay-confirmed restarted with a retention of 1 s deletes the
 * outcomes (and kpay-web then knows the ids no more), counting them. */
static void test_outcome_retention(void **state) {
        (void)state;
        const char *extra[] = {"--outcome-retention-ms", "1000",
                               "--outcome-expiry-interval-ms", "200", NULL};
        it_daemon_stop(&confirmed);
        it_daemon_start(&confirmed, "KPAY_CONFIRMED_BIN", root, "confirmed-1",
                        prefix, extra);
        it_daemon_wait_ready(&confirmed, 90000);
        int64_t deadline = it_now_ms() + 60000;
        for (int i = 0; i < FOREIGN; i++) {
                char path[300];
                snprintf(path, sizeof(path), "/v1/stores/outcomes/keys/crc-%d",
                         i);
                while (it_http_get(confirmed.endpoint, path, NULL) != 404) {
                        if (it_now_ms() > deadline) {
                                it_dump_log(confirmed.log, 40);
                                fail_msg("%s still there", path);
                        }
                        nap_ms(100);
                }
        }
        assert_true(it_metric(confirmed.endpoint,
                              "kpay_confirmed_outcomes_expired_total") >=
                    FOREIGN);
        /* Gone from the store: no kpay-web instance that did not see the
         * outcome itself knows the payment (kpay-web 0 saw it, and keeps
         * it in its recent outcomes). A new instance does not. */
        it_daemon_t fresh;
        const char *wextra[] = {"--instance-timeout-ms", "4000",
                                "--request-timeout-ms", "5000", NULL};
        it_daemon_init(&fresh, "KPAY_WEB_BIN", root, "web-3");
        it_daemon_spawn(&fresh, prefix, wextra);
        it_daemon_wait_ready(&fresh, 90000);
        int st    = 0;
        char *out = NULL;
        deadline  = it_now_ms() + 60000;
        while ((st = it_http_get(fresh.endpoint, "/api/v1/payments/crc-0",
                                 &out)) != 404) {
                free(out);
                out = NULL;
                if (st != 503 || it_now_ms() > deadline)
                        fail_msg("GET crc-0 on a new kpay-web: %d", st);
                nap_ms(100);
        }
        free(out);
        it_daemon_stop(&fresh);
}

/* ------------------------------------------------------------------------ */

/* Waits until kpay-web @p wi knows the owners of every partition: a GET of
 * an unknown id is 404, not 503. */
static void wait_discovered(int wi) {
        int64_t deadline = it_now_ms() + 60000;
        for (int i = 0;; i++) {
                char id[32];
                int ok = 1;
                for (int k = 0; k < 16 && ok; k++) {
                        snprintf(id, sizeof(id), "probe-%d-%d", i, k);
                        ok = get_payment(wi, id, NULL) == 404;
                }
                if (ok)
                        return;
                if (it_now_ms() > deadline) {
                        it_dump_log(web[wi].log, 40);
                        fail_msg("kpay-web %d does not see the processors", wi);
                }
                nap_ms(100);
        }
}

static int setup(void **state) {
        (void)state;
        it_unique_prefix(prefix, sizeof(prefix), "pay");
        snprintf(root, sizeof(root), "/tmp/kpay-it-pay-XXXXXX");
        if (!mkdtemp(root))
                return -1;
        if (it_admin_topics(prefix, PARTITIONS))
                return -1;
        /* One after the other: on a loaded machine five processes
         * starting at once against a new broker can take kpay-inflight
         * past its 30 s for reading the control plane. */
        it_daemon_start(&inflight, "KPAY_INFLIGHT_BIN", root, "inflight-1",
                        prefix, NULL);
        it_daemon_wait_ready(&inflight, 90000);
        it_daemon_start(&account, "KPAY_ACCOUNT_BIN", root, "account-1", prefix,
                        NULL);
        it_daemon_start(&confirmed, "KPAY_CONFIRMED_BIN", root, "confirmed-1",
                        prefix, NULL);
        it_daemon_wait_ready(&account, 90000);
        it_daemon_wait_ready(&confirmed, 90000);
        const char *wextra[] = {"--instance-timeout-ms", "4000",
                                "--request-timeout-ms", "5000", NULL};
        for (int i = 0; i < 2; i++) {
                char id[16];
                snprintf(id, sizeof(id), "web-%d", i + 1);
                it_daemon_init(&web[i], "KPAY_WEB_BIN", root, id);
                it_daemon_spawn(&web[i], prefix, wextra);
        }
        for (int i = 0; i < 2; i++) {
                it_daemon_wait_ready(&web[i], 90000);
                wait_discovered(i);
        }
        return 0;
}

static int teardown(void **state) {
        (void)state;
        it_daemon_t *all[] = {&web[0], &web[1], &inflight, &account,
                              &confirmed};
        it_daemons_teardown(all, 5, root);
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_currencies),
            cmocka_unit_test(test_decimal_amounts),
            cmocka_unit_test(test_ids),
            cmocka_unit_test(test_idempotency),
            cmocka_unit_test(test_wait_outcomes),
            cmocka_unit_test(test_in_flight_then_final),
            cmocka_unit_test(test_outcomes_store),
            cmocka_unit_test(test_outcome_retention),
        };
        if (getenv("KPAY_IT_FILTER"))
                cmocka_set_test_filter(getenv("KPAY_IT_FILTER"));
        return cmocka_run_group_tests(tests, setup, teardown);
}
