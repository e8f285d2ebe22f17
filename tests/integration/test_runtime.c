/* Integration tests of the runtime (kp_proc) with real processes of
 * kpay-testproc on the real broker of the fixture: exactly once under
 * SIGKILL, restore from the changelog, rebalancing with discovery, the HTTP
 * endpoints, punctuation and dead letters. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
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

/* ------------------------------------------------------------------------ */

/* Waits (at most 60 s) until instance @p in, restarted with @p base outputs
 * committed before it, has committed at least @p commits transactions and
 * still has input it has not even consumed: a kill then hits it mid-work.
 * Returns the input records present at that moment. */
static int64_t wait_mid_work(it_env_t *e, it_inst_t *in, rd_kafka_t *rk,
                             int64_t base, int commits) {
        int64_t deadline = it_now_ms() + 60000;
        for (;;) {
                /* Counters of this process, so "since its restart". */
                double committed = it_metric(
                    in->endpoint, "kpay_transactions_committed_total");
                double consumed =
                    it_metric(in->endpoint, "kpay_records_in_total");
                int64_t in_end = it_topic_end(rk, e->in, e->partitions);
                /* It resumed at the committed offsets, so it has consumed
                 * up to base + consumed (fewer if it reprocessed any). */
                if (committed >= commits && consumed >= 0 &&
                    in_end > base + (int64_t)consumed)
                        return in_end;
                if (it_exited(in->pid)) {
                        it_dump_log(in->log, 40);
                        fail_msg("instance %s exited", in->id);
                }
                if (it_now_ms() > deadline) {
                        it_dump_log(in->log, 40);
                        fail_msg(
                            "no moment mid-work within 60 s: %g of %d "
                            "transactions committed, %g records "
                            "consumed after %" PRId64 ", %" PRId64
                            " in the input",
                            committed, commits, consumed, base, in_end);
                }
                struct timespec ts = {0, 20 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
}

static void test_exactly_once_under_sigkill(void **state) {
        (void)state;
        it_env_t e;
        it_env_init(&e, "eos", 4);
        const int keys = 20, kills = 6;
        srand((unsigned)time(NULL) ^ (unsigned)getpid());
        /* Input keeps arriving however long the kills take. */
        it_feeder_t f;
        it_feeder_start(&f, &e, keys, 10000);
        rd_kafka_t *rk = it_client(RD_KAFKA_PRODUCER, NULL);

        int kills_mid_flight = 0;
        int64_t base         = 0; /* outputs committed before this restart */
        for (int r = 0; r < kills; r++) {
                /* Static membership: the restarted instance takes the dead
                 * one's place at once instead of waiting out its session. */
                it_inst_t *in =
                    it_inst_start(&e, 0, "a", "--static-membership", "true");
                it_inst_wait_ready(in, 60000);
                /* A random moment, after 1 to 5 commits of this process. */
                int commits    = 1 + rand() % 5;
                int64_t in_end = wait_mid_work(&e, in, rk, base, commits);
                it_inst_kill(in);
                it_rec_t *recs;
                size_t cnt = it_read_all(e.out, "read_committed", &recs);
                it_free_recs(recs, cnt);
                /* Proof, after the fact: it had committed output since its
                 * restart, and input that was there before the kill has no
                 * committed output. */
                int mid = (int64_t)cnt > base && (int64_t)cnt < in_end;
                kills_mid_flight += mid;
                fprintf(stderr,
                        "kill %d: SIGKILL after %d commits with %zu outputs "
                        "committed (%" PRId64 " before the restart), %" PRId64
                        " input records present%s\n",
                        r, commits, cnt, base, in_end,
                        mid ? "" : ": NOT mid-work");
                base = (int64_t)cnt;
        }
        rd_kafka_destroy(rk);
        const int values = it_feeder_stop(&f);
        /* The survivor finishes the work. */
        it_inst_t *in =
            it_inst_start(&e, 0, "a", "--static-membership", "true");
        it_inst_wait_ready(in, 60000);
        it_wait_outputs(&e, (size_t)keys * values, 180000);
        for (int k = 0; k < keys; k++)
                assert_int_equal(it_key_value(in->endpoint, k),
                                 (int64_t)values * (values + 1) / 2);
        it_inst_stop(in);
        it_check_exactly_once(&e, keys, values);
        fprintf(stderr, "%d of %d kills hit a processor with work in flight\n",
                kills_mid_flight, kills);
        /* Every kill interrupted processing, or the test proved less about
         * crashes than it claims. */
        assert_int_equal(kills_mid_flight, kills);
        it_env_cleanup(&e);
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
        json_t *items    = it_store_scan(endpoint, "sums", page);
        json_t *all      = json_object(), *it;
        const char *prev = NULL;
        size_t i;
        json_array_foreach(items, i, it) {
                const char *k = json_string_value(json_object_get(it, "key"));
                assert_non_null(k);
                /* Keys come in order, each once (each key of "sums" lives on
                 * one partition). */
                if (prev)
                        assert_true(strcmp(k, prev) > 0);
                assert_null(json_object_get(all, k));
                json_object_set(all, k, json_object_get(it, "value"));
                prev = k;
        }
        json_decref(items);
        return all;
}

static void test_restore_and_http(void **state) {
        (void)state;
        it_env_t e;
        it_env_init(&e, "restore", 4);
        const int keys = 50;
        it_produce_values(&e, keys, 1, 20);
        it_inst_t *in = it_inst_start(&e, 0, "r", NULL, NULL);
        it_inst_wait_ready(in, 60000);
        it_wait_outputs(&e, (size_t)keys * 20, 60000);

        /* The HTTP endpoints, well-formed and not. */
        json_t *j = it_get_json(in->endpoint, "/healthz", 200);
        assert_string_equal(json_string_value(json_object_get(j, "status")),
                            "ok");
        json_decref(j);
        j = it_get_json(in->endpoint, "/readyz", 200);
        json_decref(j);
        j           = it_get_json(in->endpoint, "/v1/stores", 200);
        json_t *st0 = json_array_get(json_object_get(j, "stores"), 0);
        assert_string_equal(json_string_value(json_object_get(st0, "name")),
                            "sums");
        assert_int_equal(json_array_size(json_object_get(st0, "partitions")),
                         4);
        assert_int_equal(
            json_integer_value(json_object_get(j, "partition_count")), 4);
        json_decref(j);
        assert_int_equal(it_key_value(in->endpoint, 7), 210);
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
        assert_true(it_metric(in->endpoint, "kpay_records_in_total") ==
                    keys * 20);

        json_t *before = scan_all(in->endpoint, 7);
        assert_int_equal(json_object_size(before), keys);
        it_inst_stop(in);
        char old[600];
        snprintf(old, sizeof(old), "%s/r-old", e.root);
        copy_dir(in->state, old);

        /* No local state: rebuilt from the changelog, record for record. */
        it_rec_t *recs;
        size_t changelog_cnt =
            it_read_all(e.changelog, "read_committed", &recs);
        it_free_recs(recs, changelog_cnt);
        remove_dir(in->state);
        in = it_inst_start(&e, 0, "r", NULL, NULL);
        it_inst_wait_ready(in, 60000);
        json_t *after = scan_all(in->endpoint, 1000);
        assert_true(json_equal(before, after));
        json_decref(after);
        assert_true(it_metric(in->endpoint, "kpay_restore_records_total") ==
                    (double)changelog_cnt);
        it_inst_stop(in);

        /* Local state kept after a clean stop: nothing to replay. */
        size_t changelog_before =
            it_read_all(e.changelog, "read_committed", &recs);
        it_free_recs(recs, changelog_before);
        it_produce_values(&e, keys, 21, 26);
        in = it_inst_start(&e, 0, "r", NULL, NULL);
        it_inst_wait_ready(in, 60000);
        assert_true(it_metric(in->endpoint, "kpay_restore_records_total") == 0);
        it_wait_outputs(&e, (size_t)keys * 26, 60000);
        it_inst_stop(in);
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
        in = it_inst_start(&e, 0, "r", NULL, NULL);
        it_inst_wait_ready(in, 60000);
        assert_true(it_metric(in->endpoint, "kpay_restore_records_total") ==
                    (double)(changelog_after - changelog_before));
        for (int k = 0; k < keys; k++)
                assert_int_equal(it_key_value(in->endpoint, k), 26 * 27 / 2);
        it_inst_stop(in);
        json_decref(before);
        it_check_exactly_once(&e, keys, 26);
        it_env_cleanup(&e);
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
        it_env_t e;
        it_env_init(&e, "rebal", 6);
        const int keys = 60;
        it_inst_t *a   = it_inst_start(&e, 0, "a", NULL, NULL);
        it_inst_t *b   = it_inst_start(&e, 1, "b", NULL, NULL);
        it_inst_wait_ready(a, 60000);
        it_inst_wait_ready(b, 60000);
        it_produce_values(&e, keys, 1, 10);
        it_wait_outputs(&e, (size_t)keys * 10, 60000);

        it_inst_t *c = it_inst_start(&e, 2, "c", NULL, NULL);
        it_inst_wait_ready(c, 60000);
        it_produce_values(&e, keys, 11, 20);
        it_wait_outputs(&e, (size_t)keys * 20, 60000);

        it_inst_stop(a);
        it_produce_values(&e, keys, 21, 30);
        it_wait_outputs(&e, (size_t)keys * 30, 60000);

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
                json_t *j = it_get_json(owner.endpoint, path, 200);
                assert_int_equal(
                    json_integer_value(json_object_get(j, "value")), 465);
                assert_int_equal(
                    json_integer_value(json_object_get(j, "partition")), part);
                json_decref(j);
                /* The other instance does not serve it. */
                const char *other =
                    !strcmp(owner.instance, "b") ? c->endpoint : b->endpoint;
                j = it_get_json(other, path, 404);
                assert_string_equal(
                    json_string_value(json_object_get(j, "error")),
                    "not_owned");
                json_decref(j);
                kp_instance_info_clear(&owner);
        }
        it_inst_stop(b);
        it_inst_stop(c);
        kp_discovery_destroy(d);
        it_check_exactly_once(&e, keys, 30);
        it_env_cleanup(&e);
}

static void test_punctuation_and_dead_letters(void **state) {
        (void)state;
        it_env_t e;
        it_env_init(&e, "punct", 4);
        it_inst_t *in = it_inst_start(&e, 0, "p", "--punctuate-ms", "200");
        it_inst_wait_ready(in, 60000);
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
        it_wait_outputs(&e, 1, 30000);
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
        assert_true(
            it_metric(in->endpoint, "kpay_records_dead_lettered_total") == 1);
        it_inst_stop(in);
        it_env_cleanup(&e);
}

/* The InstanceInfo records of instance @p id on kpay.metadata, in order:
 * each state ("" for a tombstone) into @p states. Returns the count. */
static size_t info_states(it_env_t *e, const char *id, char states[][16],
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
        it_env_t e;
        it_env_init(&e, "lifecycle", 4);
        const char *x[] = {"-X", "linger.ms=0", "-X",
                           "isolation.level=read_uncommitted", NULL};
        it_inst_t *in   = it_inst_start_v(&e, 0, "L1", x);
        it_inst_wait_ready(in, 60000);

        json_t *conf  = it_get_json(in->endpoint, "/v1/config", 200);
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

        json_t *health = it_get_json(in->endpoint, "/healthz", 200);
        assert_string_equal(json_string_value(json_object_get(health, "state")),
                            "RUNNING");
        json_decref(health);

        it_produce_values(&e, 5, 1, 40);
        it_wait_outputs(&e, 200, 60000);
        it_inst_stop(in);
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
        in            = it_inst_start(&e, 0, "L1", NULL, NULL);
        it_inst_wait_ready(in, 60000);
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
        assert_true(it_key_value(in->endpoint, 0) == 40 * 41 / 2);
        it_inst_stop(in);
        it_env_cleanup(&e);
}

static void post_flow(it_inst_t *in, const char *query) {
        char path[128];
        snprintf(path, sizeof(path), "/test/flow?%s", query);
        int status = it_http("POST", in->endpoint, path, "", NULL);
        if (status != 200)
                fail_msg("POST %s: status %d", path, status);
}

/* The flow-control hooks: a paused input processes nothing (its records
 * wait in Kafka) and resumes without losing or doubling one; a rate limit
 * holds intake to its rate. */
static void test_flow_control(void **state) {
        (void)state;
        it_env_t e;
        it_env_init(&e, "flow", 4);
        it_inst_t *in = it_inst_start(&e, 0, "F1", NULL, NULL);
        it_inst_wait_ready(in, 60000);
        it_produce_values(&e, 2, 1, 10);
        it_wait_outputs(&e, 20, 60000);

        char paused[300];
        snprintf(paused, sizeof(paused), "kpay_input_paused{topic=\"%s\"}",
                 e.in);
        post_flow(in, "pause=1");
        it_wait_metric(in, paused, 1, 10000);
        double consumed = it_metric(in->endpoint, "kpay_records_in_total");
        it_produce_values(&e, 2, 11, 20);
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
        assert_true(it_metric(in->endpoint, "kpay_records_in_total") ==
                    consumed);
        post_flow(in, "pause=0");
        it_wait_outputs(&e, 40, 60000);
        it_check_exactly_once(&e, 2, 20);

        /* 80 records at 20/s, with a burst of 5 (a quarter second) and at
         * most one record of debt: at least 3.7 s, whatever the machine's
         * speed. */
        post_flow(in, "rate=20");
        int64_t t0 = it_now_ms();
        it_produce_values(&e, 2, 21, 60);
        it_wait_outputs(&e, 120, 60000);
        int64_t took = it_now_ms() - t0;
        fprintf(stderr, "80 records at 20/s took %" PRId64 " ms\n", took);
        assert_true(took >= 3000);
        char throttled[300];
        snprintf(throttled, sizeof(throttled),
                 "kpay_input_throttled_total{topic=\"%s\"}", e.in);
        assert_true(it_metric(in->endpoint, throttled) > 0);
        it_check_exactly_once(&e, 2, 60);
        post_flow(in, "rate=0");

        /* A partition that leaves while its input is paused and comes back
         * after the resume must flow again (librdkafka keeps a partition's
         * pause flag across an unassignment). */
        post_flow(in, "pause=1");
        it_wait_metric(in, paused, 1, 10000);
        it_inst_t *other = it_inst_start(&e, 1, "F2", NULL, NULL);
        it_inst_wait_ready(other, 60000);
        it_wait_metric(other, "kpay_assigned_partitions", 1, 60000);
        int64_t deadline = it_now_ms() + 60000;
        while (it_metric(in->endpoint, "kpay_assigned_partitions") >= 4) {
                if (it_now_ms() > deadline)
                        fail_msg("F1 kept all 4 partitions with F2 in");
                struct timespec ts = {0, 100 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
        post_flow(in, "pause=0");
        it_inst_stop(other);
        it_wait_metric(in, "kpay_assigned_partitions", 4, 60000);
        it_produce_values(&e, 2, 61, 70);
        it_wait_outputs(&e, 140, 60000);
        it_check_exactly_once(&e, 2, 70);
        it_inst_stop(in);
        it_env_cleanup(&e);
}

/* Issue 13, defect 8: the store scan's cursor identifies (partition, key).
 * kpay-confirmed keeps its totals under key "all" on every partition; with
 * 12 partitions and pages of 5, a key-only cursor ("next": "all") skipped
 * partitions 5-11 of "all". Every page is followed through "next". */
static void test_store_scan_cursor(void **state) {
        (void)state;
        enum { PARTS = 12 };
        char prefix[64], root[256], complete[256];
        it_unique_prefix(prefix, sizeof(prefix), "scan");
        snprintf(root, sizeof(root), "/tmp/kpay-it-scan-XXXXXX");
        assert_non_null(mkdtemp(root));
        assert_int_equal(it_admin_topics(prefix, PARTS), 0);
        it_daemon_t d;
        it_daemon_init(&d, "KPAY_CONFIRMED_BIN", root, "confirmed-1");
        const char *extra[] = {"--state-dir", d.state, "--partitions", "12",
                               NULL};
        it_daemon_spawn(&d, prefix, extra);
        it_daemon_wait_ready(&d, 120000);

        /* One COMPLETE outcome on each partition: "all" on each. */
        kp_topic_name(complete, sizeof(complete), prefix, KP_TOPIC_COMPLETE);
        rd_kafka_t *rk = it_producer();
        for (int p = 0; p < PARTS; p++) {
                char id[32], val[300];
                snprintf(id, sizeof(id), "scan-%d", p);
                snprintf(val, sizeof(val),
                         "{\"v\":1,\"id\":\"%s\",\"from\":\"a\","
                         "\"to\":\"b\",\"amount\":100,\"currency\":"
                         "\"USD\",\"state\":\"COMPLETE\"}",
                         id);
                it_produce(rk, complete, p, id, val);
        }
        it_producer_close(rk);
        it_inst_t view = {.pid = d.pid};
        snprintf(view.endpoint, sizeof(view.endpoint), "%s", d.endpoint);
        snprintf(view.log, sizeof(view.log), "%s", d.log);
        it_wait_metric(&view, "kpay_records_in_total", PARTS, 120000);
        /* The stores are read after the commit: wait until the last key is
         * visible before paging. */
        int64_t deadline = it_now_ms() + 60000;
        json_t *items;
        int seen[PARTS];
        for (;;) {
                memset(seen, 0, sizeof(seen));
                items = it_store_scan(d.endpoint, "totals", 5);
                size_t i;
                json_t *it;
                int all = 0;
                json_array_foreach(items, i, it) {
                        const char *k =
                            json_string_value(json_object_get(it, "key"));
                        json_int_t p = json_integer_value(
                            json_object_get(it, "partition"));
                        assert_non_null(k);
                        assert_true(p >= 0 && p < PARTS);
                        if (!strcmp(k, "all")) {
                                /* Each (key, partition) once. */
                                assert_int_equal(seen[p], 0);
                                seen[p] = 1;
                                all++;
                        }
                }
                json_decref(items);
                if (all == PARTS)
                        break;
                if (it_now_ms() > deadline)
                        fail_msg(
                            "the scan returned \"all\" on %d of %d "
                            "partitions",
                            all, PARTS);
                struct timespec ts = {0, 200 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
        /* A bare key is not a cursor: a clear error, not a wrong page. */
        char *body = NULL;
        assert_int_equal(
            it_http_get(d.endpoint, "/v1/stores/totals?after=all&limit=5",
                        &body),
            400);
        assert_non_null(strstr(body, "cursor"));
        free(body);
        /* A page ends inside the run of "all": the cursor names the item. */
        json_t *page =
            it_get_json(d.endpoint, "/v1/stores/totals?limit=5", 200);
        assert_string_equal(json_string_value(json_object_get(page, "next")),
                            "4:all");
        json_decref(page);
        page          = it_get_json(d.endpoint,
                                    "/v1/stores/totals?limit=5&after=4%3Aall", 200);
        json_t *first = json_array_get(json_object_get(page, "items"), 0);
        assert_string_equal(json_string_value(json_object_get(first, "key")),
                            "all");
        assert_int_equal(
            json_integer_value(json_object_get(first, "partition")), 5);
        json_decref(page);
        it_daemon_t *all[] = {&d};
        it_daemons_teardown(all, 1, root);
}

/* Adaptive commits (docs/runtime.md, "Exactly once"): with a cap of ten
 * minutes, records are committed as soon as the input is drained; with a
 * minimum interval of ten minutes too, only the record cap commits, at
 * exactly every --commit-max-records records. No pass condition on
 * machine speed: the deadlines are far below ten minutes and far above
 * any commit's time. */
static void test_adaptive_commits(void **state) {
        (void)state;
        it_env_t e;
        it_env_init(&e, "adapt", 4);
        const char *drained[] = {"--commit-interval-ms", "600000", NULL};
        it_inst_t *in         = it_inst_start_v(&e, 0, "A1", drained);
        it_inst_wait_ready(in, 60000);
        it_produce_values(&e, 2, 1, 10);
        it_wait_outputs(&e, 20, 60000);
        it_produce_values(&e, 2, 11, 15);
        it_wait_outputs(&e, 30, 60000);
        assert_true(
            it_metric(in->endpoint, "kpay_transactions_committed_total") >= 2);
        it_inst_stop(in);
        it_check_exactly_once(&e, 2, 15);

        /* The record cap: 12 records, a cap of 5. */
        const char *capped[] = {"--commit-interval-ms",
                                "600000",
                                "--commit-min-interval-ms",
                                "600000",
                                "--commit-max-records",
                                "5",
                                NULL};
        in                   = it_inst_start_v(&e, 0, "A2", capped);
        it_inst_wait_ready(in, 60000);
        double before =
            it_metric(in->endpoint, "kpay_transactions_committed_total");
        it_produce_values(&e, 2, 16, 21);
        /* The outputs of 10 records (two transactions of 5); the last two
         * stay uncommitted, since neither cap is reached for them. */
        it_wait_outputs(&e, 40, 60000);
        it_rec_t *recs;
        size_t cnt = it_read_all(e.out, "read_committed", &recs);
        it_free_recs(recs, cnt);
        assert_int_equal(cnt, 40);
        assert_true(
            it_metric(in->endpoint, "kpay_transactions_committed_total") -
                before ==
            2);
        /* A clean stop commits the rest. */
        it_inst_stop(in);
        it_wait_outputs(&e, 42, 60000);
        it_check_exactly_once(&e, 2, 21);
        it_env_cleanup(&e);
}

/* ------------------------------------------------------------------------
 * Restores in the background (docs/runtime.md, "Restore"). */

/* A bit set of partitions (at most 32) from a JSON array of them. */
static uint32_t partition_set(const json_t *arr) {
        uint32_t set = 0;
        size_t i;
        json_t *v;
        json_array_foreach(arr, i, v) set |= 1u << json_integer_value(v);
        return set;
}

/* /readyz of @p in: its status, and the partitions it lists as still
 * restoring in *restoringp. */
static int readyz(const it_inst_t *in, uint32_t *restoringp) {
        char *body  = NULL;
        int status  = it_http_get(in->endpoint, "/readyz", &body);
        json_t *j   = body ? json_loads(body, 0, NULL) : NULL;
        *restoringp = partition_set(json_object_get(j, "restoring"));
        json_decref(j);
        free(body);
        return status;
}

/* Waits (at most 60 s) until /readyz of @p in answers 503 listing as
 * restoring exactly @p want (@p subset: some of @p want, not nothing);
 * returns the partitions listed. */
static uint32_t wait_restoring_v(const it_inst_t *in, uint32_t want,
                                 int subset) {
        int64_t deadline = it_now_ms() + 60000;
        for (;;) {
                uint32_t got = 0;
                int status   = readyz(in, &got);
                if (status == 503 &&
                    (subset ? got && !(got & ~want) : got == want))
                        return got;
                if (it_exited(in->pid) || it_now_ms() > deadline) {
                        it_dump_log(in->log, 40);
                        fail_msg(
                            "%s: /readyz %d restoring 0x%x, expected 503 "
                            "restoring %s0x%x",
                            in->id, status, got, subset ? "some of " : "",
                            want);
                }
                struct timespec ts = {0, 50 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
}

static void wait_restoring(const it_inst_t *in, uint32_t want) {
        wait_restoring_v(in, want, 0);
}

/* The partitions @p in processes (ready ones), from /v1/stores. */
static uint32_t ready_set(const it_inst_t *in) {
        json_t *j    = it_get_json(in->endpoint, "/v1/stores", 200);
        uint32_t set = partition_set(json_object_get(
            json_array_get(json_object_get(j, "stores"), 0), "partitions"));
        json_decref(j);
        return set;
}

/* Waits (at most 60 s) until @p a and @p b together process every one of
 * @p partitions once, each some (@p b NULL: @p a processes @p a_cnt). */
static void wait_split(const it_inst_t *a, const it_inst_t *b, int partitions,
                       int a_cnt, uint32_t *a_setp, uint32_t *b_setp) {
        int64_t deadline = it_now_ms() + 60000;
        uint32_t all     = (1u << partitions) - 1;
        for (;;) {
                uint32_t sa = ready_set(a), sb = b ? ready_set(b) : 0;
                if (b ? (sa | sb) == all && !(sa & sb) && sa && sb
                      : __builtin_popcount(sa) == a_cnt) {
                        *a_setp = sa;
                        if (b_setp)
                                *b_setp = sb;
                        return;
                }
                if (it_now_ms() > deadline)
                        fail_msg("partitions not split: 0x%x 0x%x", sa, sb);
                struct timespec ts = {0, 100 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
}

/* Committed outputs of test.out on the partitions in @p set; the keys seen
 * there in *keysp (as bits of k<n>, n < 64) when not NULL. */
static size_t outputs_on(it_env_t *e, uint32_t set, uint64_t *keysp) {
        it_rec_t *recs;
        size_t cnt = it_read_all(e->out, "read_committed", &recs), n = 0;
        for (size_t i = 0; i < cnt; i++) {
                if (!(set & (1u << recs[i].partition)))
                        continue;
                n++;
                int k = -1;
                if (keysp && sscanf(recs[i].key, "k%d", &k) == 1 && k >= 0 &&
                    k < 64)
                        *keysp |= 1ull << k;
        }
        it_free_recs(recs, cnt);
        return n;
}

/* Waits (at most 60 s) until the partitions in @p set hold @p n committed
 * outputs. */
static void wait_outputs_on(it_env_t *e, uint32_t set, size_t n) {
        int64_t deadline = it_now_ms() + 60000;
        size_t got;
        while ((got = outputs_on(e, set, NULL)) < n) {
                if (it_now_ms() > deadline)
                        fail_msg("partitions 0x%x: %zu of %zu outputs", set,
                                 got, n);
                struct timespec ts = {0, 100 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
}

static int popcount(uint64_t v) {
        return __builtin_popcountll(v);
}

/* A changelog as large as a restore must take a while at the rate limit of
 * the slow instance: @p n records of keys no input has, per partition. */
static void pad_changelog(it_env_t *e, int n) {
        rd_kafka_t *rk = it_producer();
        for (int32_t p = 0; p < e->partitions; p++)
                for (int i = 0; i < n; i++) {
                        char key[32];
                        snprintf(key, sizeof(key), "pad%d.%d", (int)p, i);
                        it_produce(rk, e->changelog, p, key, "0");
                }
        it_producer_close(rk);
}

/* A newly assigned partition restores while the partitions the instance
 * had keep being processed; /readyz, the metrics and the key queries say
 * which are restoring; a partition revoked while restoring stops restoring
 * and is processed by its new owner, never twice; an instance stopped in
 * the middle of a restore exits cleanly and its restart finishes it. The
 * slow instance restores at most 40 records/s (--restore-max-rate), so
 * that its restores outlast every check on any machine; it is replaced by
 * an unlimited one once the checks are done. */
static void test_background_restore(void **state) {
        (void)state;
        it_env_t e;
        it_env_init(&e, "bgrestore", 4);
        const int keys = 40, pads = 2500;
        /* Slow enough that each restore outlasts every wait below by far
         * on a busy machine (the waits are for other things). */
        const char *const slow[] = {"--restore-max-rate", "40", NULL};
        it_inst_t *a             = it_inst_start_v(&e, 0, "a", slow);
        it_inst_t *b             = it_inst_start(&e, 1, "b", NULL, NULL);
        it_inst_wait_ready(a, 60000);
        it_inst_wait_ready(b, 60000);
        it_produce_values(&e, keys, 1, 5);
        it_wait_outputs(&e, (size_t)keys * 5, 60000);
        uint32_t a_set, b_set;
        wait_split(a, b, 4, 0, &a_set, &b_set);
        uint64_t a_keys = 0, b_keys = 0;
        outputs_on(&e, a_set, &a_keys);
        outputs_on(&e, b_set, &b_keys);
        assert_int_equal(popcount(a_keys) + popcount(b_keys), keys);

        /* b leaves: a takes its partitions, with no local state for them
         * and 2 x 2500 records to replay (>= 125 s at 40/s). */
        pad_changelog(&e, pads);
        it_inst_stop(b);
        wait_restoring(a, b_set);
        it_produce_values(&e, keys, 6, 10);
        /* a's own partitions are processed and committed meanwhile... */
        wait_outputs_on(&e, a_set, (size_t)popcount(a_keys) * 10);
        uint32_t restoring;
        assert_int_equal(readyz(a, &restoring), 503);
        assert_int_equal(restoring, b_set);
        assert_true(it_metric(a->endpoint, "kpay_restoring_partitions") == 2);
        assert_true(it_metric(a->endpoint, "kpay_restore_remaining_records") >
                    0);
        /* ...while nothing of the restoring ones is (b had done 1..5). */
        assert_int_equal(outputs_on(&e, b_set, NULL),
                         (size_t)popcount(b_keys) * 5);
        for (int k = 0; k < keys; k++) {
                if (!(b_keys & (1ull << k)))
                        continue;
                char path[64];
                snprintf(path, sizeof(path), "/v1/stores/sums/keys/k%d", k);
                json_t *j = it_get_json(a->endpoint, path, 503);
                assert_string_equal(
                    json_string_value(json_object_get(j, "error")),
                    "restoring");
                json_decref(j);
                break;
        }

        /* Stopped mid-restore: a clean exit. Started again with no local
         * state at all: every partition restores (>= 250 s at 40/s); c
         * joins meanwhile and takes partitions that were restoring on a,
         * which stops restoring them. */
        it_inst_stop(a);
        remove_dir(a->state);
        a = it_inst_start_v(&e, 0, "a", slow);
        wait_restoring(a, 0xf);
        it_inst_t *c = it_inst_start(&e, 2, "c", NULL, NULL);
        /* Ready at its first (empty) assignment: then the partitions. */
        it_inst_wait_ready(c, 60000);
        uint32_t c_set;
        wait_split(c, NULL, 4, 2, &c_set, NULL);
        /* (A partition of a may be done by now, not all.) */
        wait_restoring_v(a, 0xf & ~c_set, 1);
        it_produce_values(&e, keys, 11, 15);
        /* c processes its two; a still restores the other two. */
        uint64_t c_keys = 0;
        outputs_on(&e, c_set, &c_keys);
        wait_outputs_on(&e, c_set, (size_t)popcount(c_keys) * 15);
        wait_restoring_v(a, 0xf & ~c_set, 1);

        /* a, stopped mid-restore again, restarts without the limit and
         * finishes: every value exactly once, with exact sums. */
        it_inst_stop(a);
        a = it_inst_start(&e, 0, "a", NULL, NULL);
        it_inst_wait_ready(a, 120000);
        it_wait_outputs(&e, (size_t)keys * 15, 60000);
        assert_true(it_metric(a->endpoint, "kpay_restoring_partitions") == 0);
        it_inst_stop(a);
        it_inst_stop(c);
        it_check_exactly_once(&e, keys, 15);
        it_env_cleanup(&e);
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
            cmocka_unit_test(test_store_scan_cursor),
            cmocka_unit_test(test_adaptive_commits),
            cmocka_unit_test(test_background_restore),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
