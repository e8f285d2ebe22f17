/* Integration tests of the runtime (kp_proc) with real processes of
 * kpay-testproc on the real broker of the fixture: exactly once under
 * SIGKILL, restore from the changelog, rebalancing with discovery, the HTTP
 * endpoints, punctuation and dead letters. */
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

#define MAX_INST 4

typedef struct inst_s {
        pid_t pid;
        char id[32];
        char endpoint[32];
        char state[512];
        char log[600];
} inst_t;

typedef struct env_s {
        char prefix[64];
        char root[256];
        char in[256], out[256], ticks[256], dlq[256], changelog[256];
        int partitions;
        inst_t inst[MAX_INST];
} env_t;

static void env_init(env_t *e, const char *name, int partitions) {
        memset(e, 0, sizeof(*e));
        it_unique_prefix(e->prefix, sizeof(e->prefix), name);
        snprintf(e->root, sizeof(e->root), "/tmp/kpay-it-%s-XXXXXX", name);
        if (!mkdtemp(e->root))
                fail_msg("mkdtemp: %s", strerror(errno));
        e->partitions = partitions;
        snprintf(e->in, sizeof(e->in), "%stest.in", e->prefix);
        snprintf(e->out, sizeof(e->out), "%stest.out", e->prefix);
        snprintf(e->ticks, sizeof(e->ticks), "%stest.ticks", e->prefix);
        kp_topic_name(e->dlq, sizeof(e->dlq), e->prefix, KP_TOPIC_DLQ);
        kp_changelog_name(e->changelog, sizeof(e->changelog), e->prefix,
                          "testproc", "sums");
        const char *data[] = {e->in, e->out, e->ticks, e->dlq, NULL};
        it_create_topics(data, partitions, 0);
        char meta[256];
        kp_topic_name(meta, sizeof(meta), e->prefix, KP_TOPIC_METADATA);
        const char *compacted[] = {meta, NULL};
        it_create_topics(compacted, 1, 1);
}

static void env_cleanup(env_t *e) {
        for (int i = 0; i < MAX_INST; i++)
                if (e->inst[i].pid > 0) {
                        kill(e->inst[i].pid, SIGKILL);
                        it_wait_exit(e->inst[i].pid, 10000);
                        e->inst[i].pid = 0;
                }
        char cmd[400];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->root);
        if (system(cmd) != 0)
                fprintf(stderr, "could not remove %s\n", e->root);
}

/* Starts instance @p i (state in <root>/<id>), with the extra arguments
 * @p extra (NULL-terminated, may be NULL). */
static inst_t *inst_start_v(env_t *e, int i, const char *id,
                            const char *const *extra) {
        inst_t *in = &e->inst[i];
        snprintf(in->id, sizeof(in->id), "%s", id);
        snprintf(in->state, sizeof(in->state), "%s/%s", e->root, id);
        snprintf(in->log, sizeof(in->log), "%s/%s.log", e->root, id);
        snprintf(in->endpoint, sizeof(in->endpoint), "127.0.0.1:%d",
                 it_free_port());
        const char *bin = getenv("KPAY_TESTPROC_BIN");
        if (!bin)
                fail_msg("KPAY_TESTPROC_BIN is not set: run through ctest");
        char *argv[32] = {(char *)bin,
                          "-b",
                          (char *)it_bootstrap(),
                          "--topic-prefix",
                          e->prefix,
                          "--instance-id",
                          in->id,
                          "--state-dir",
                          in->state,
                          "--listen",
                          in->endpoint,
                          "--partitions",
                          "4",
                          "--commit-interval-ms",
                          "100",
                          "--heartbeat-ms",
                          "1000"};
        int n          = 17;
        for (int x = 0; extra && extra[x] && n < 31; x++)
                argv[n++] = (char *)extra[x];
        argv[n] = NULL;
        in->pid = it_spawn(argv, in->log);
        return in;
}

/* inst_start_v() with up to two extra arguments. */
static inst_t *inst_start(env_t *e, int i, const char *id, const char *extra1,
                          const char *extra2) {
        const char *extra[] = {extra1, extra2, NULL};
        return inst_start_v(e, i, id, extra);
}

