/* Integration test of kpay-web (docs/api.md) on the fixture's broker, with
 * real processes: kpay-web, two kpay-account instances, kpay-inflight,
 * kpay-confirmed, kpay-metrics and kpay-control, and kpay-gen as the
 * traffic.
 *
 * - GET /accounts pages through every account exactly once, in order,
 *   merged over both account instances (and prefix listings likewise);
 *   GET /accounts/{id} answers for keys on either instance;
 * - an account instance stopped (SIGSTOP: it accepts and never answers)
 *   and then SIGKILLed: the answers are partial with exactly its
 *   partitions, within the deadline; complete again after its restart;
 * - freeze through the API: a payment from that account is REJECTED
 *   account_frozen; the command carries the actor; unfreeze;
 * - bad input (malformed JSON, wrong types, huge bodies, unknown routes,
 *   wrong methods, bad parameters, the token) is a 4xx with a JSON error
 *   and kpay-web stays up;
 * - /pipeline agrees with the processors' own stores; /events delivers
 *   ticks; /dlq shows a dead letter provoked here, safely previewed, and
 *   pages through every letter once; /control is kpay-control's. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "it_util.h"
#include "kpay/kp_discovery.h"
#include "kpay/kp_topics.h"

#define PARTITIONS 6
#define ACCOUNTS   40
#define TOKEN      "it-web-token"
#define AUTH       "Authorization: Bearer " TOKEN "\r\n"
#define TIMEOUT_MS 5000 /* kpay-web's --request-timeout-ms */

static char prefix[64], root[256], token_file[300];
static it_daemon_t web, control, account[2], inflight, confirmed, metrics;

static void nap_ms(long ms) {
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
}

static void topic(char *buf, size_t size, kp_topic_id_t id) {
        kp_topic_name(buf, size, prefix, id);
}

static void start(it_daemon_t *d) {
        char tmo[32];
        snprintf(tmo, sizeof(tmo), "%d", TIMEOUT_MS);
        /* The dead instance stays listed in kpay.metadata for a while, as
         * one that crashed does until its heartbeat times out. */
        const char *webx[] = {"--token-file",
                              token_file,
                              "--request-timeout-ms",
                              tmo,
                              "--instance-timeout-ms",
                              "60000",
                              NULL};
        const char *proc[] = {"--state-dir", d->state, NULL};
        it_daemon_spawn(d, prefix,
                        d == &web       ? webx
                        : d == &control ? NULL
                                        : proc);
}

/* Calls kpay-web: the status, the body as JSON in *jp (NULL when not
 * JSON). */
static int api(const char *method, const char *path, const char *headers,
               const char *body, json_t **jp) {
        char *out = NULL;
        int st    = it_http_h(method, web.endpoint, path, headers, body, &out);
        json_error_t jerr;
        if (jp)
                *jp = out ? json_loads(out, JSON_DECODE_ANY, &jerr) : NULL;
        free(out);
        return st;
}

static json_t *api_ok(const char *path) {
        json_t *j;
        int st = api("GET", path, NULL, NULL, &j);
        if (st != 200 || !json_is_object(j))
                fail_msg("GET %s: %d %s", path, st,
                         j ? json_dumps(j, 0) : "(not JSON)");
        return j;
}

static const char *jstr(const json_t *j, const char *k) {
        const char *s = json_string_value(json_object_get(j, k));
        return s ? s : "";
}

/* Asserts a JSON error answer. */
static void expect_error(const char *method, const char *path,
                         const char *headers, const char *body, int status,
                         const char *code) {
        json_t *j;
        int st = api(method, path, headers, body, &j);
        if (st != status || !json_is_object(j) ||
            strcmp(jstr(j, "error"), code) ||
            !json_is_string(json_object_get(j, "message")))
                fail_msg("%s %s: want %d %s, got %d %s", method, path, status,
                         code, st, j ? json_dumps(j, 0) : "(not JSON)");
        json_decref(j);
}

/* The live InstanceInfo partitions of account[i], from /api/v1/instances. */
static size_t account_partitions(int i, int32_t *out) {
        json_t *j = api_ok("/api/v1/instances"), *it;
        size_t k, n = 0;
        json_array_foreach(json_object_get(j, "items"), k, it) {
                if (strcmp(jstr(it, "instance"), account[i].id) ||
                    strcmp(jstr(it, "state"), "RUNNING"))
                        continue;
                json_t *p;
                size_t x;
                json_array_foreach(json_object_get(it, "partitions"), x, p)
                    out[n++] = (int32_t)json_integer_value(p);
        }
        json_decref(j);
        return n;
}

