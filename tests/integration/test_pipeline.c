/* Integration test of the payment pipeline: real kpay-inflight,
 * kpay-account (two instances, one SIGKILLed and restarted mid-run) and
 * kpay-confirmed processes on the fixture's broker. 100 accounts are funded
 * from @bank, then 20,000 random payments flow, with insufficient funds,
 * invalid payments, duplicates and broken records mixed in. After the drain
 * the books must balance exactly (docs/pipeline.md, "Invariants"). */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "it_util.h"
#include "kpay/kp_discovery.h"
#include "kpay/kp_topics.h"

#define ACCOUNTS   100
#define PAYMENTS   20000
#define FUNDING    10000 /* minor units per account */
#define PARTITIONS 6

typedef it_daemon_t proc_t;

static char prefix[64], root[256];
static proc_t inflight, account[2], confirmed;

static void proc_start(proc_t *p) {
        const char *extra[] = {"--state-dir", p->state, "--static-membership",
                               "true", NULL};
        it_daemon_spawn(p, prefix, extra);
}

static void proc_init(proc_t *p, const char *bin_env, const char *id) {
        it_daemon_init(p, bin_env, root, id);
        proc_start(p);
}

static void proc_wait_ready(proc_t *p) {
        it_daemon_wait_ready(p, 90000);
}

static void proc_stop(proc_t *p) {
        it_daemon_stop(p);
}

static void topic(char *buf, size_t size, kp_topic_id_t id) {
        kp_topic_name(buf, size, prefix, id);
}

/* ------------------------------------------------------------------------
 * The workload. */

typedef struct expect_s {
        size_t ids;        /* distinct payment ids sent (each needs an
                              outcome) */
        size_t broken;     /* records that must be dead-lettered */
        size_t duplicates; /* resubmissions to be dropped */
        size_t invalid;    /* valid JSON that must be REJECTED by inflight */
} expect_t;

static void payment_json(char *buf, size_t size, const char *id,
                         const char *from, const char *to, int64_t amount) {
        snprintf(buf, size,
                 "{\"v\":1,\"id\":\"%s\",\"from\":\"%s\",\"to\":\"%s\","
                 "\"amount\":%" PRId64
                 ",\"currency\":\"USD\","
                 "\"state\":\"INCOMING\",\"created_ms\":%" PRId64
                 ",\"client\":{\"tag\":\"it\"}}",
                 id, from, to, amount, (int64_t)time(NULL) * 1000);
}

static const char *broken_records[] = {
    "not json at all",
    "{\"v\":1,\"id\":\"b-float\",\"from\":\"a\",\"to\":\"b\",\"amount\":12.5,"
    "\"state\":\"INCOMING\"}",
    "{\"v\":2,\"id\":\"b-v2\",\"from\":\"a\",\"to\":\"b\",\"amount\":1,"
    "\"state\":\"INCOMING\"}",
    "{\"v\":1,\"id\":\"b-str\",\"from\":\"a\",\"to\":\"b\",\"amount\":\"12\","
    "\"state\":\"INCOMING\"}",
    "{\"v\":1,\"id\":\"b-trunc\",\"from\":\"a\",\"to\":",
    "[1,2,3]",
    "{\"v\":1,\"id\":\"b-huge\",\"from\":\"a\",\"to\":\"b\","
    "\"amount\":99999999999999999999,\"state\":\"INCOMING\"}",
    "{\"v\":1,\"from\":\"a\",\"to\":\"b\",\"amount\":5,\"state\":\"INCOMING\"}",
};

typedef struct feeder_s {
        expect_t exp;
        atomic_int progress; /* random payments sent so far */
        char sent[PAYMENTS]; /* p-<i> was sent as a payment */
        int failed;
} feeder_t;

