/* kpay-bench-runtime: the runtime's throughput beside the broker's own.
 *
 * On one broker, in one run:
 *  1. raw: a producer sends N records of the given size to a fresh topic
 *     while a read_committed consumer reads them; rate = N / (time from the
 *     first send to the last record read).
 *  2. runtime: N records of the same size are loaded into test.in first;
 *     then kpay-testproc (exactly once, the given commit interval) is
 *     started and its committed outputs on test.out are counted; rate =
 *     N / (time from its first output to its last).
 * Prints both and their ratio as one JSON line on stdout. (Per input the
 * processor writes one output, plus one changelog record per key and
 * transaction.) Not a test: run it with bench/runtime.sh.
 *
 * With --restore: N records of N distinct keys are written to the
 * changelog of kpay-testproc's store "sums" (no input), then kpay-testproc
 * starts with no local state and restores them; the rate is the daemon's
 * own "restored R changelog records in M ms" line (from the restore's
 * start to its end), and the time from exec to that line is reported
 * too. Run it with bench/restore.sh. */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "kpay/kp_admin.h"
#include "kpay/kp_conf.h"
#include "kpay/kp_topics.h"

static const char *bootstrap = "127.0.0.1:29092";
static int64_t n_records     = 200000;
static int value_size        = 200;
static int partitions        = 12;
static int keys              = 10000;
static const char *commit_ms = "100";

static int64_t now_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static rd_kafka_t *client(rd_kafka_type_t type, const char *const *props) {
        char errstr[512];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr,
                              sizeof(errstr)))
                goto fail;
        for (; props && *props; props += 2)
                if (rd_kafka_conf_set(conf, props[0], props[1], errstr,
                                      sizeof(errstr)))
                        goto fail;
        rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
        if (rk)
                return rk;
fail:
        fprintf(stderr, "bench: %s\n", errstr);
        exit(1);
}

static void create_topics(const char *const *names, int compact) {
        char errstr[512];
        rd_kafka_t *rk       = client(RD_KAFKA_PRODUCER, NULL);
        kp_topic_plan_t plan = {0};
        for (; *names; names++)
                kp_topic_plan_add(&plan, *names, partitions, 1,
                                  compact ? "compact" : "delete", NULL);
        if (kp_admin_ensure_topics(rk, &plan, 30000, NULL, errstr,
                                   sizeof(errstr))) {
                fprintf(stderr, "bench: %s\n", errstr);
                exit(1);
        }
        kp_topic_plan_clear(&plan);
        rd_kafka_destroy(rk);
}

static rd_kafka_t *producer(void) {
        static const char *const props[] = {"enable.idempotence",
                                            "true",
                                            "linger.ms",
                                            "5",
                                            "partitioner",
                                            "murmur2_random",
                                            "queue.buffering.max.messages",
                                            "1000000",
                                            NULL};
        return client(RD_KAFKA_PRODUCER, props);
}

/* Produces record i: key "key-<i % keys>", value "1|" + padding to size. */
static void produce(rd_kafka_t *rk, const char *topic, int64_t i, char *value) {
        char key[32];
        int klen = snprintf(key, sizeof(key), "key-%" PRId64, i % keys);
        for (;;) {
                rd_kafka_resp_err_t err = rd_kafka_producev(
                    rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, klen),
                    RD_KAFKA_V_VALUE(value, (size_t)value_size),
                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
                if (!err)
                        return;
                if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                        fprintf(stderr, "bench: produce: %s\n",
                                rd_kafka_err2str(err));
                        exit(1);
                }
                rd_kafka_poll(rk, 10);
        }
}

static void producer_close(rd_kafka_t *rk) {
        if (rd_kafka_flush(rk, 120000) || rd_kafka_outq_len(rk)) {
                fprintf(stderr, "bench: records left undelivered\n");
                exit(1);
        }
        rd_kafka_destroy(rk);
}

/* A read_committed consumer assigned to every partition of @p topic. */
static rd_kafka_t *reader(const char *topic, const char *group) {
        const char *const props[] = {"group.id",
                                     group,
                                     "isolation.level",
                                     "read_committed",
                                     "enable.auto.commit",
                                     "false",
                                     "fetch.wait.max.ms",
                                     "10",
                                     NULL};
        rd_kafka_t *rk            = client(RD_KAFKA_CONSUMER, props);
        rd_kafka_topic_partition_list_t *list =
            rd_kafka_topic_partition_list_new(partitions);
        for (int p = 0; p < partitions; p++)
                rd_kafka_topic_partition_list_add(list, topic, p)->offset =
                    RD_KAFKA_OFFSET_BEGINNING;
        if (rd_kafka_assign(rk, list)) {
                fprintf(stderr, "bench: assign %s failed\n", topic);
                exit(1);
        }
        rd_kafka_topic_partition_list_destroy(list);
        return rk;
}