/* Waits until the two account instances share the partitions (half each,
 * both RUNNING: the group settled after a start or a restart) and hold
 * every account between them. @returns 1, or 0 after two minutes. */
static int settled(void) {
        int64_t deadline = it_now_ms() + 120000;
        while (it_now_ms() < deadline) {
                int32_t p0[PARTITIONS], p1[PARTITIONS];
                size_t n0 = account_partitions(0, p0);
                size_t n1 = account_partitions(1, p1);
                if (n0 == PARTITIONS / 2 && n1 == PARTITIONS / 2) {
                        json_t *a =
                            it_store_items(account[0].endpoint, "balances");
                        json_t *b =
                            it_store_items(account[1].endpoint, "balances");
                        size_t n = json_array_size(a) + json_array_size(b);
                        json_decref(a);
                        json_decref(b);
                        if (n == ACCOUNTS + 1)
                                return 1;
                }
                nap_ms(200);
        }
        return 0;
}

/* Every account id, by paging GET /api/v1/accounts with @p limit; checks
 * the order and that every page is complete. */
static size_t list_all(int limit, const char *pfx, char ids[][32], size_t max) {
        char path[256], *cursor = NULL;
        size_t n = 0;
        for (int pages = 0;; pages++) {
                assert_true(pages < 1000);
                int o = snprintf(path, sizeof(path),
                                 "/api/v1/accounts?limit=%d", limit);
                if (pfx)
                        o += snprintf(path + o, sizeof(path) - (size_t)o,
                                      "&prefix=%s", pfx);
                if (cursor) {
                        /* The cursor is "<partition>:<key>": ':' is
                         * fine in a query value. */
                        snprintf(path + o, sizeof(path) - (size_t)o,
                                 "&after=%s", cursor);
                        free(cursor);
                        cursor = NULL;
                }
                json_t *j = api_ok(path), *it;
                if (json_is_true(json_object_get(j, "partial")))
                        fail_msg("a partial page: %s", json_dumps(j, 0));
                size_t k;
                json_array_foreach(json_object_get(j, "items"), k, it) {
                        const char *id = jstr(it, "id");
                        assert_true(n < max);
                        if (n)
                                assert_true(strcmp(ids[n - 1], id) < 0);
                        snprintf(ids[n++], 32, "%s", id);
                        assert_true(
                            json_is_object(json_object_get(it, "balances")));
                        assert_true(
                            json_is_boolean(json_object_get(it, "frozen")));
                }
                assert_true(json_array_size(json_object_get(j, "items")) <=
                            (size_t)limit);
                const char *next =
                    json_string_value(json_object_get(j, "next"));
                if (next)
                        cursor = strdup(next);
                json_decref(j);
                if (!cursor)
                        break;
        }
        return n;
}

/* The account keys as the instances hold them (the truth), sorted. */
static size_t truth(char ids[][32], size_t max) {
        size_t n = 0;
        for (int i = 0; i < 2; i++) {
                json_t *items = it_store_items(account[i].endpoint, "balances");
                json_t *it;
                size_t k;
                json_array_foreach(items, k, it) {
                        assert_true(n < max);
                        snprintf(ids[n++], 32, "%s", jstr(it, "key"));
                }
                json_decref(items);
        }
        qsort(ids, n, 32, (int (*)(const void *, const void *))strcmp);
        return n;
}

static char want_ids[ACCOUNTS + 8][32], got_ids[ACCOUNTS + 8][32];

static void test_accounts_paging(void **state) {
        (void)state;
        size_t want = truth(want_ids, ACCOUNTS + 8);
        /* acc-0..acc-39 and @bank, on both instances. */
        assert_int_equal(want, ACCOUNTS + 1);
        int32_t p0[PARTITIONS], p1[PARTITIONS];
        assert_true(account_partitions(0, p0) > 0);
        assert_true(account_partitions(1, p1) > 0);
        const int limits[] = {1, 3, 7, 40, 41, 1000};
        for (size_t l = 0; l < sizeof(limits) / sizeof(limits[0]); l++) {
                size_t n = list_all(limits[l], NULL, got_ids, ACCOUNTS + 8);
                assert_int_equal(n, want);
                for (size_t i = 0; i < n; i++)
                        assert_string_equal(got_ids[i], want_ids[i]);
        }
        /* Prefixes: each acc-N (acc-1 is acc-1 and acc-10..19), "@". */
        for (int a = 0; a < ACCOUNTS; a += 3) {
                char pfx[16];
                snprintf(pfx, sizeof(pfx), "acc-%d", a);
                size_t expect = 0;
                for (size_t i = 0; i < want; i++)
                        expect += !strncmp(want_ids[i], pfx, strlen(pfx));
                assert_int_equal(list_all(2, pfx, got_ids, ACCOUNTS + 8),
                                 expect);
        }
        assert_int_equal(list_all(5, "@", got_ids, ACCOUNTS + 8), 1);
        assert_string_equal(got_ids[0], "@bank");
        assert_int_equal(list_all(5, "nobody", got_ids, ACCOUNTS + 8), 0);
}