static void *feed(void *arg) {
        feeder_t *f = arg;
        char in[256], buf[1024], id[64], from[32], to[32];
        topic(in, sizeof(in), KP_TOPIC_INCOMING);
        rd_kafka_t *rk = it_producer();
        unsigned seed  = 4242;
        size_t nbroken = sizeof(broken_records) / sizeof(broken_records[0]);
        for (int i = 0; i < PAYMENTS; i++) {
                int r = (int)(rand_r(&seed) % 1000), j = 0;
                if (r < 10) {
                        /* 1%: a broken record. */
                        const char *b = broken_records[f->exp.broken % nbroken];
                        it_produce(rk, in, -1, "broken", b);
                        f->exp.broken++;
                } else if (r < 30 && i > 0 &&
                           f->sent[j = (int)(rand_r(&seed) % (unsigned)i)]) {
                        /* 2%: a resubmission of an earlier payment, same id;
                         * dropped whatever the payload says. */
                        snprintf(id, sizeof(id), "p-%d", j);
                        payment_json(buf, sizeof(buf), id, "acc-0", "acc-1", 1);
                        it_produce(rk, in, -1, id, buf);
                        f->exp.duplicates++;
                } else {
                        int a          = (int)(rand_r(&seed) % ACCOUNTS);
                        int b          = (int)(rand_r(&seed) % ACCOUNTS);
                        int64_t amount = 1 + (int64_t)(rand_r(&seed) % 1500);
                        if (r < 40) {
                                b = a; /* 1%: from == to */
                                f->exp.invalid++;
                        } else if (r < 45) {
                                amount = 0; /* 0.5%: invalid amount */
                                f->exp.invalid++;
                        } else if (b == a) {
                                b = (a + 1) % ACCOUNTS;
                        }
                        snprintf(id, sizeof(id), "p-%d", i);
                        snprintf(from, sizeof(from), "acc-%d", a);
                        snprintf(to, sizeof(to), "acc-%d", b);
                        payment_json(buf, sizeof(buf), id, from, to, amount);
                        it_produce(rk, in, -1, id, buf);
                        f->exp.ids++;
                        f->sent[i] = 1;
                }
                atomic_store(&f->progress, i + 1);
                if (i % 500 == 0) {
                        rd_kafka_poll(rk, 0);
                        struct timespec ts = {0, 20 * 1000 * 1000};
                        nanosleep(&ts, NULL);
                }
        }
        it_producer_close(rk);
        return NULL;
}

/* Outcomes on kpay.payments.complete: id -> count, and state counts. */
typedef struct outcomes_s {
        json_t *by_id; /* id -> [count, state, reason] */
        size_t total, complete, rejected, insufficient;
} outcomes_t;

static void read_outcomes(outcomes_t *o) {
        char complete[256];
        topic(complete, sizeof(complete), KP_TOPIC_COMPLETE);
        memset(o, 0, sizeof(*o));
        o->by_id = json_object();
        it_rec_t *recs;
        size_t cnt = it_read_all(complete, "read_committed", &recs);
        for (size_t i = 0; i < cnt; i++) {
                json_error_t jerr;
                json_t *p = json_loads(recs[i].value, 0, &jerr);
                if (!p)
                        fail_msg("outcome is not JSON: %s", recs[i].value);
                const char *id = json_string_value(json_object_get(p, "id"));
                const char *st = json_string_value(json_object_get(p, "state"));
                const char *reason =
                    json_string_value(json_object_get(p, "reason"));
                assert_non_null(id);
                assert_non_null(st);
                json_t *e = json_object_get(o->by_id, id);
                if (!e)
                        json_object_set_new(
                            o->by_id, id,
                            json_pack("{s:i, s:s, s:s}", "n", 1, "state", st,
                                      "reason", reason ? reason : ""));
                else
                        json_object_set_new(
                            e, "n",
                            json_integer(
                                json_integer_value(json_object_get(e, "n")) +
                                1));
                o->total++;
                if (!strcmp(st, "COMPLETE"))
                        o->complete++;
                else if (!strcmp(st, "REJECTED"))
                        o->rejected++;
                else
                        fail_msg("unexpected outcome state %s", st);
                if (reason && !strcmp(reason, "insufficient_funds"))
                        o->insufficient++;
                json_decref(p);
        }
        it_free_recs(recs, cnt);
}