/* Reads until @p n records have arrived; returns the time of the first and
 * the last (us), or exits after @p timeout_s. */
static void read_n(rd_kafka_t *rk, int64_t n, int timeout_s, int64_t *firstp,
                   int64_t *lastp) {
        int64_t got = 0, deadline = now_us() + (int64_t)timeout_s * 1000000;
        *firstp = 0;
        while (got < n) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
                if (now_us() > deadline) {
                        fprintf(stderr,
                                "bench: only %" PRId64 " of %" PRId64
                                " records within %d s\n",
                                got, n, timeout_s);
                        exit(1);
                }
                if (!m)
                        continue;
                if (!m->err) {
                        if (!got)
                                *firstp = now_us();
                        got++;
                }
                rd_kafka_message_destroy(m);
        }
        *lastp = now_us();
}

/* --count-topics PREFIX: every topic whose name starts with PREFIX, read
 * whole (read_committed) from its first offset to its end: the records, the
 * bytes of their keys, values and headers, and the offsets the partitions
 * span (records + transaction markers + aborted records). One JSON line:
 * {"topics":{"<name without the prefix>":{"records","bytes","offsets"}}}.
 * What a run wrote by topic, changelogs included (bench/e2e.sh). */
static int count_topics(const char *prefix) {
        rd_kafka_t *rk =
            client(RD_KAFKA_CONSUMER,
                   (const char *const[]){"group.id", "kpay-bench-count",
                                         "isolation.level", "read_committed",
                                         "enable.auto.commit", "false", NULL});
        const struct rd_kafka_metadata *md;
        if (rd_kafka_metadata(rk, 1, NULL, &md, 30000)) {
                fprintf(stderr, "bench: cannot list topics\n");
                return 1;
        }
        size_t plen  = strlen(prefix);
        int tcnt     = 0;
        char **names = calloc((size_t)md->topic_cnt + 1, sizeof(*names));
        int64_t(*tot)[3] =
            calloc((size_t)md->topic_cnt + 1, sizeof(*tot)); /* rec, B, off */
        int64_t *ends = NULL;
        rd_kafka_topic_partition_list_t *list =
            rd_kafka_topic_partition_list_new(64);
        for (int i = 0; i < md->topic_cnt; i++) {
                const struct rd_kafka_metadata_topic *t = &md->topics[i];
                if (strncmp(t->topic, prefix, plen))
                        continue;
                names[tcnt] = strdup(t->topic);
                for (int p = 0; p < t->partition_cnt; p++) {
                        int64_t lo, hi;
                        if (rd_kafka_query_watermark_offsets(
                                rk, t->topic, t->partitions[p].id, &lo, &hi,
                                10000)) {
                                fprintf(stderr, "bench: offsets of %s failed\n",
                                        t->topic);
                                return 1;
                        }
                        tot[tcnt][2] += hi - lo;
                        if (hi <= lo)
                                continue;
                        rd_kafka_topic_partition_list_add(list, t->topic,
                                                          t->partitions[p].id)
                            ->offset = lo;
                        ends = realloc(ends, sizeof(*ends) * (size_t)list->cnt);
                        ends[list->cnt - 1] = hi;
                }
                tcnt++;
        }
        rd_kafka_metadata_destroy(md);
        if (list->cnt && rd_kafka_assign(rk, list)) {
                fprintf(stderr, "bench: assign failed\n");
                return 1;
        }
        int64_t deadline = now_us() + 600 * INT64_C(1000000);
        int64_t seen     = 0;
        for (int left = list->cnt; left > 0;) {
                if (now_us() > deadline) {
                        fprintf(stderr, "bench: counting timed out\n");
                        return 1;
                }
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
                if (m && !m->err) {
                        const char *tn = rd_kafka_topic_name(m->rkt);
                        int k;
                        for (k = 0; k < tcnt && strcmp(names[k], tn); k++)
                                ;
                        int64_t b = (int64_t)(m->key_len + m->len);
                        rd_kafka_headers_t *h;
                        if (!rd_kafka_message_headers(m, &h)) {
                                const char *hn;
                                const void *hv;
                                size_t hs;
                                for (size_t j = 0; !rd_kafka_header_get_all(
                                         h, j, &hn, &hv, &hs);
                                     j++)
                                        b += (int64_t)(strlen(hn) + hs);
                        }
                        if (k < tcnt) {
                                tot[k][0]++;
                                tot[k][1] += b;
                        }
                }
                if (m)
                        rd_kafka_message_destroy(m);
                if (m && (++seen & 4095))
                        continue; /* check the ends now and then */
                rd_kafka_position(rk, list);
                left = 0;
                for (int i = 0; i < list->cnt; i++)
                        if (list->elems[i].offset < ends[i])
                                left++;
        }
        printf("{\"topics\":{");
        for (int k = 0; k < tcnt; k++)
                printf("%s\"%s\":{\"records\":%" PRId64 ",\"bytes\":%" PRId64
                       ",\"offsets\":%" PRId64 "}",
                       k ? "," : "", names[k] + plen, tot[k][0], tot[k][1],
                       tot[k][2]);
        printf("}}\n");
        rd_kafka_topic_partition_list_destroy(list);
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        for (int k = 0; k < tcnt; k++)
                free(names[k]);
        free(names);
        free(tot);
        free(ends);
        return 0;
}