static void test_account_get(void **state) {
        (void)state;
        int on[2] = {0, 0};
        for (int a = 0; a < ACCOUNTS; a++) {
                char path[64], id[16];
                snprintf(id, sizeof(id), "acc-%d", a);
                snprintf(path, sizeof(path), "/api/v1/accounts/%s", id);
                json_t *j = api_ok(path);
                assert_string_equal(jstr(j, "id"), id);
                /* The same balances as the owner's store value. */
                int32_t p = kp_partition_for_key(id, strlen(id), PARTITIONS);
                int32_t parts[PARTITIONS];
                int owner = -1;
                for (int i = 0; i < 2 && owner < 0; i++) {
                        size_t n = account_partitions(i, parts);
                        for (size_t k = 0; k < n; k++)
                                if (parts[k] == p)
                                        owner = i;
                }
                assert_true(owner >= 0);
                on[owner]++;
                char spath[96];
                snprintf(spath, sizeof(spath), "/v1/stores/balances/keys/%s",
                         id);
                json_t *s = it_get_json(account[owner].endpoint, spath, 200);
                assert_true(json_equal(
                    json_object_get(json_object_get(s, "value"), "balances"),
                    json_object_get(j, "balances")));
                json_decref(s);
                json_decref(j);
        }
        /* Keys on either instance were asked. */
        assert_true(on[0] > 0 && on[1] > 0);
        expect_error("GET", "/api/v1/accounts/acc-nobody", NULL, NULL, 404,
                     "not_found");
        expect_error("GET", "/api/v1/accounts/bad%20id", NULL, NULL, 400,
                     "bad_request");
}

/* Waits until @p path answers partial with exactly @p parts missing, and
 * checks each answer came within the deadline (plus a margin for a busy
 * machine: a hang would be minutes). */
static void expect_partial(const char *path, const int32_t *parts, size_t n) {
        int64_t deadline = it_now_ms() + 60000;
        for (;;) {
                int64_t t0 = it_now_ms();
                json_t *j  = api_ok(path);
                int64_t dt = it_now_ms() - t0;
                if (dt > TIMEOUT_MS + 10000)
                        fail_msg("%s took %" PRId64 " ms", path, dt);
                json_t *mp = json_object_get(j, "missing_partitions");
                int same   = json_array_size(mp) == n;
                for (size_t i = 0; same && i < n; i++) {
                        int have = 0;
                        json_t *v;
                        size_t k;
                        json_array_foreach(mp, k, v) have |=
                            json_integer_value(v) == parts[i];
                        same = have;
                }
                int partial = json_is_true(json_object_get(j, "partial"));
                json_decref(j);
                if (partial && same)
                        return;
                if (it_now_ms() > deadline)
                        fail_msg(
                            "%s never partial with the instance's "
                            "partitions",
                            path);
                nap_ms(200);
        }
}