static void inst_wait_ready(inst_t *in, int timeout_ms) {
        int64_t deadline = it_now_ms() + timeout_ms;
        while (it_http_get(in->endpoint, "/readyz", NULL) != 200) {
                if (it_exited(in->pid)) {
                        it_dump_log(in->log, 40);
                        fail_msg("instance %s exited before it was ready",
                                 in->id);
                }
                if (it_now_ms() > deadline) {
                        it_dump_log(in->log, 40);
                        fail_msg("instance %s not ready within %d ms", in->id,
                                 timeout_ms);
                }
                struct timespec ts = {0, 50 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
}

static void inst_stop(inst_t *in) {
        kill(in->pid, SIGTERM);
        int rc = it_wait_exit(in->pid, 60000);
        if (rc != 0) {
                it_dump_log(in->log, 40);
                fail_msg("instance %s exited %d after SIGTERM", in->id, rc);
        }
        in->pid = 0;
}

static void inst_kill(inst_t *in) {
        kill(in->pid, SIGKILL);
        it_wait_exit(in->pid, 30000);
        in->pid = 0;
}

/* Produces values from..to (inclusive) for keys k0..k<keys-1>, each key's
 * values in order. */
static void produce_values(env_t *e, int keys, int from, int to) {
        rd_kafka_t *rk = it_producer();
        for (int v = from; v <= to; v++)
                for (int k = 0; k < keys; k++) {
                        char key[32], val[32];
                        snprintf(key, sizeof(key), "k%d", k);
                        snprintf(val, sizeof(val), "%d", v);
                        it_produce(rk, e->in, -1, key, val);
                }
        it_producer_close(rk);
}

/* Waits until test.out holds at least @p n committed records. */
static size_t wait_outputs(env_t *e, size_t n, int timeout_ms) {
        int64_t deadline = it_now_ms() + timeout_ms;
        for (;;) {
                it_rec_t *recs;
                size_t cnt = it_read_all(e->out, "read_committed", &recs);
                it_free_recs(recs, cnt);
                if (cnt >= n)
                        return cnt;
                if (it_now_ms() > deadline) {
                        for (int i = 0; i < MAX_INST; i++)
                                if (e->inst[i].pid > 0)
                                        it_dump_log(e->inst[i].log, 30);
                        fail_msg("only %zu of %zu outputs within %d ms", cnt, n,
                                 timeout_ms);
                }
                struct timespec ts = {0, 200 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
}

/* Checks that test.out holds, for every key k0..k<keys-1>, exactly one
 * result for each value 1..values, in order, with the exact running sum. */
static void check_exactly_once(env_t *e, int keys, int values) {
        it_rec_t *recs;
        size_t cnt = it_read_all(e->out, "read_committed", &recs);
        int *next  = calloc((size_t)keys, sizeof(int));
        for (int k = 0; k < keys; k++)
                next[k] = 1;
        for (size_t i = 0; i < cnt; i++) {
                int k, v;
                int64_t sum;
                if (!recs[i].value ||
                    sscanf(recs[i].value, "k%d:%d:%" SCNd64, &k, &v, &sum) !=
                        3 ||
                    k < 0 || k >= keys)
                        fail_msg("malformed output \"%s\"", recs[i].value);
                if (v != next[k])
                        fail_msg(
                            "key k%d: expected value %d next, got %d "
                            "(\"%s\" at %d@%" PRId64 "): a duplicate or a gap",
                            k, next[k], v, recs[i].value,
                            (int)recs[i].partition, recs[i].offset);
                if (sum != (int64_t)v * (v + 1) / 2)
                        fail_msg("key k%d: sum %" PRId64
                                 " after %d, expected "
                                 "%d: state applied twice or lost",
                                 k, sum, v, v * (v + 1) / 2);
                next[k]++;
        }
        for (int k = 0; k < keys; k++)
                if (next[k] != values + 1)
                        fail_msg("key k%d: %d of %d results", k, next[k] - 1,
                                 values);
        assert_int_equal(cnt, (size_t)keys * (size_t)values);
        free(next);
        it_free_recs(recs, cnt);
}

static json_t *get_json(const char *endpoint, const char *path,
                        int want_status) {
        char *body = NULL;
        int status = it_http_get(endpoint, path, &body);
        if (status != want_status)
                fail_msg("GET %s: status %d, expected %d: %s", path, status,
                         want_status, body ? body : "");
        json_error_t jerr;
        json_t *j = json_loads(body, 0, &jerr);
        if (!j)
                fail_msg("GET %s: not JSON (%s): %s", path, jerr.text, body);
        free(body);
        return j;
}

static int64_t key_value(const char *endpoint, int k) {
        char path[128];
        snprintf(path, sizeof(path), "/v1/stores/sums/keys/k%d", k);
        json_t *j   = get_json(endpoint, path, 200);
        json_t *v   = json_object_get(j, "value");
        int64_t val = json_integer_value(v);
        if (!json_is_integer(v))
                fail_msg("%s: value is not an integer", path);
        json_decref(j);
        return val;
}

/* A Prometheus sample's value from /metrics, or -1. */
static double metric(const char *endpoint, const char *name) {
        char *body = NULL;
        if (it_http_get(endpoint, "/metrics", &body) != 200)
                fail_msg("GET /metrics failed");
        double v = -1;
        char pat[200];
        snprintf(pat, sizeof(pat), "\n%s ", name);
        char *p = strstr(body, pat);
        if (p)
                v = strtod(p + strlen(pat), NULL);
        free(body);
        return v;
}

/* ------------------------------------------------------------------------ */

/* Produces values 1..values for keys k0..k<keys-1> at a steady pace, so
 * that the processor always has work in flight when it is killed. */
typedef struct feeder_s {
        env_t *e;
        int keys, values;
        atomic_int produced; /* values completed for every key */
        int failed;
} feeder_t;

static void *feeder_run(void *arg) {
        feeder_t *f    = arg;
        rd_kafka_t *rk = it_producer();
        for (int v = 1; v <= f->values; v++) {
                for (int k = 0; k < f->keys; k++) {
                        char key[32], val[32];
                        snprintf(key, sizeof(key), "k%d", k);
                        snprintf(val, sizeof(val), "%d", v);
                        rd_kafka_resp_err_t err;
                        while ((err = rd_kafka_producev(
                                    rk, RD_KAFKA_V_TOPIC(f->e->in),
                                    RD_KAFKA_V_KEY(key, strlen(key)),
                                    RD_KAFKA_V_VALUE(val, strlen(val)),
                                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                    RD_KAFKA_V_END)) ==
                               RD_KAFKA_RESP_ERR__QUEUE_FULL)
                                rd_kafka_poll(rk, 10);
                        if (err)
                                f->failed = 1;
                }
                rd_kafka_poll(rk, 0);
                atomic_store(&f->produced, v);
                struct timespec ts = {0, 4 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
        if (rd_kafka_flush(rk, 60000) || rd_kafka_outq_len(rk))
                f->failed = 1;
        rd_kafka_destroy(rk);
        return NULL;
}

static void test_exactly_once_under_sigkill(void **state) {
        (void)state;
        env_t e;
        env_init(&e, "eos", 4);
        const int keys = 20, values = 2000, kills = 6;
        srand((unsigned)time(NULL) ^ (unsigned)getpid());
        feeder_t f = {.e = &e, .keys = keys, .values = values};
        pthread_t feeder;
        assert_int_equal(pthread_create(&feeder, NULL, feeder_run, &f), 0);

        int kills_mid_flight = 0;
        for (int r = 0; r < kills; r++) {
                /* Static membership: the restarted instance takes the dead
                 * one's place at once instead of waiting out its session. */
                inst_t *in =
                    inst_start(&e, 0, "a", "--static-membership", "true");
                inst_wait_ready(in, 60000);
                /* A random moment while input keeps arriving. */
                struct timespec ts = {0, (long)(200 + rand() % 800) * 1000000};
                nanosleep(&ts, NULL);
                int produced = atomic_load(&f.produced);
                inst_kill(in);
                it_rec_t *recs;
                size_t cnt = it_read_all(e.out, "read_committed", &recs);
                it_free_recs(recs, cnt);
                if (produced < values && cnt > 0)
                        kills_mid_flight++;
                fprintf(stderr,
                        "kill %d: SIGKILL with %zu outputs committed, %d "
                        "input records produced\n",
                        r, cnt, produced * keys);
        }
        assert_int_equal(pthread_join(feeder, NULL), 0);
        assert_false(f.failed);
        /* The survivor finishes the work. */
        inst_t *in = inst_start(&e, 0, "a", "--static-membership", "true");
        inst_wait_ready(in, 60000);
        wait_outputs(&e, (size_t)keys * values, 180000);
        for (int k = 0; k < keys; k++)
                assert_int_equal(key_value(in->endpoint, k),
                                 (int64_t)values * (values + 1) / 2);
        inst_stop(in);
        check_exactly_once(&e, keys, values);
        fprintf(stderr, "%d of %d kills hit a processor with work in flight\n",
                kills_mid_flight, kills);
        /* Kills must have interrupted processing, or the test proved nothing
         * about crashes. */
        assert_true(kills_mid_flight >= kills / 2);
        env_cleanup(&e);
}

static void copy_dir(const char *from, const char *to) {
        char cmd[1200];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s' && cp -a '%s' '%s'", to, from,
                 to);
        if (system(cmd) != 0)
                fail_msg("%s failed", cmd);
}

static void remove_dir(const char *dir) {
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0)
                fail_msg("%s failed", cmd);
}

/* Every key and value of store "sums" through the paginated scan. */
static json_t *scan_all(const char *endpoint, int page) {
        json_t *all     = json_object();
        char after[256] = "";
        for (int guard = 0; guard < 10000; guard++) {
                char path[400];
                if (after[0])
                        snprintf(path, sizeof(path),
                                 "/v1/stores/sums?limit=%d&after=%s", page,
                                 after);
                else
                        snprintf(path, sizeof(path), "/v1/stores/sums?limit=%d",
                                 page);
                json_t *j     = get_json(endpoint, path, 200);
                json_t *items = json_object_get(j, "items");
                assert_true(json_array_size(items) <= (size_t)page);
                size_t i;
                json_t *it;
                json_array_foreach(items, i, it) {
                        const char *k =
                            json_string_value(json_object_get(it, "key"));
                        assert_non_null(k);
                        /* Keys come in order, each once. */
                        if (after[0])
                                assert_true(strcmp(k, after) > 0);
                        assert_null(json_object_get(all, k));
                        json_object_set(all, k, json_object_get(it, "value"));
                        snprintf(after, sizeof(after), "%s", k);
                }
                int more = !json_is_null(json_object_get(j, "next"));
                json_decref(j);
                if (!more)
                        return all;
        }
        fail_msg("scan did not end");
        return NULL;
}

static void test_restore_and_http(void **state) {
        (void)state;
        env_t e;
        env_init(&e, "restore", 4);
        const int keys = 50;
        produce_values(&e, keys, 1, 20);
        inst_t *in = inst_start(&e, 0, "r", NULL, NULL);
        inst_wait_ready(in, 60000);
        wait_outputs(&e, (size_t)keys * 20, 60000);

        /* The HTTP endpoints, well-formed and not. */
        json_t *j = get_json(in->endpoint, "/healthz", 200);
        assert_string_equal(json_string_value(json_object_get(j, "status")),
                            "ok");
        json_decref(j);
        j = get_json(in->endpoint, "/readyz", 200);
        json_decref(j);
        j           = get_json(in->endpoint, "/v1/stores", 200);
        json_t *st0 = json_array_get(json_object_get(j, "stores"), 0);
        assert_string_equal(json_string_value(json_object_get(st0, "name")),
                            "sums");
        assert_int_equal(json_array_size(json_object_get(st0, "partitions")),
                         4);
        assert_int_equal(
            json_integer_value(json_object_get(j, "partition_count")), 4);
        json_decref(j);
        assert_int_equal(key_value(in->endpoint, 7), 210);
        struct {
                const char *method, *path, *error;
                int status;
        } bad[] = {
            {"GET", "/v1/stores/nope", "unknown_store", 404},
            {"GET", "/v1/stores/nope/keys/k1", "unknown_store", 404},
            {"GET", "/v1/stores/sums/keys/absent", "not_found", 404},
            {"GET", "/v1/stores/sums?limit=abc", "bad_request", 400},
            {"GET", "/v1/stores/sums?limit=0", "bad_request", 400},
            {"GET", "/v1/stores/sums?limit=1001", "bad_request", 400},
            {"GET", "/v1/stores/sums/other/k1", "not_found", 404},
            {"GET", "/nowhere", NULL, 404},
            {"POST", "/v1/stores", NULL, 405},
            {"DELETE", "/v1/stores/sums/keys/k1", NULL, 405},
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                char *body = NULL;
                int status = it_http(bad[i].method, in->endpoint, bad[i].path,
                                     NULL, &body);
                if (status != bad[i].status)
                        fail_msg("%s %s: %d, expected %d: %s", bad[i].method,
                                 bad[i].path, status, bad[i].status, body);
                json_error_t jerr;
                json_t *err = json_loads(body, 0, &jerr);
                if (!err || !json_is_string(json_object_get(err, "error")))
                        fail_msg("%s %s: no JSON error body: %s", bad[i].method,
                                 bad[i].path, body);
                if (bad[i].error)
                        assert_string_equal(
                            json_string_value(json_object_get(err, "error")),
                            bad[i].error);
                json_decref(err);
                free(body);
        }
        char *mtext = NULL;
        assert_int_equal(it_http_get(in->endpoint, "/metrics", &mtext), 200);
        const char *families[] = {"kpay_records_in_total",
                                  "kpay_records_out_total",
                                  "kpay_transactions_committed_total",
                                  "kpay_transactions_aborted_total",
                                  "kpay_commit_latency_seconds_bucket",
                                  "kpay_restore_records_total",
                                  "kpay_store_keys",
                                  "kpay_assigned_partitions"};
        for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++)
                if (!strstr(mtext, families[i]))
                        fail_msg("/metrics lacks %s:\n%s", families[i], mtext);
        free(mtext);
        assert_true(metric(in->endpoint, "kpay_records_in_total") == keys * 20);

        json_t *before = scan_all(in->endpoint, 7);
        assert_int_equal(json_object_size(before), keys);
        inst_stop(in);
        char old[600];
        snprintf(old, sizeof(old), "%s/r-old", e.root);
        copy_dir(in->state, old);

        /* No local state: rebuilt from the changelog, record for record. */
        it_rec_t *recs;
        size_t changelog_cnt =
            it_read_all(e.changelog, "read_committed", &recs);
        it_free_recs(recs, changelog_cnt);
        remove_dir(in->state);
        in = inst_start(&e, 0, "r", NULL, NULL);
        inst_wait_ready(in, 60000);
        json_t *after = scan_all(in->endpoint, 1000);
        assert_true(json_equal(before, after));
        json_decref(after);
        assert_true(metric(in->endpoint, "kpay_restore_records_total") ==
                    (double)changelog_cnt);
        inst_stop(in);

        /* Local state kept after a clean stop: nothing to replay. */
        size_t changelog_before =
            it_read_all(e.changelog, "read_committed", &recs);
        it_free_recs(recs, changelog_before);
        produce_values(&e, keys, 21, 26);
        in = inst_start(&e, 0, "r", NULL, NULL);
        inst_wait_ready(in, 60000);
        assert_true(metric(in->endpoint, "kpay_restore_records_total") == 0);
        wait_outputs(&e, (size_t)keys * 26, 60000);
        inst_stop(in);
        size_t changelog_after =
            it_read_all(e.changelog, "read_committed", &recs);
        it_free_recs(recs, changelog_after);
        /* At least one record per key, at most one per input record (the
         * runtime writes each key once per transaction). */
        assert_true(changelog_after - changelog_before >= (size_t)keys);
        assert_true(changelog_after - changelog_before <= (size_t)keys * 6);

        /* An older checkpoint: exactly the changelog records written since
         * are replayed. */
        copy_dir(old, in->state);
        in = inst_start(&e, 0, "r", NULL, NULL);
        inst_wait_ready(in, 60000);
        assert_true(metric(in->endpoint, "kpay_restore_records_total") ==
                    (double)(changelog_after - changelog_before));
        for (int k = 0; k < keys; k++)
                assert_int_equal(key_value(in->endpoint, k), 26 * 27 / 2);
        inst_stop(in);
        json_decref(before);
        check_exactly_once(&e, keys, 26);
        env_cleanup(&e);
}

/* Waits until discovery shows exactly @p n live testproc instances that
 * together own every partition once. */
static void wait_discovery(kp_discovery_t *d, size_t n, int partitions) {
        int64_t deadline = it_now_ms() + 60000;
        for (;;) {
                kp_instance_info_t *list;
                size_t cnt = kp_discovery_instances(d, "testproc", &list);
                int owned = 0, dup = 0;
                int *seen = calloc((size_t)partitions, sizeof(int));
                for (size_t i = 0; i < cnt; i++)
                        for (size_t p = 0; p < list[i].partition_cnt; p++) {
                                int32_t part = list[i].partitions[p];
                                if (part >= 0 && part < partitions) {
                                        if (seen[part]++)
                                                dup = 1;
                                        else
                                                owned++;
                                }
                        }
                free(seen);
                kp_instance_info_list_free(list, cnt);
                if (cnt == n && owned == partitions && !dup)
                        return;
                if (it_now_ms() > deadline)
                        fail_msg(
                            "discovery: %zu instances owning %d of %d "
                            "partitions%s",
                            cnt, owned, partitions, dup ? " (some twice)" : "");
                struct timespec ts = {0, 100 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
}

static void test_rebalance_and_discovery(void **state) {
        (void)state;
        env_t e;
        env_init(&e, "rebal", 6);
        const int keys = 60;
        inst_t *a      = inst_start(&e, 0, "a", NULL, NULL);
        inst_t *b      = inst_start(&e, 1, "b", NULL, NULL);
        inst_wait_ready(a, 60000);
        inst_wait_ready(b, 60000);
        produce_values(&e, keys, 1, 10);
        wait_outputs(&e, (size_t)keys * 10, 60000);

        inst_t *c = inst_start(&e, 2, "c", NULL, NULL);
        inst_wait_ready(c, 60000);
        produce_values(&e, keys, 11, 20);
        wait_outputs(&e, (size_t)keys * 20, 60000);

        inst_stop(a);
        produce_values(&e, keys, 21, 30);
        wait_outputs(&e, (size_t)keys * 30, 60000);

        /* Every key through discovery, on its current owner. */
        kp_app_conf_t conf     = {0};
        conf.bootstrap_servers = (char *)it_bootstrap();
        conf.topic_prefix      = e.prefix;
        char errstr[512];
        kp_discovery_t *d =
            kp_discovery_new(&conf, 4000, errstr, sizeof(errstr));
        if (!d)
                fail_msg("kp_discovery_new: %s", errstr);
        assert_int_equal(kp_discovery_sync(d, 30000), KP_OK);
        wait_discovery(d, 2, 6);
        for (int k = 0; k < keys; k++) {
                char key[32], path[128];
                snprintf(key, sizeof(key), "k%d", k);
                kp_instance_info_t owner;
                int32_t part;
                if (kp_discovery_owner(d, "testproc", "sums", key, strlen(key),
                                       &owner, &part))
                        fail_msg("no owner for %s", key);
                assert_string_not_equal(owner.instance, "a");
                snprintf(path, sizeof(path), "/v1/stores/sums/keys/%s", key);
                json_t *j = get_json(owner.endpoint, path, 200);
                assert_int_equal(
                    json_integer_value(json_object_get(j, "value")), 465);
                assert_int_equal(
                    json_integer_value(json_object_get(j, "partition")), part);
                json_decref(j);
                /* The other instance does not serve it. */
                const char *other =
                    !strcmp(owner.instance, "b") ? c->endpoint : b->endpoint;
                j = get_json(other, path, 404);
                assert_string_equal(
                    json_string_value(json_object_get(j, "error")),
                    "not_owned");
                json_decref(j);
                kp_instance_info_clear(&owner);
        }
        inst_stop(b);
        inst_stop(c);
        kp_discovery_destroy(d);
        check_exactly_once(&e, keys, 30);
        env_cleanup(&e);
}

static void test_punctuation_and_dead_letters(void **state) {
        (void)state;
        env_t e;
        env_init(&e, "punct", 4);
        inst_t *in = inst_start(&e, 0, "p", "--punctuate-ms", "200");
        inst_wait_ready(in, 60000);
        /* Ticks arrive for every partition with no input at all. */
        int64_t deadline = it_now_ms() + 30000;
        for (;;) {
                it_rec_t *recs;
                size_t cnt = it_read_all(e.ticks, "read_committed", &recs);
                int per[4] = {0};
                for (size_t i = 0; i < cnt; i++)
                        per[recs[i].partition]++;
                it_free_recs(recs, cnt);
                if (per[0] >= 3 && per[1] >= 3 && per[2] >= 3 && per[3] >= 3)
                        break;
                if (it_now_ms() > deadline)
                        fail_msg("ticks per partition: %d %d %d %d", per[0],
                                 per[1], per[2], per[3]);
                struct timespec ts = {0, 100 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }

        /* A record that is not a number goes to the DLQ, byte for byte. */
        rd_kafka_t *rk = it_producer();
        it_produce(rk, e.in, 2, "bad", "not-a-number");
        it_produce(rk, e.in, 2, "good", "5");
        it_producer_close(rk);
        wait_outputs(&e, 1, 30000);
        it_rec_t *recs;
        size_t cnt = it_read_all(e.dlq, "read_committed", &recs);
        assert_int_equal(cnt, 1);
        assert_string_equal(recs[0].key, "bad");
        assert_string_equal(recs[0].value, "not-a-number");
        const void *v;
        size_t len;
        assert_int_equal(
            rd_kafka_header_get_last(recs[0].headers, "kpay-error", &v, &len),
            0);
        assert_memory_equal(v, "ERR_PARSE", len);
        assert_int_equal(
            rd_kafka_header_get_last(recs[0].headers, "kpay-source-partition",
                                     &v, &len),
            0);
        assert_memory_equal(v, "2", len);
        assert_int_equal(rd_kafka_header_get_last(
                             recs[0].headers, "kpay-source-topic", &v, &len),
                         0);
        assert_memory_equal(v, e.in, len);
        it_free_recs(recs, cnt);
        assert_true(metric(in->endpoint, "kpay_records_dead_lettered_total") ==
                    1);
        inst_stop(in);
        env_cleanup(&e);
}

/* The InstanceInfo records of instance @p id on kpay.metadata, in order:
 * each state ("" for a tombstone) into @p states. Returns the count. */
static size_t info_states(env_t *e, const char *id, char states[][16],
                          size_t max) {
        char meta[256], key[64];
        kp_topic_name(meta, sizeof(meta), e->prefix, KP_TOPIC_METADATA);
        snprintf(key, sizeof(key), "testproc/%s", id);
        it_rec_t *recs;
        size_t cnt = it_read_all(meta, "read_committed", &recs), n = 0;
        for (size_t i = 0; i < cnt && n < max; i++) {
                if (!recs[i].key || strcmp(recs[i].key, key))
                        continue;
                states[n][0] = '\0';
                if (recs[i].value) {
                        json_error_t jerr;
                        json_t *j = json_loads(recs[i].value, 0, &jerr);
                        const char *st =
                            json_string_value(json_object_get(j, "state"));
                        snprintf(states[n], 16, "%s", st ? st : "?");
                        json_decref(j);
                }
                n++;
        }
        it_free_recs(recs, cnt);
        return n;
}

static int log_contains(const char *path, const char *needle) {
        FILE *fp = fopen(path, "r");
        char line[2048];
        int found = 0;
        while (fp && !found && fgets(line, sizeof(line), fp))
                found = strstr(line, needle) != NULL;
        if (fp)
                fclose(fp);
        return found;
}

/* -X reaches the clients for tunables and is refused (with a warning) for
 * the safety invariants; the lifecycle is published in InstanceInfo:
 * RUNNING, a tombstone on exit, and RESTORING then RUNNING when the
 * stores are rebuilt from the changelog. */
static void test_lifecycle_and_config(void **state) {
        (void)state;
        env_t e;
        env_init(&e, "lifecycle", 4);
        const char *x[] = {"-X", "linger.ms=0", "-X",
                           "isolation.level=read_uncommitted", NULL};
        inst_t *in      = inst_start_v(&e, 0, "L1", x);
        inst_wait_ready(in, 60000);

        json_t *conf  = get_json(in->endpoint, "/v1/config", 200);
        json_t *kafka = json_object_get(conf, "kafka");
        /* librdkafka reports linger.ms under its canonical name. */
        const char *ling = json_string_value(json_object_get(
            json_object_get(kafka, "producer"), "queue.buffering.max.ms"));
        const char *iso  = json_string_value(json_object_get(
             json_object_get(kafka, "consumer"), "isolation.level"));
        const char *riso = json_string_value(json_object_get(
            json_object_get(kafka, "restorer"), "isolation.level"));
        assert_non_null(ling);
        assert_string_equal(ling, "0");
        assert_non_null(iso);
        assert_string_equal(iso, "read_committed");
        assert_non_null(riso);
        assert_string_equal(riso, "read_committed");
        json_decref(conf);
        assert_true(log_contains(
            in->log, "-X isolation.level=read_uncommitted ignored"));

        json_t *health = get_json(in->endpoint, "/healthz", 200);
        assert_string_equal(json_string_value(json_object_get(health, "state")),
                            "RUNNING");
        json_decref(health);

        produce_values(&e, 5, 1, 40);
        wait_outputs(&e, 200, 60000);
        inst_stop(in);
        char states[64][16];
        size_t n = info_states(&e, "L1", states, 64);
        assert_true(n >= 2);
        assert_string_equal(states[n - 1], ""); /* the tombstone */
        int running = 0;
        for (size_t i = 0; i < n; i++)
                running |= !strcmp(states[i], "RUNNING");
        assert_true(running);

        /* No local state: the restart rebuilds the store from the
         * changelog, RESTORING first, then RUNNING. */
        char cmd[700];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", in->state);
        assert_int_equal(system(cmd), 0);
        size_t before = n;
        in            = inst_start(&e, 0, "L1", NULL, NULL);
        inst_wait_ready(in, 60000);
        int64_t deadline = it_now_ms() + 30000;
        int restoring = -1, running_after = -1;
        while (running_after < 0) {
                n = info_states(&e, "L1", states, 64);
                for (size_t i = before; i < n; i++) {
                        if (!strcmp(states[i], "RESTORING") && restoring < 0)
                                restoring = (int)i;
                        if (!strcmp(states[i], "RUNNING") && restoring >= 0 &&
                            (int)i > restoring)
                                running_after = (int)i;
                }
                if (it_now_ms() > deadline)
                        fail_msg(
                            "no RESTORING then RUNNING published (%zu "
                            "records after the restart)",
                            n - before);
                struct timespec ts = {0, 100 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
        assert_true(key_value(in->endpoint, 0) == 40 * 41 / 2);
        inst_stop(in);
        env_cleanup(&e);
}

static void post_flow(inst_t *in, const char *query) {
        char path[128];
        snprintf(path, sizeof(path), "/test/flow?%s", query);
        int status = it_http("POST", in->endpoint, path, "", NULL);
        if (status != 200)
                fail_msg("POST %s: status %d", path, status);
}

/* Waits until a metric (name with labels) has value @p want. */
static void wait_metric(inst_t *in, const char *name, double want,
                        int timeout_ms) {
        int64_t deadline = it_now_ms() + timeout_ms;
        double v;
        while ((v = metric(in->endpoint, name)) != want) {
                if (it_now_ms() > deadline)
                        fail_msg("%s is %g, expected %g", name, v, want);
                struct timespec ts = {0, 50 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
}

/* The flow-control hooks: a paused input processes nothing (its records
 * wait in Kafka) and resumes without losing or doubling one; a rate limit
 * holds intake to its rate. */
static void test_flow_control(void **state) {
        (void)state;
        env_t e;
        env_init(&e, "flow", 4);
        inst_t *in = inst_start(&e, 0, "F1", NULL, NULL);
        inst_wait_ready(in, 60000);
        produce_values(&e, 2, 1, 10);
        wait_outputs(&e, 20, 60000);

        char paused[300];
        snprintf(paused, sizeof(paused), "kpay_input_paused{topic=\"%s\"}",
                 e.in);
        post_flow(in, "pause=1");
        wait_metric(in, paused, 1, 10000);
        double consumed = metric(in->endpoint, "kpay_records_in_total");
        produce_values(&e, 2, 11, 20);
        /* Nothing may be processed while paused: watch for 3 s (a slow
         * machine can only make the check weaker, never fail it). */
        int64_t until = it_now_ms() + 3000;
        while (it_now_ms() < until) {
                it_rec_t *recs;
                size_t cnt = it_read_all(e.out, "read_committed", &recs);
                it_free_recs(recs, cnt);
                assert_int_equal(cnt, 20);
                struct timespec ts = {0, 200 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
        assert_true(metric(in->endpoint, "kpay_records_in_total") == consumed);
        post_flow(in, "pause=0");
        wait_outputs(&e, 40, 60000);
        check_exactly_once(&e, 2, 20);

        /* 60 records at 20/s (a burst of 2): at least 2.9 s whatever the
         * machine's speed. */
        post_flow(in, "rate=20");
        int64_t t0 = it_now_ms();
        produce_values(&e, 2, 21, 50);
        wait_outputs(&e, 100, 60000);
        int64_t took = it_now_ms() - t0;
        fprintf(stderr, "60 records at 20/s took %" PRId64 " ms\n", took);
        assert_true(took >= 2500);
        char throttled[300];
        snprintf(throttled, sizeof(throttled),
                 "kpay_input_throttled_total{topic=\"%s\"}", e.in);
        assert_true(metric(in->endpoint, throttled) > 0);
        check_exactly_once(&e, 2, 50);
        inst_stop(in);
        env_cleanup(&e);
}

int main(void) {
        /* KPAY_IT_FILTER=test_name runs one test (while developing). */
        if (getenv("KPAY_IT_FILTER"))
                cmocka_set_test_filter(getenv("KPAY_IT_FILTER"));
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_punctuation_and_dead_letters),
            cmocka_unit_test(test_restore_and_http),
            cmocka_unit_test(test_exactly_once_under_sigkill),
            cmocka_unit_test(test_rebalance_and_discovery),
            cmocka_unit_test(test_lifecycle_and_config),
            cmocka_unit_test(test_flow_control),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