/* Waits (at most 900 s) for the line "restored R changelog records in M
 * ms" in @p log; fills *recordsp and *msp. @returns 0, or -1. */
static int wait_restored(const char *log, pid_t pid, int64_t *recordsp,
                         int64_t *msp) {
        for (int i = 0; i < 9000; i++) {
                FILE *f = fopen(log, "r");
                char line[2048];
                while (f && fgets(line, sizeof(line), f)) {
                        const char *r = strstr(line, "msg=\"restored ");
                        if (r && sscanf(r,
                                        "msg=\"restored %" SCNd64
                                        " changelog records in %" SCNd64,
                                        recordsp, msp) == 2) {
                                fclose(f);
                                return 0;
                        }
                }
                if (f)
                        fclose(f);
                int status;
                if (waitpid(pid, &status, WNOHANG) == pid) {
                        fprintf(stderr, "bench: kpay-testproc exited; see %s\n",
                                log);
                        return -1;
                }
                struct timespec ts = {0, 100 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
        fprintf(stderr, "bench: no restore within 900 s; see %s\n", log);
        return -1;
}

/* The CPU time (user + system) process @p pid has used, in seconds: its
 * own figure, whatever else the machine runs. */
static double cpu_seconds(pid_t pid) {
        char path[64], buf[4096];
        snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
        FILE *f = fopen(path, "r");
        if (!f)
                return 0;
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n]           = '\0';
        const char *p    = strrchr(buf, ')');
        unsigned long ut = 0, st = 0;
        /* After "(comm)": state and 10 fields, then utime and stime. */
        if (!p || sscanf(p + 2,
                         "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
                         "%lu %lu",
                         &ut, &st) != 2)
                return 0;
        return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* --restore: the restore rate of kpay-testproc from nothing. */
static int restore_bench(const char *testproc, const char *state_dir,
                         const char *prefix, const char *value) {
        char in[128], out[128], dlq[128], meta[128], ticks[128], cl[256];
        snprintf(in, sizeof(in), "%stest.in", prefix);
        snprintf(out, sizeof(out), "%stest.out", prefix);
        snprintf(ticks, sizeof(ticks), "%stest.ticks", prefix);
        snprintf(dlq, sizeof(dlq), "%skpay.dlq", prefix);
        snprintf(meta, sizeof(meta), "%skpay.metadata", prefix);
        kp_changelog_name(cl, sizeof(cl), prefix, "testproc", "sums");
        const char *topics[] = {in, out, ticks, dlq, NULL};
        create_topics(topics, 0);
        const char *compacted[] = {meta, NULL};
        create_topics(compacted, 1);
        /* The changelog as the runtime makes it. */
        char errstr[512];
        rd_kafka_t *adm      = client(RD_KAFKA_PRODUCER, NULL);
        kp_topic_plan_t plan = {0};
        kp_topic_plan_add_changelog(&plan, cl, partitions, 1, NULL);
        if (kp_admin_ensure_topics(adm, &plan, 30000, NULL, errstr,
                                   sizeof(errstr))) {
                fprintf(stderr, "bench: %s\n", errstr);
                return 1;
        }
        kp_topic_plan_clear(&plan);
        rd_kafka_destroy(adm);
        keys           = (int)(n_records < INT32_MAX ? n_records : INT32_MAX);
        rd_kafka_t *pr = producer();
        int64_t t0     = now_us();
        for (int64_t i = 0; i < n_records; i++)
                produce(pr, cl, i, (char *)value);
        producer_close(pr);
        fprintf(stderr,
                "restore: %" PRId64 " changelog records written in %.1f s\n",
                n_records, (double)(now_us() - t0) / 1e6);

        char cmd[1024], log[1024];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", state_dir);
        if (system(cmd) != 0)
                fprintf(stderr, "bench: could not clear %s\n", state_dir);
        snprintf(log, sizeof(log), "%s.log", state_dir);
        unlink(log); /* an earlier run's line must not count */
        t0        = now_us();
        pid_t pid = fork();
        if (pid == 0) {
                FILE *f = freopen(log, "w", stderr);
                (void)f;
                execl(testproc, testproc, "-b", bootstrap, "--topic-prefix",
                      prefix, "--instance-id", "bench", "--state-dir",
                      state_dir, "--listen", "127.0.0.1:0", "--log-level",
                      "info", (char *)NULL);
                _exit(127);
        }
        int64_t records = 0, ms = 0;
        int rc      = wait_restored(log, pid, &records, &ms);
        double wall = (double)(now_us() - t0) / 1e6;
        double cpu  = cpu_seconds(pid);
        kill(pid, SIGTERM);
        int status;
        waitpid(pid, &status, 0);
        if (rc)
                return 1;
        double rate = ms ? (double)records * 1000.0 / (double)ms : 0;
        fprintf(stderr,
                "restore: %" PRId64 " records in %" PRId64
                " ms: %.0f records/s (%.1f s from exec, %.1f s of CPU: "
                "%.0f records per CPU second)\n",
                records, ms, rate, wall, cpu, cpu > 0 ? records / cpu : 0);
        printf("{\"records\":%" PRId64
               ",\"value_size\":%d,\"partitions\":%d,"
               "\"restore_ms\":%" PRId64
               ",\"restore_records_per_s\":%.0f,"
               "\"exec_to_restored_s\":%.2f,\"cpu_s\":%.2f,"
               "\"records_per_cpu_s\":%.0f}\n",
               records, value_size, partitions, ms, rate, wall, cpu,
               cpu > 0 ? records / cpu : 0);
        return records == n_records ? 0 : 1;
}

int main(int argc, char **argv) {
        const char *testproc = NULL, *state_dir = "/tmp/kpay-bench-state";
        int raw_only = 0, restore = 0;
        const char *count_prefix = NULL;
        for (int i = 1; i < argc; i++) {
                int64_t v;
                if (!strcmp(argv[i], "-b") && i + 1 < argc)
                        bootstrap = argv[++i];
                else if (!strcmp(argv[i], "--records") && i + 1 < argc &&
                         !kp_parse_int64(argv[++i], &v) && v > 0)
                        n_records = v;
                else if (!strcmp(argv[i], "--value-size") && i + 1 < argc &&
                         !kp_parse_int64(argv[++i], &v) && v >= 8 && v < 100000)
                        value_size = (int)v;
                else if (!strcmp(argv[i], "--commit-interval-ms") &&
                         i + 1 < argc)
                        commit_ms = argv[++i];
                else if (!strcmp(argv[i], "--testproc") && i + 1 < argc)
                        testproc = argv[++i];
                else if (!strcmp(argv[i], "--state-dir") && i + 1 < argc)
                        state_dir = argv[++i];
                else if (!strcmp(argv[i], "--raw-only"))
                        raw_only = 1;
                else if (!strcmp(argv[i], "--restore"))
                        restore = 1;
                else if (!strcmp(argv[i], "--count-topics") && i + 1 < argc)
                        count_prefix = argv[++i];
                else {
                        fprintf(stderr,
                                "usage: %s --testproc PATH [--restore] | "
                                "--raw-only | "
                                "--count-topics PREFIX "
                                "[-b HOST:PORT] "
                                "[--records N] [--value-size BYTES] "
                                "[--commit-interval-ms MS] [--state-dir "
                                "DIR]\n",
                                argv[0]);
                        return 2;
                }
        }
        if (count_prefix)
                return count_topics(count_prefix);
        if (!testproc && !raw_only) {
                fprintf(stderr, "bench: --testproc is required\n");
                return 2;
        }
        char prefix[64];
        snprintf(prefix, sizeof(prefix), "bench-%ld.", (long)time(NULL));
        char *value = malloc((size_t)value_size + 1);
        memset(value, 'x', (size_t)value_size);
        memcpy(value, "1|", 2);
        value[value_size] = '\0';
        if (restore) {
                int rc = restore_bench(testproc, state_dir, prefix, value);
                free(value);
                return rc;
        }

        /* 1. The broker alone. */
        char raw[128];
        snprintf(raw, sizeof(raw), "%sraw", prefix);
        const char *raw_topics[] = {raw, NULL};
        create_topics(raw_topics, 0);
        rd_kafka_t *rd = reader(raw, "bench-raw");
        rd_kafka_t *pr = producer();
        /* Let the reader's assignment settle before the clock starts. */
        rd_kafka_consumer_poll(rd, 500);
        int64_t t0 = now_us();
        for (int64_t i = 0; i < n_records; i++) {
                produce(pr, raw, i, value);
                if ((i & 1023) == 0) {
                        rd_kafka_poll(pr, 0);
                }
        }
        int64_t first, last;
        /* The reader runs after the sends are queued; librdkafka's threads
         * did the sending and fetching concurrently all along. */
        read_n(rd, n_records, 600, &first, &last);
        producer_close(pr);
        rd_kafka_consumer_close(rd);
        rd_kafka_destroy(rd);
        double raw_rate = (double)n_records / ((double)(last - t0) / 1e6);
        fprintf(stderr,
                "raw: %" PRId64
                " records of %d bytes in %.2f s: "
                "%.0f records/s\n",
                n_records, value_size, (double)(last - t0) / 1e6, raw_rate);

        if (raw_only) {
                printf("{\"records\":%" PRId64
                       ",\"value_size\":%d,"
                       "\"partitions\":%d,\"raw_records_per_s\":%.0f}\n",
                       n_records, value_size, partitions, raw_rate);
                free(value);
                return 0;
        }

        /* 2. The runtime. */
        char in[128], out[128], dlq[128], meta[128];
        snprintf(in, sizeof(in), "%stest.in", prefix);
        snprintf(out, sizeof(out), "%stest.out", prefix);
        snprintf(dlq, sizeof(dlq), "%skpay.dlq", prefix);
        snprintf(meta, sizeof(meta), "%skpay.metadata", prefix);
        const char *topics[] = {in, out, dlq, NULL};
        create_topics(topics, 0);
        const char *compacted[] = {meta, NULL};
        create_topics(compacted, 1);
        pr = producer();
        for (int64_t i = 0; i < n_records; i++)
                produce(pr, in, i, value);
        producer_close(pr);

        rd = reader(out, "bench-out");
        char cmd[1024];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", state_dir);
        if (system(cmd) != 0)
                fprintf(stderr, "bench: could not clear %s\n", state_dir);
        pid_t pid = fork();
        if (pid == 0) {
                execl(testproc, testproc, "-b", bootstrap, "--topic-prefix",
                      prefix, "--instance-id", "bench", "--state-dir",
                      state_dir, "--listen", "127.0.0.1:0",
                      "--commit-interval-ms", commit_ms, "--log-level", "warn",
                      (char *)NULL);
                _exit(127);
        }
        read_n(rd, n_records, 900, &first, &last);
        kill(pid, SIGTERM);
        int status;
        waitpid(pid, &status, 0);
        rd_kafka_consumer_close(rd);
        rd_kafka_destroy(rd);
        double rt_rate = (double)n_records / ((double)(last - first) / 1e6);
        fprintf(stderr,
                "runtime: %" PRId64
                " records in %.2f s: %.0f "
                "records/s (exactly once, commit every %s ms)\n",
                n_records, (double)(last - first) / 1e6, rt_rate, commit_ms);
        printf("{\"records\":%" PRId64
               ",\"value_size\":%d,\"partitions\":%d,"
               "\"commit_interval_ms\":%s,\"raw_records_per_s\":%.0f,"
               "\"runtime_records_per_s\":%.0f,\"ratio\":%.3f}\n",
               n_records, value_size, partitions, commit_ms, raw_rate, rt_rate,
               rt_rate / raw_rate);
        free(value);
        return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