static void test_partial_and_back(void **state) {
        (void)state;
        int32_t parts[PARTITIONS];
        size_t n = account_partitions(1, parts);
        assert_true(n > 0);
        /* A key on the stopped instance's first partition. */
        char key[16] = "", path[64];
        for (int a = 0; a < ACCOUNTS && !key[0]; a++) {
                char id[16];
                snprintf(id, sizeof(id), "acc-%d", a);
                if (kp_partition_for_key(id, strlen(id), PARTITIONS) ==
                    parts[0])
                        snprintf(key, sizeof(key), "%s", id);
        }
        assert_true(key[0]);
        snprintf(path, sizeof(path), "/api/v1/accounts/%s", key);

        /* Slow: it accepts connections and never answers. */
        assert_int_equal(kill(account[1].pid, SIGSTOP), 0);
        expect_partial("/api/v1/accounts?limit=1000", parts, n);
        json_t *j;
        assert_int_equal(api("GET", path, NULL, NULL, &j), 503);
        assert_string_equal(jstr(j, "error"), "unavailable");
        assert_int_equal(
            json_array_size(json_object_get(j, "missing_partitions")), 1);
        assert_int_equal(json_integer_value(json_array_get(
                             json_object_get(j, "missing_partitions"), 0)),
                         parts[0]);
        json_decref(j);
        assert_int_equal(kill(account[1].pid, SIGCONT), 0);

        /* Dead: SIGKILL, then its restart on the same state. */
        assert_int_equal(kill(account[1].pid, SIGKILL), 0);
        it_wait_exit(account[1].pid, 10000);
        account[1].pid = -1;
        /* Until the group moves its partitions, they are missing (the
         * other instance may take them over meanwhile: then complete). */
        json_t *a = api_ok("/api/v1/accounts?limit=1000");
        if (json_is_true(json_object_get(a, "partial")))
                assert_true(json_array_size(
                                json_object_get(a, "missing_partitions")) > 0);
        json_decref(a);
        start(&account[1]);
        it_daemon_wait_ready(&account[1], 120000);
        /* Complete again: every account exactly once. */
        int64_t deadline = it_now_ms() + 90000;
        for (;;) {
                json_t *l = api_ok("/api/v1/accounts?limit=1000");
                int ok    = !json_is_true(json_object_get(l, "partial")) &&
                         json_array_size(json_object_get(l, "items")) ==
                             ACCOUNTS + 1;
                json_decref(l);
                if (ok)
                        break;
                if (it_now_ms() > deadline)
                        fail_msg("the account list never became complete");
                nap_ms(250);
        }
        assert_true(settled());
        assert_int_equal(list_all(9, NULL, got_ids, ACCOUNTS + 8),
                         ACCOUNTS + 1);
        j = api_ok(path);
        assert_string_equal(jstr(j, "id"), key);
        json_decref(j);
}

/* Waits for the outcome of payment @p id on kpay.payments.complete. */
static json_t *outcome(const char *id) {
        char t[256];
        topic(t, sizeof(t), KP_TOPIC_COMPLETE);
        int64_t deadline = it_now_ms() + 60000;
        for (;;) {
                it_rec_t *recs;
                size_t cnt  = it_read_all(t, "read_committed", &recs);
                json_t *out = NULL;
                for (size_t i = 0; i < cnt && !out; i++) {
                        json_error_t jerr;
                        json_t *j = recs[i].value
                                        ? json_loads(recs[i].value, 0, &jerr)
                                        : NULL;
                        if (j && !strcmp(jstr(j, "id"), id))
                                out = j;
                        else
                                json_decref(j);
                }
                it_free_recs(recs, cnt);
                if (out)
                        return out;
                if (it_now_ms() > deadline)
                        fail_msg("no outcome for %s", id);
                nap_ms(200);
        }
}

static void wait_frozen(const char *id, int frozen) {
        char path[64];
        snprintf(path, sizeof(path), "/api/v1/accounts/%s", id);
        int64_t deadline = it_now_ms() + 60000;
        for (;;) {
                json_t *j = api_ok(path);
                int f     = json_is_true(json_object_get(j, "frozen"));
                json_decref(j);
                if (f == frozen)
                        return;
                if (it_now_ms() > deadline)
                        fail_msg("%s never became frozen=%d", id, frozen);
                nap_ms(100);
        }
}