static void wait_outcomes(size_t ids, int timeout_ms, outcomes_t *o) {
        int64_t deadline = it_now_ms() + timeout_ms;
        for (;;) {
                read_outcomes(o);
                if (json_object_size(o->by_id) >= ids)
                        return;
                if (it_now_ms() > deadline) {
                        it_dump_log(inflight.log, 20);
                        it_dump_log(account[0].log, 20);
                        it_dump_log(account[1].log, 20);
                        fail_msg("%zu of %zu payments have an outcome",
                                 json_object_size(o->by_id), ids);
                }
                json_decref(o->by_id);
                struct timespec ts = {0, 300 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
}

static int64_t sum_field(json_t *items, const char *key_prefix,
                         const char *field) {
        int64_t sum = 0;
        size_t i;
        json_t *it;
        json_array_foreach(items, i, it) {
                const char *k = json_string_value(json_object_get(it, "key"));
                if (key_prefix && strncmp(k, key_prefix, strlen(key_prefix)))
                        continue;
                json_t *v =
                    json_object_get(json_object_get(it, "value"), field);
                if (!json_is_integer(v))
                        fail_msg("%s: %s is not an integer", k, field);
                sum += json_integer_value(v);
        }
        return sum;
}

/* Balances of every account, merged over both account instances; each
 * account must be served by exactly one. */
static json_t *all_balances(void) {
        json_t *merged = json_object();
        for (int a = 0; a < 2; a++) {
                json_t *items = it_store_items(account[a].endpoint, "balances");
                size_t i;
                json_t *it;
                json_array_foreach(items, i, it) {
                        const char *k =
                            json_string_value(json_object_get(it, "key"));
                        if (json_object_get(merged, k))
                                fail_msg("account %s served twice", k);
                        json_object_set(merged, k,
                                        json_object_get(it, "value"));
                }
                json_decref(items);
        }
        return merged;
}

/* The USD balance of @p acct (every payment here is in USD). */
static kp_i128_t balance_of(json_t *balances, const char *acct) {
        json_t *a = json_object_get(balances, acct);
        return a ? it_balance(a, "USD") : 0;
}

/* The sum over the partitions of the per-currency object @p field of the
 * store items whose key starts with @p key_prefix (all when NULL). */
static void sum_money(json_t *items, const char *key_prefix, const char *field,
                      kp_money_t *sum) {
        size_t i;
        json_t *it;
        json_array_foreach(items, i, it) {
                const char *k = json_string_value(json_object_get(it, "key"));
                if (key_prefix && strncmp(k, key_prefix, strlen(key_prefix)))
                        continue;
                it_money_add(
                    sum, json_object_get(json_object_get(it, "value"), field),
                    field);
        }
}

/* ------------------------------------------------------------------------ */

static int setup(void **state) {
        (void)state;
        it_unique_prefix(prefix, sizeof(prefix), "pipe");
        snprintf(root, sizeof(root), "/tmp/kpay-it-pipe-XXXXXX");
        if (!mkdtemp(root))
                return -1;
        /* Every topic of the deployment, as kpay-admin makes them. */
        if (it_admin_topics(prefix, PARTITIONS))
                return -1;
        proc_init(&inflight, "KPAY_INFLIGHT_BIN", "inflight-1");
        proc_init(&account[0], "KPAY_ACCOUNT_BIN", "account-1");
        proc_init(&account[1], "KPAY_ACCOUNT_BIN", "account-2");
        proc_init(&confirmed, "KPAY_CONFIRMED_BIN", "confirmed-1");
        proc_wait_ready(&inflight);
        proc_wait_ready(&account[0]);
        proc_wait_ready(&account[1]);
        proc_wait_ready(&confirmed);
        return 0;
}

static int teardown(void **state) {
        (void)state;
        proc_t *all[] = {&inflight, &account[0], &account[1], &confirmed};
        it_daemons_teardown(all, 4, root);
        return 0;
}

static void test_books_balance_under_crash(void **state) {
        (void)state;
        char in[256], buf[1024], id[64], to[32];
        topic(in, sizeof(in), KP_TOPIC_INCOMING);

        /* Fund every account from @bank. */
        rd_kafka_t *rk = it_producer();
        for (int a = 0; a < ACCOUNTS; a++) {
                snprintf(id, sizeof(id), "fund-%d", a);
                snprintf(to, sizeof(to), "acc-%d", a);
                payment_json(buf, sizeof(buf), id, "@bank", to, FUNDING);
                it_produce(rk, in, -1, id, buf);
        }
        it_producer_close(rk);
        outcomes_t o;
        wait_outcomes(ACCOUNTS, 60000, &o);
        assert_int_equal(o.complete, ACCOUNTS);
        json_decref(o.by_id);

        /* The random payments, with account-1 SIGKILLed half way. */
        feeder_t f = {0};
        pthread_t thr;
        assert_int_equal(pthread_create(&thr, NULL, feed, &f), 0);
        int64_t deadline = it_now_ms() + 120000;
        while (atomic_load(&f.progress) < PAYMENTS / 2) {
                if (it_now_ms() > deadline)
                        fail_msg("the feeder is stuck");
                struct timespec ts = {0, 20 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
        kill(account[0].pid, SIGKILL);
        it_wait_exit(account[0].pid, 30000);
        fprintf(stderr, "SIGKILLed account-1 at %d of %d payments\n",
                atomic_load(&f.progress), PAYMENTS);
        proc_start(&account[0]);
        proc_wait_ready(&account[0]);
        assert_int_equal(pthread_join(thr, NULL), 0);

        /* Drain: every payment id has an outcome. */
        size_t ids = ACCOUNTS + f.exp.ids;
        wait_outcomes(ids, 180000, &o);
        fprintf(stderr,
                "%zu outcomes: %zu complete, %zu rejected (%zu insufficient "
                "funds); %zu broken, %zu duplicates, %zu invalid sent\n",
                o.total, o.complete, o.rejected, o.insufficient, f.exp.broken,
                f.exp.duplicates, f.exp.invalid);
        /* Exactly one outcome per id. */
        const char *k;
        json_t *e;
        json_object_foreach(o.by_id, k, e) {
                if (json_integer_value(json_object_get(e, "n")) != 1)
                        fail_msg(
                            "payment %s has %" JSON_INTEGER_FORMAT " outcomes",
                            k, json_integer_value(json_object_get(e, "n")));
        }
        assert_int_equal(json_object_size(o.by_id), ids);
        assert_int_equal(o.total, ids);
        assert_true(o.insufficient > 0);
        assert_true(o.rejected >= f.exp.invalid + o.insufficient);

        /* The books balance: per currency (only USD here), the sum of every
         * balance is exactly 0, @bank included, and no regular account is
         * below 0. */
        json_t *balances = all_balances();
        json_t *items    = json_array();
        json_t *v;
        json_object_foreach(balances, k, v) {
                json_array_append_new(
                    items, json_pack("{s:s, s:O}", "key", k, "value", v));
        }
        kp_money_t books;
        kp_money_init(&books);
        it_books_add(&books, items);
        json_decref(items);
        assert_int_equal(books.cnt, 1);
        assert_true(kp_money_has(&books, "USD"));
        assert_true(kp_money_is_zero(&books));
        kp_money_clear(&books);
        assert_true(balance_of(balances, "@bank") ==
                    -(int64_t)ACCOUNTS * FUNDING);
        json_decref(balances);

        /* Nothing in flight once the last completions are read (they may
         * still be on their way to kpay-inflight); duplicates counted. */
        int64_t until = it_now_ms() + 60000;
        for (;;) {
                json_t *totals = it_store_items(inflight.endpoint, "totals");
                int64_t count  = sum_field(totals, NULL, "inflight_count");
                int64_t dups   = sum_field(totals, NULL, "duplicates");
                kp_money_t amounts;
                kp_money_init(&amounts);
                sum_money(totals, NULL, "inflight_amounts", &amounts);
                int zero = kp_money_is_zero(&amounts);
                kp_money_clear(&amounts);
                json_decref(totals);
                if (count == 0 && zero && dups == (int64_t)f.exp.duplicates)
                        break;
                if (it_now_ms() > until)
                        fail_msg("in flight: %" PRId64
                                 " payments (amounts %s); %" PRId64
                                 " duplicates counted of %zu",
                                 count, zero ? "0" : "not 0", dups,
                                 f.exp.duplicates);
                struct timespec ts = {0, 200 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }

        /* Confirmed + rejected = outcomes (once kpay-confirmed caught up). */
        until = it_now_ms() + 60000;
        for (;;) {
                json_t *ctot = it_store_items(confirmed.endpoint, "totals");
                int64_t conf = sum_field(ctot, "all", "confirmed_count");
                int64_t rej  = sum_field(ctot, "all", "rejected_count");
                json_decref(ctot);
                if (conf == (int64_t)o.complete && rej == (int64_t)o.rejected)
                        break;
                if (conf > (int64_t)o.complete || rej > (int64_t)o.rejected ||
                    it_now_ms() > until)
                        fail_msg("confirmed totals %" PRId64 " + %" PRId64
                                 ", outcomes %zu + %zu",
                                 conf, rej, o.complete, o.rejected);
                struct timespec ts = {0, 200 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }

        /* Every broken record is in the DLQ with its error. */
        char dlq[256];
        topic(dlq, sizeof(dlq), KP_TOPIC_DLQ);
        it_rec_t *recs;
        size_t cnt = it_read_all(dlq, "read_committed", &recs);
        assert_int_equal(cnt, f.exp.broken);
        for (size_t i = 0; i < cnt; i++) {
                const void *hv;
                size_t hl;
                assert_int_equal(rd_kafka_header_get_last(
                                     recs[i].headers, "kpay-error", &hv, &hl),
                                 0);
                assert_true(hl > 0);
                assert_int_equal(rd_kafka_header_get_last(
                                     recs[i].headers, "kpay-service", &hv, &hl),
                                 0);
                assert_memory_equal(hv, "inflight", hl);
        }
        it_free_recs(recs, cnt);
        json_decref(o.by_id);
}

/* The owner of an account's balance, through discovery, and its balance. */
static json_t *owner_balance(kp_discovery_t *d, const char *acct) {
        kp_instance_info_t owner;
        int32_t part;
        int64_t deadline = it_now_ms() + 30000;
        while (kp_discovery_owner(d, "account", "balances", acct, strlen(acct),
                                  &owner, &part)) {
                if (it_now_ms() > deadline)
                        fail_msg("no owner for %s", acct);
                struct timespec ts = {0, 100 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
        char path[200], *body = NULL;
        snprintf(path, sizeof(path), "/v1/stores/balances/keys/%s", acct);
        int status = it_http_get(owner.endpoint, path, &body);
        kp_instance_info_clear(&owner);
        if (status == 404) {
                free(body);
                return json_pack("{s:{}, s:b}", "balances", "frozen", 0);
        }
        if (status != 200)
                fail_msg("GET %s: %d %s", path, status, body);
        json_error_t jerr;
        json_t *j = json_loads(body, 0, &jerr);
        free(body);
        json_t *val = json_incref(json_object_get(j, "value"));
        json_decref(j);
        return val;
}

static void send_command(const char *cmd, const char *acct) {
        char inflight_topic[256], buf[256];
        topic(inflight_topic, sizeof(inflight_topic), KP_TOPIC_INFLIGHT);
        snprintf(buf, sizeof(buf),
                 "{\"v\":1,\"command\":\"%s\",\"account\":\"%s\","
                 "\"id\":\"cmd-%s-%s\"}",
                 cmd, acct, cmd, acct);
        rd_kafka_t *rk = it_producer();
        it_produce(rk, inflight_topic, -1, acct, buf);
        it_producer_close(rk);
}

static void pay(const char *id, const char *from, const char *to,
                int64_t amount) {
        char in[256], buf[1024];
        topic(in, sizeof(in), KP_TOPIC_INCOMING);
        payment_json(buf, sizeof(buf), id, from, to, amount);
        rd_kafka_t *rk = it_producer();
        it_produce(rk, in, -1, id, buf);
        it_producer_close(rk);
}

static json_t *outcome_of(const char *id) {
        int64_t deadline = it_now_ms() + 60000;
        for (;;) {
                outcomes_t o;
                read_outcomes(&o);
                json_t *e = json_incref(json_object_get(o.by_id, id));
                json_decref(o.by_id);
                if (e)
                        return e;
                if (it_now_ms() > deadline)
                        fail_msg("no outcome for %s", id);
                struct timespec ts = {0, 200 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
}

static void test_freeze_refunds_and_queries(void **state) {
        (void)state;
        kp_app_conf_t conf     = {0};
        conf.bootstrap_servers = (char *)it_bootstrap();
        conf.topic_prefix      = prefix;
        char errstr[512];
        kp_discovery_t *d =
            kp_discovery_new(&conf, 5000, errstr, sizeof(errstr));
        if (!d)
                fail_msg("discovery: %s", errstr);
        assert_int_equal(kp_discovery_sync(d, 30000), KP_OK);

        /* Every account's balance from whichever instance owns it adds up
         * to what the instances' scans say. */
        json_t *balances = all_balances();
        for (int a = 0; a < ACCOUNTS; a++) {
                char acct[32];
                snprintf(acct, sizeof(acct), "acc-%d", a);
                json_t *v = owner_balance(d, acct);
                assert_true(it_balance(v, "USD") == balance_of(balances, acct));
                json_decref(v);
        }
        json_decref(balances);

        /* Fund a fresh pair so the amounts are known. */
        pay("frz-fund-payer", "@bank", "frz-payer", 5000);
        json_t *e = outcome_of("frz-fund-payer");
        assert_string_equal(json_string_value(json_object_get(e, "state")),
                            "COMPLETE");
        json_decref(e);

        send_command("FREEZE", "frz-payee");
        int64_t deadline = it_now_ms() + 30000;
        for (;;) {
                json_t *v  = owner_balance(d, "frz-payee");
                int frozen = json_is_true(json_object_get(v, "frozen"));
                json_decref(v);
                if (frozen)
                        break;
                if (it_now_ms() > deadline)
                        fail_msg("frz-payee never became frozen");
                struct timespec ts = {0, 100 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }

        /* A payment to the frozen account is refunded. */
        pay("frz-1", "frz-payer", "frz-payee", 1200);
        e = outcome_of("frz-1");
        assert_string_equal(json_string_value(json_object_get(e, "state")),
                            "REJECTED");
        assert_string_equal(json_string_value(json_object_get(e, "reason")),
                            "account_frozen");
        json_decref(e);
        json_t *payer = owner_balance(d, "frz-payer");
        json_t *payee = owner_balance(d, "frz-payee");
        assert_true(it_balance(payer, "USD") == 5000);
        assert_true(it_balance(payee, "USD") == 0);
        json_decref(payer);
        json_decref(payee);

        /* Unfrozen, the same transfer goes through. */
        send_command("UNFREEZE", "frz-payee");
        deadline = it_now_ms() + 30000;
        for (;;) {
                json_t *v  = owner_balance(d, "frz-payee");
                int frozen = json_is_true(json_object_get(v, "frozen"));
                json_decref(v);
                if (!frozen)
                        break;
                if (it_now_ms() > deadline)
                        fail_msg("frz-payee never unfroze");
                struct timespec ts = {0, 100 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
        pay("frz-2", "frz-payer", "frz-payee", 1200);
        e = outcome_of("frz-2");
        assert_string_equal(json_string_value(json_object_get(e, "state")),
                            "COMPLETE");
        json_decref(e);
        payer = owner_balance(d, "frz-payer");
        payee = owner_balance(d, "frz-payee");
        assert_true(it_balance(payer, "USD") == 3800);
        assert_true(it_balance(payee, "USD") == 1200);
        json_decref(payer);
        json_decref(payee);
        kp_discovery_destroy(d);
}

/* kpay-gen against the running pipeline: everything it sends is
 * acknowledged, every valid payment gets exactly one outcome. */
static void test_gen_end_to_end(void **state) {
        (void)state;
        const char *gen    = it_env_bin("KPAY_GEN_BIN");
        char *out          = NULL;
        char *const argv[] = {(char *)gen,
                              "-b",
                              (char *)it_bootstrap(),
                              "--topic-prefix",
                              prefix,
                              "--accounts",
                              "50",
                              "--fund",
                              "--count",
                              "2000",
                              "--rate",
                              "1000",
                              "--invalid-ratio",
                              "0.05",
                              "--duplicate-ratio",
                              "0.05",
                              "--seed",
                              "11",
                              "--wait",
                              "--wait-timeout",
                              "120",
                              "--json",
                              "--quiet",
                              NULL};
        int rc             = it_run(argv, 180000, &out);
        if (rc != 0)
                fail_msg("kpay-gen exited %d:\n%s", rc, out);
        json_error_t jerr;
        json_t *j = json_loads(out, 0, &jerr);
        if (!j)
                fail_msg("kpay-gen --json printed no JSON: %s", out);
        json_int_t sent = json_integer_value(json_object_get(j, "sent"));
        assert_true(sent == 2050); /* 2000 + 50 funding payments */
        assert_true(json_integer_value(json_object_get(j, "acked")) == sent);
        assert_true(json_integer_value(json_object_get(j, "failed")) == 0);
        assert_true(json_integer_value(json_object_get(j, "missing")) == 0);
        assert_true(
            json_integer_value(json_object_get(j, "multiple_outcomes")) == 0);
        assert_true(json_integer_value(json_object_get(j, "invalid_sent")) > 0);
        assert_true(json_integer_value(json_object_get(j, "duplicates_sent")) >
                    0);
        json_t *lat = json_object_get(j, "latency_ms");
        assert_true(json_integer_value(json_object_get(lat, "p50")) > 0);
        /* Its books check: every balance of the deployment (the earlier
         * tests' too: acc-0.. are kpay-gen's account names as well, @bank,
         * frz-payer, frz-payee), per currency, sums to 0. */
        json_t *books = json_object_get(j, "books");
        if (!json_is_true(json_object_get(books, "balanced")))
                fail_msg("kpay-gen: the books do not balance: %s", out);
        if (json_integer_value(json_object_get(books, "accounts")) !=
            ACCOUNTS + 3)
                fail_msg("kpay-gen read too few accounts: %s", out);
        assert_string_equal(json_string_value(json_object_get(
                                json_object_get(books, "sums"), "USD")),
                            "0");
        json_decref(j);
        free(out);

        /* A bad argument: one line, exit 2. */
        char *const bad[] = {(char *)gen, "--amount", "5:1", NULL};
        rc                = it_run(bad, 10000, &out);
        assert_int_equal(rc, 2);
        assert_non_null(strstr(out, "amount"));
        free(out);
}

/* SIGTERM: every daemon finishes its transaction and exits 0. */
static void test_clean_shutdown(void **state) {
        (void)state;
        proc_stop(&inflight);
        proc_stop(&account[0]);
        proc_stop(&account[1]);
        proc_stop(&confirmed);
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_books_balance_under_crash),
            cmocka_unit_test(test_freeze_refunds_and_queries),
            cmocka_unit_test(test_gen_end_to_end),
            cmocka_unit_test(test_clean_shutdown),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