static void test_freeze(void **state) {
        (void)state;
        const char *path = "/api/v1/accounts/acc-3/freeze";
        expect_error("POST", path, NULL, NULL, 401, "unauthorized");
        expect_error("POST", path, "Authorization: Bearer nope\r\n", NULL, 403,
                     "forbidden");
        json_t *j;
        int st = api("POST", path, AUTH "X-KPay-Actor: it-ops\r\n",
                     "{\"id\":\"it-freeze-1\"}", &j);
        if (st != 202)
                fail_msg("freeze: %d %s", st, j ? json_dumps(j, 0) : "");
        assert_string_equal(jstr(j, "account"), "acc-3");
        assert_string_equal(jstr(j, "command"), "FREEZE");
        assert_string_equal(jstr(j, "id"), "it-freeze-1");
        json_decref(j);
        wait_frozen("acc-3", 1);

        /* The command on kpay.payments.inflight: keyed by the account, on
         * its murmur2 partition, with the actor. */
        char t[256];
        topic(t, sizeof(t), KP_TOPIC_INFLIGHT);
        it_rec_t *recs;
        size_t cnt = it_read_all(t, "read_committed", &recs), found = 0;
        for (size_t i = 0; i < cnt; i++) {
                json_error_t jerr;
                json_t *c =
                    recs[i].value ? json_loads(recs[i].value, 0, &jerr) : NULL;
                if (c && !strcmp(jstr(c, "id"), "it-freeze-1")) {
                        found++;
                        assert_string_equal(recs[i].key, "acc-3");
                        assert_int_equal(
                            recs[i].partition,
                            kp_partition_for_key("acc-3", 5, PARTITIONS));
                        assert_string_equal(jstr(c, "command"), "FREEZE");
                        assert_string_equal(jstr(c, "actor"), "it-ops");
                }
                json_decref(c);
        }
        it_free_recs(recs, cnt);
        assert_int_equal(found, 1);

        /* A payment from the frozen account is rejected. */
        char in[256], pay[512];
        topic(in, sizeof(in), KP_TOPIC_INCOMING);
        rd_kafka_t *rk = it_producer();
        snprintf(pay, sizeof(pay),
                 "{\"v\":1,\"id\":\"it-frozen-pay\",\"from\":\"acc-3\","
                 "\"to\":\"acc-4\",\"amount\":100,\"currency\":\"USD\","
                 "\"state\":\"INCOMING\",\"created_ms\":%" PRId64 "}",
                 (int64_t)time(NULL) * 1000);
        it_produce(rk, in, -1, "it-frozen-pay", pay);
        it_producer_close(rk);
        json_t *o = outcome("it-frozen-pay");
        assert_string_equal(jstr(o, "state"), "REJECTED");
        assert_string_equal(jstr(o, "reason"), "account_frozen");
        json_decref(o);

        st = api("POST", "/api/v1/accounts/acc-3/unfreeze", AUTH, NULL, &j);
        assert_int_equal(st, 202);
        assert_string_equal(jstr(j, "command"), "UNFREEZE");
        assert_true(strlen(jstr(j, "id")) > 0);
        json_decref(j);
        wait_frozen("acc-3", 0);
}

static void test_bad_input(void **state) {
        (void)state;
        const char *fz = "/api/v1/accounts/acc-5/freeze";
        expect_error("POST", fz, AUTH, "{", 400, "bad_request");
        expect_error("POST", fz, AUTH, "[1]", 400, "bad_request");
        expect_error("POST", fz, AUTH, "{\"id\":5}", 400, "bad_request");
        expect_error("POST", fz, AUTH, "{\"id\":\"a\",\"id\":\"b\"}", 400,
                     "bad_request");
        expect_error("POST", fz, AUTH, "{\"other\":1}", 400, "bad_request");
        expect_error("POST", "/api/v1/accounts/bad%20id/freeze", AUTH, NULL,
                     400, "bad_request");
        /* Over --max-body-bytes (64 KiB). */
        size_t big = 65537;
        char *huge = malloc(big + 1);
        memset(huge, ' ', big);
        huge[big] = '\0';
        huge[0]   = '{';
        json_t *j;
        int st = api("POST", fz, AUTH, huge, &j);
        free(huge);
        /* The 413 may come before the body is sent, and the connection be
         * reset under the client's feet: then there is no answer to read,
         * and kpay-web must still be up. */
        if (st >= 0) {
                assert_int_equal(st, 413);
                assert_string_equal(jstr(j, "error"), "too_large");
        }
        json_decref(j);
        expect_error("GET", "/api/v1/nope", NULL, NULL, 404, "not_found");
        expect_error("GET", "/nope/deeper", NULL, NULL, 404, "not_found");
        expect_error("DELETE", "/api/v1/accounts", NULL, NULL, 405,
                     "method_not_allowed");
        expect_error("GET", "/api/v1/accounts/acc-1/freeze", NULL, NULL, 405,
                     "method_not_allowed");
        expect_error("POST", "/api/v1/pipeline", AUTH, "{}", 405,
                     "method_not_allowed");
        const char *bad_get[] = {"/api/v1/accounts?limit=0",
                                 "/api/v1/accounts?limit=1001",
                                 "/api/v1/accounts?limit=abc",
                                 "/api/v1/accounts?after=zz",
                                 "/api/v1/accounts?prefix=a%20b",
                                 "/api/v1/metrics/windows?size=2s",
                                 "/api/v1/metrics/windows?from=x",
                                 "/api/v1/metrics/slowest?minute=-1",
                                 "/api/v1/dlq?limit=0",
                                 "/api/v1/dlq?before=nope",
                                 "/api/v1/accounts/%00",
                                 NULL};
        for (int i = 0; bad_get[i]; i++)
                expect_error("GET", bad_get[i], NULL, NULL, 400, "bad_request");
        /* Mutations of kpay-control need kpay-web's token too. */
        expect_error("POST", "/api/v1/control/pause", NULL, NULL, 401,
                     "unauthorized");
        /* Still up. */
        char *out = NULL;
        assert_int_equal(it_http_get(web.endpoint, "/readyz", &out), 200);
        free(out);
        assert_int_equal(it_exit_status(web.pid), -1);
}

/* Sums the "all" records of kpay-confirmed's totals store directly. */
static int64_t confirmed_truth(void) {
        json_t *items = it_store_items(confirmed.endpoint, "totals"), *it;
        size_t k;
        int64_t n = 0;
        json_array_foreach(items, k, it) {
                if (!strcmp(jstr(it, "key"), "all"))
                        n += json_integer_value(json_object_get(
                            json_object_get(it, "value"), "confirmed_count"));
        }
        json_decref(items);
        return n;
}

static void test_pipeline_and_control(void **state) {
        (void)state;
        /* Everything settled: nothing in flight, the totals as the
         * confirmed instance holds them. */
        int64_t deadline = it_now_ms() + 60000;
        json_t *p;
        for (;;) {
                p           = api_ok("/api/v1/pipeline");
                json_t *inf = json_object_get(p, "inflight");
                json_t *all =
                    json_object_get(json_object_get(p, "confirmed"), "all");
                if (json_integer_value(json_object_get(inf, "count")) == 0 &&
                    json_integer_value(json_object_get(all, "count")) ==
                        confirmed_truth() &&
                    !json_is_true(json_object_get(p, "partial")))
                        break;
                if (it_now_ms() > deadline)
                        fail_msg("the pipeline never settled: %s",
                                 json_dumps(p, 0));
                json_decref(p);
                nap_ms(250);
        }
        json_t *all = json_object_get(json_object_get(p, "confirmed"), "all");
        assert_true(json_integer_value(json_object_get(all, "count")) >=
                    ACCOUNTS + 100);
        assert_true(json_is_string(
            json_object_get(json_object_get(all, "amounts"), "USD")));
        assert_true(json_is_object(
            json_object_get(json_object_get(p, "rejected"), "today")));
        assert_string_equal(jstr(json_object_get(p, "control"), "state"),
                            "RUNNING");
        assert_true(json_is_object(
            json_object_get(json_object_get(p, "sla"), "periods")));
        assert_int_equal(json_array_size(json_object_get(p, "missing")), 0);
        json_decref(p);

        /* /control is kpay-control's answer. */
        json_t *c = api_ok("/api/v1/control");
        json_t *d = it_get_json(control.endpoint, "/api/v1/control", 200);
        assert_string_equal(jstr(c, "state"), jstr(d, "state"));
        assert_int_equal(json_integer_value(json_object_get(c, "version")),
                         json_integer_value(json_object_get(d, "version")));
        json_decref(c);
        json_decref(d);
        json_t *j;
        assert_int_equal(api("PUT", "/api/v1/control/rate-limit", AUTH,
                             "{\"payments_per_second\":\"x\"}", &j),
                         400);
        json_decref(j);
        assert_int_equal(api("PUT", "/api/v1/control/rate-limit",
                             AUTH "X-KPay-Actor: it-web\r\n",
                             "{\"payments_per_second\":null}", &j),
                         200);
        assert_true(json_is_null(json_object_get(j, "rate_limit")));
        json_decref(j);

        /* Metrics merged over the instances (one here): the same windows
         * as kpay-metrics' own answer. */
        char wpath[128];
        int64_t from = (int64_t)time(NULL) * 1000 - 30 * 60000;
        snprintf(wpath, sizeof(wpath),
                 "/v1/metrics/windows?size=1m&from=%" PRId64, from);
        json_t *m = it_get_json(metrics.endpoint, wpath, 200);
        snprintf(wpath, sizeof(wpath),
                 "/api/v1/metrics/windows?size=1m&from=%" PRId64, from);
        json_t *w = api_ok(wpath);
        assert_false(json_is_true(json_object_get(w, "partial")));
        assert_int_equal(json_array_size(json_object_get(w, "windows")),
                         json_array_size(json_object_get(m, "windows")));
        json_t *ww, *mw;
        size_t i;
        json_array_foreach(json_object_get(w, "windows"), i, ww) {
                mw = json_array_get(json_object_get(m, "windows"), i);
                assert_true(json_equal(json_object_get(ww, "complete"),
                                       json_object_get(mw, "complete")));
        }
        json_decref(w);
        json_decref(m);
        json_t *s = api_ok("/api/v1/metrics/sla");
        assert_true(json_is_object(json_object_get(s, "current_minute")));
        json_decref(s);
        s = api_ok("/api/v1/metrics/slowest");
        assert_true(json_is_array(json_object_get(s, "items")));
        json_decref(s);

        /* Every instance, with its lag once it is known. */
        json_t *in = api_ok("/api/v1/instances"), *it;
        size_t k, procs = 0;
        json_array_foreach(json_object_get(in, "items"), k, it) {
                const char *svc = jstr(it, "service");
                if (!strcmp(svc, "account") || !strcmp(svc, "inflight") ||
                    !strcmp(svc, "confirmed") || !strcmp(svc, "metrics"))
                        procs++;
                assert_true(json_is_integer(json_object_get(it, "age_ms")));
        }
        assert_int_equal(procs, 5);
        json_decref(in);
}

/* Reads /api/v1/events until @p want ticks arrived (or fails). */
static void test_events(void **state) {
        (void)state;
        const char *colon     = strrchr(web.endpoint, ':');
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)atoi(colon + 1))};
        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(fd >= 0);
        assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        const char *req = "GET /api/v1/events HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_int_equal(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
        char *buf        = calloc(1, 1 << 20);
        size_t len       = 0;
        int ticks        = 0;
        int64_t deadline = it_now_ms() + 60000;
        while (ticks < 3 && it_now_ms() < deadline && len < (1 << 20) - 1) {
                struct pollfd pf = {fd, POLLIN, 0};
                if (poll(&pf, 1, 500) <= 0)
                        continue;
                ssize_t n = recv(fd, buf + len, (1 << 20) - 1 - len, 0);
                if (n <= 0)
                        break;
                len += (size_t)n;
                buf[len] = '\0';
                ticks    = 0;
                for (char *p = buf; (p = strstr(p, "event: tick\ndata: ")); p++)
                        ticks++;
        }
        close(fd);
        assert_non_null(strstr(buf, "text/event-stream"));
        if (ticks < 3)
                fail_msg("%d ticks: %.500s", ticks, buf);
        /* Each tick's data is one JSON object with the pipeline. */
        char *d = strstr(buf, "event: tick\ndata: ") + 18;
        char *e = strchr(d, '\n');
        json_error_t jerr;
        json_t *t = json_loadb(d, (size_t)(e - d), 0, &jerr);
        assert_non_null(t);
        assert_true(json_is_integer(json_object_get(t, "ts")));
        assert_true(json_is_object(
            json_object_get(json_object_get(t, "pipeline"), "inflight")));
        assert_non_null(json_object_get(t, "window"));
        assert_non_null(json_object_get(t, "control"));
        json_decref(t);
        free(buf);
}

/* The letters of kpay.dlq, directly. */
static size_t dlq_count(void) {
        char t[256];
        topic(t, sizeof(t), KP_TOPIC_DLQ);
        it_rec_t *recs;
        size_t cnt = it_read_all(t, "read_committed", &recs);
        it_free_recs(recs, cnt);
        return cnt;
}

static void test_dlq(void **state) {
        (void)state;
        char in[256];
        topic(in, sizeof(in), KP_TOPIC_INCOMING);
        rd_kafka_t *rk = it_producer();
        /* Not JSON, with bytes that must be escaped. */
        it_produce(rk, in, -1, "it-dead-1", "\x01not json \\ \xff{");
        for (int i = 0; i < 4; i++)
                it_produce(rk, in, -1, "it-dead-more", "also not json");
        it_producer_close(rk);
        int64_t deadline = it_now_ms() + 60000;
        json_t *hit      = NULL;
        while (!hit) {
                json_t *j = api_ok("/api/v1/dlq?limit=50"), *it;
                size_t k;
                json_array_foreach(json_object_get(j, "items"), k, it) {
                        if (!strcmp(jstr(it, "key"), "it-dead-1"))
                                hit = json_incref(it);
                }
                json_decref(j);
                if (!hit && it_now_ms() > deadline)
                        fail_msg("the dead letter never showed");
                if (!hit)
                        nap_ms(250);
        }
        assert_string_equal(jstr(hit, "error"), "not_json");
        assert_string_equal(jstr(hit, "service"), "inflight");
        assert_string_equal(jstr(json_object_get(hit, "source"), "topic"), in);
        assert_string_equal(jstr(hit, "preview"), "\\x01not json \\\\ \\xff{");
        assert_int_equal(json_integer_value(json_object_get(hit, "size")), 14);
        assert_true(json_is_string(json_object_get(hit, "detail")));
        json_decref(hit);

        /* Paging, newest first: every letter exactly once. */
        deadline    = it_now_ms() + 60000;
        size_t want = dlq_count();
        assert_true(want >= 5);
        char path[512], *cursor = NULL;
        size_t seen = 0;
        char keys[64][48];
        for (int pages = 0;; pages++) {
                assert_true(pages < 100);
                if (cursor)
                        snprintf(path, sizeof(path),
                                 "/api/v1/dlq?limit=2&before=%s", cursor);
                else
                        snprintf(path, sizeof(path), "/api/v1/dlq?limit=2");
                free(cursor);
                cursor    = NULL;
                json_t *j = api_ok(path), *it;
                size_t k;
                json_array_foreach(json_object_get(j, "items"), k, it) {
                        char pk[48];
                        snprintf(pk, sizeof(pk), "%d:%" PRId64,
                                 (int)json_integer_value(
                                     json_object_get(it, "partition")),
                                 (int64_t)json_integer_value(
                                     json_object_get(it, "offset")));
                        for (size_t x = 0; x < seen; x++)
                                assert_string_not_equal(keys[x], pk);
                        assert_true(seen < 64);
                        snprintf(keys[seen++], sizeof(keys[0]), "%s", pk);
                }
                const char *next =
                    json_string_value(json_object_get(j, "next"));
                if (next)
                        cursor = strdup(next);
                json_decref(j);
                if (!cursor)
                        break;
        }
        assert_int_equal(seen, want);
}

/* ------------------------------------------------------------------------ */

static int setup(void **state) {
        (void)state;
        it_unique_prefix(prefix, sizeof(prefix), "web");
        snprintf(root, sizeof(root), "/tmp/kpay-it-web-XXXXXX");
        if (!mkdtemp(root))
                return -1;
        snprintf(token_file, sizeof(token_file), "%s/token", root);
        FILE *f = fopen(token_file, "w");
        if (!f || fprintf(f, "%s\n", TOKEN) < 0 || fclose(f))
                return -1;
        if (it_admin_topics(prefix, PARTITIONS))
                return -1;
        it_daemon_init(&control, "KPAY_CONTROL_BIN", root, "control-1");
        it_daemon_init(&account[0], "KPAY_ACCOUNT_BIN", root, "account-1");
        it_daemon_init(&account[1], "KPAY_ACCOUNT_BIN", root, "account-2");
        it_daemon_init(&inflight, "KPAY_INFLIGHT_BIN", root, "inflight-1");
        it_daemon_init(&confirmed, "KPAY_CONFIRMED_BIN", root, "confirmed-1");
        it_daemon_init(&metrics, "KPAY_METRICS_BIN", root, "metrics-1");
        it_daemon_init(&web, "KPAY_WEB_BIN", root, "web-1");
        it_daemon_t *all[] = {&control,   &account[0], &account[1], &inflight,
                              &confirmed, &metrics,    &web};
        for (size_t i = 0; i < 7; i++)
                start(all[i]);
        for (size_t i = 0; i < 7; i++)
                it_daemon_wait_ready(all[i], 120000);
        /* Accounts acc-0..39 funded from @bank, and traffic between them,
         * every payment with its outcome. */
        char accounts[16];
        snprintf(accounts, sizeof(accounts), "%d", ACCOUNTS);
        char *argv[] = {(char *)it_env_bin("KPAY_GEN_BIN"),
                        "-b",
                        (char *)it_bootstrap(),
                        "--topic-prefix",
                        prefix,
                        "--accounts",
                        accounts,
                        "--fund",
                        "--count",
                        "100",
                        "--wait",
                        "--quiet",
                        NULL};
        char *out    = NULL;
        if (it_run(argv, 300000, &out) != 0) {
                fprintf(stderr, "kpay-gen failed:\n%s\n", out ? out : "");
                free(out);
                return -1;
        }
        free(out);
        return settled() ? 0 : -1;
}

static int teardown(void **state) {
        (void)state;
        it_daemon_t *all[] = {&web,      &control,   &account[0], &account[1],
                              &inflight, &confirmed, &metrics};
        it_daemons_teardown(all, 7, root);
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_accounts_paging),
            cmocka_unit_test(test_account_get),
            cmocka_unit_test(test_freeze),
            cmocka_unit_test(test_bad_input),
            cmocka_unit_test(test_pipeline_and_control),
            cmocka_unit_test(test_events),
            cmocka_unit_test(test_dlq),
            cmocka_unit_test(test_partial_and_back),
        };
        if (getenv("KPAY_IT_FILTER"))
                cmocka_set_test_filter(getenv("KPAY_IT_FILTER"));
        return cmocka_run_group_tests(tests, setup, teardown);
}
