/* Helpers shared by the integration tests. */
#include "it_util.h"
#include "kpay/kp_http.h"
#include "kpay/kp_kafka.h"
#include "kpay/kp_mem.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

const char *it_bootstrap(void) {
        const char *b = getenv("KPAY_TEST_BOOTSTRAP");
        if (!b || !*b)
                fail_msg(
                    "KPAY_TEST_BOOTSTRAP is not set: run this test "
                    "through ctest (./kpay test)");
        return b;
}

int64_t it_now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void it_unique_prefix(char *buf, size_t size, const char *test) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(buf, size, "it-%s-%ld-%ld.", test, (long)getpid(),
                 (long)(ts.tv_nsec ^ ts.tv_sec) & 0xffffff);
}

int it_run(char *const argv[], int timeout_ms, char **outp) {
        char path[] = "/tmp/kpay-it-out-XXXXXX";
        int fd      = mkstemp(path);
        if (fd < 0)
                fail_msg("mkstemp: %s", strerror(errno));
        unlink(path);
        pid_t pid = fork();
        if (pid < 0)
                fail_msg("fork: %s", strerror(errno));
        if (pid == 0) {
                dup2(fd, STDOUT_FILENO);
                dup2(fd, STDERR_FILENO);
                execv(argv[0], argv);
                fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
                _exit(127);
        }
        int status = 0, rc = -1;
        int64_t deadline = it_now_ms() + timeout_ms;
        for (;;) {
                pid_t r = waitpid(pid, &status, WNOHANG);
                if (r == pid) {
                        rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
                        break;
                }
                if (it_now_ms() > deadline) {
                        kill(pid, SIGKILL);
                        waitpid(pid, &status, 0);
                        break;
                }
                struct timespec ts = {0, 20 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
        if (outp) {
                off_t len = lseek(fd, 0, SEEK_END);
                char *buf = calloc(1, (size_t)len + 1);
                if (!buf || pread(fd, buf, (size_t)len, 0) != len)
                        fail_msg("reading the output of %s", argv[0]);
                *outp = buf;
        }
        close(fd);
        return rc;
}

rd_kafka_t *it_client(rd_kafka_type_t type, const char *const *props) {
        char errstr[512];
        rd_kafka_t *rk =
            rd_kafka_new(type, it_client_conf(props), errstr, sizeof(errstr));
        if (!rk)
                fail_msg("rd_kafka_new: %s", errstr);
        return rk;
}

rd_kafka_conf_t *it_client_conf(const char *const *props) {
        char errstr[512];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        if (rd_kafka_conf_set(conf, "bootstrap.servers", it_bootstrap(), errstr,
                              sizeof(errstr)))
                fail_msg("%s", errstr);
        /* A secured broker (the kafka_secure fixture): its client
         * properties, read as kpay reads --kafka-config. */
        const char *secure = getenv("KPAY_TEST_KAFKA_CONFIG");
        if (secure && *secure) {
                kp_app_conf_t c = {.kafka_config = (char *)secure};
                if (kp_kafka_config_apply(&c, errstr, sizeof(errstr)))
                        fail_msg("%s", errstr);
                for (size_t i = 0; i < c.kafka.cnt; i++)
                        if (rd_kafka_conf_set(conf, c.kafka.keys[i],
                                              c.kafka.values[i], errstr,
                                              sizeof(errstr)))
                                fail_msg("%s: %s", c.kafka.keys[i], errstr);
                kp_conf_kv_clear(&c.kafka);
        }
        for (; props && props[0]; props += 2)
                if (rd_kafka_conf_set(conf, props[0], props[1], errstr,
                                      sizeof(errstr)))
                        fail_msg("%s=%s: %s", props[0], props[1], errstr);
        return conf;
}

/* Runs scripts/test-kafka.sh @p cmd with the fixture's environment
 * (tests/CMakeLists.txt passes its parts as KPAY_TEST_KAFKA_*). */
static void broker_ctl(const char *cmd) {
        const char *ctl   = getenv("KPAY_TEST_KAFKA_CTL");
        const char *data  = getenv("KPAY_TEST_KAFKA_DATA");
        const char *heap  = getenv("KPAY_TEST_KAFKA_HEAP");
        const char *colon = strrchr(it_bootstrap(), ':');
        if (!ctl || !data || !heap || !colon)
                fail_msg(
                    "KPAY_TEST_KAFKA_CTL/_DATA/_HEAP are not set: run "
                    "this test through ctest");
        int port = atoi(colon + 1);
        char script[1200];
        snprintf(script, sizeof(script),
                 "KPAY_KAFKA_PORT=%d KPAY_KAFKA_CONTROLLER_PORT=%d "
                 "KPAY_KAFKA_DATA='%s' KPAY_KAFKA_HEAP='%s' '%s' %s",
                 port, port + 1, data, heap, ctl, cmd);
        char *argv[] = {"/bin/sh", "-c", script, NULL};
        char *out    = NULL;
        /* kpay kafka stop waits up to 60 s for a clean stop, start up to
         * 120 s for the broker to answer. */
        int rc = it_run(argv, 240000, &out);
        if (rc != 0) {
                fprintf(stderr, "%s", out ? out : "");
                free(out);
                fail_msg("test-kafka.sh %s exited %d", cmd, rc);
        }
        free(out);
}

void it_broker_stop(void) {
        broker_ctl("down");
}

/* 1 when every partition of every topic has a leader: a broker that has
 * just started answers metadata requests before it leads what it loaded. */
static int broker_leads_all(rd_kafka_t *rk) {
        const struct rd_kafka_metadata *md = NULL;
        if (rd_kafka_metadata(rk, 1, NULL, &md, 5000))
                return 0;
        int ok = md->broker_cnt > 0;
        for (int t = 0; ok && t < md->topic_cnt; t++) {
                ok = !md->topics[t].err;
                for (int p = 0; ok && p < md->topics[t].partition_cnt; p++)
                        ok = !md->topics[t].partitions[p].err &&
                             md->topics[t].partitions[p].leader >= 0;
        }
        rd_kafka_metadata_destroy(md);
        return ok;
}

void it_broker_start(void) {
        broker_ctl("up");
        rd_kafka_t *rk   = it_client(RD_KAFKA_PRODUCER, NULL);
        int64_t deadline = it_now_ms() + 120000;
        while (!broker_leads_all(rk)) {
                if (it_now_ms() > deadline)
                        fail_msg(
                            "the restarted broker leads not every "
                            "partition within 120 s");
                struct timespec ts = {0, 100 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
        rd_kafka_destroy(rk);
}

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "kpay/kp_admin.h"

int it_free_port(void) {
        int fd                = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET};
        socklen_t len         = sizeof(sa);
        sa.sin_addr.s_addr    = htonl(INADDR_LOOPBACK);
        if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
            getsockname(fd, (struct sockaddr *)&sa, &len))
                fail_msg("free port: %s", strerror(errno));
        close(fd);
        return ntohs(sa.sin_port);
}

void it_create_topics(const char *const *names, int partitions, int compact) {
        char errstr[512];
        rd_kafka_t *rk       = it_client(RD_KAFKA_PRODUCER, NULL);
        kp_topic_plan_t plan = {0};
        for (; *names; names++)
                kp_topic_plan_add(&plan, *names, partitions, 1,
                                  compact ? "compact" : "delete", NULL);
        if (kp_admin_ensure_topics(rk, &plan, 30000, NULL, errstr,
                                   sizeof(errstr)))
                fail_msg("creating topics: %s", errstr);
        kp_topic_plan_clear(&plan);
        rd_kafka_destroy(rk);
}

/* Every child started by it_spawn() and not yet reaped, so that a failed
 * test (which longjmps past its own clean-up) leaves no process behind. */
#define IT_MAX_CHILDREN 64
static pid_t children[IT_MAX_CHILDREN];

static void child_forget(pid_t pid) {
        for (int i = 0; i < IT_MAX_CHILDREN; i++)
                if (children[i] == pid)
                        children[i] = 0;
}

int it_exited(pid_t pid) {
        int status;
        if (waitpid(pid, &status, WNOHANG) != pid)
                return 0;
        child_forget(pid);
        return 1;
}

int it_exit_status(pid_t pid) {
        int status;
        if (waitpid(pid, &status, WNOHANG) != pid)
                return -1;
        child_forget(pid);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void it_reap_all(void) {
        for (int i = 0; i < IT_MAX_CHILDREN; i++) {
                if (children[i] <= 0)
                        continue;
                kill(children[i], SIGKILL);
                waitpid(children[i], NULL, 0);
                children[i] = 0;
        }
}

pid_t it_spawn(char *const argv[], const char *logpath) {
        static int registered;
        if (!registered) {
                atexit(it_reap_all);
                registered = 1;
        }
        pid_t pid = fork();
        if (pid < 0)
                fail_msg("fork: %s", strerror(errno));
        if (pid == 0) {
                int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
                if (fd >= 0) {
                        dup2(fd, STDOUT_FILENO);
                        dup2(fd, STDERR_FILENO);
                        close(fd);
                }
                execv(argv[0], argv);
                fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
                _exit(127);
        }
        for (int i = 0; i < IT_MAX_CHILDREN; i++)
                if (children[i] <= 0) {
                        children[i] = pid;
                        break;
                }
        return pid;
}

int it_wait_exit(pid_t pid, int timeout_ms) {
        int status;
        int64_t deadline = it_now_ms() + timeout_ms;
        for (;;) {
                pid_t r = waitpid(pid, &status, WNOHANG);
                if (r == pid) {
                        child_forget(pid);
                        return WIFEXITED(status) ? WEXITSTATUS(status)
                                                 : 128 + WTERMSIG(status);
                }
                if (it_now_ms() > deadline) {
                        kill(pid, SIGKILL);
                        waitpid(pid, &status, 0);
                        child_forget(pid);
                        return -1;
                }
                struct timespec ts = {0, 10 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
}

void it_dump_log(const char *logpath, int lines) {
        char cmd[1200];
        snprintf(cmd, sizeof(cmd), "tail -n %d '%s' >&2", lines, logpath);
        if (system(cmd) != 0)
                fprintf(stderr, "(could not show %s)\n", logpath);
}

int it_http(const char *method, const char *hostport, const char *path,
            const char *body, char **bodyp) {
        return it_http_h(method, hostport, path, NULL, body, bodyp);
}

int it_http_h(const char *method, const char *hostport, const char *path,
              const char *headers, const char *body, char **bodyp) {
        char *b = NULL, err[256];
        int status =
            kp_http_request(method, hostport, path, headers, body, 10000,
                            bodyp ? &b : NULL, NULL, err, sizeof(err));
        /* As before: the body only with an answer. */
        if (bodyp && status >= 0)
                *bodyp = strdup(b ? b : "");
        kp_free(b);
        return status;
}

int it_http_hv(const char *method, const char *hostport, const char *path,
               const char *headers, const char *body, const char *name,
               char *value, size_t size, char **bodyp) {
        struct sockaddr_in sa = {.sin_family = AF_INET};
        char host[64], *raw = NULL;
        size_t len = 0, cap = 0;
        const char *colon = strrchr(hostport, ':');
        value[0]          = '\0';
        if (!colon || (size_t)(colon - hostport) >= sizeof(host))
                fail_msg("it_http_hv: %s is not HOST:PORT", hostport);
        memcpy(host, hostport, (size_t)(colon - hostport));
        host[colon - hostport] = '\0';
        sa.sin_port            = htons((uint16_t)atoi(colon + 1));
        if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
                fail_msg("it_http_hv: %s is not an IPv4 address", host);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
                if (fd >= 0)
                        close(fd);
                return -1;
        }
        struct timeval tv = {60, 0}; /* more than wait_ms can ask */
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        char *req = kp_asprintf(
            "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: "
            "close\r\n%sContent-Length: %zu\r\n\r\n%s",
            method, path, hostport, headers ? headers : "",
            body ? strlen(body) : 0, body ? body : "");
        size_t rl    = strlen(req);
        ssize_t sent = send(fd, req, rl, MSG_NOSIGNAL);
        kp_free(req);
        while (sent == (ssize_t)rl) {
                if (cap - len < 4096 && !(raw = realloc(raw, cap += 65536)))
                        fail_msg("out of memory");
                ssize_t r = recv(fd, raw + len, cap - len - 1, 0);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        break;
                len += (size_t)r;
        }
        close(fd);
        int status = -1;
        char *hend = NULL;
        if (raw) {
                raw[len] = '\0';
                hend     = strstr(raw, "\r\n\r\n");
        }
        if (!hend || sscanf(raw, "HTTP/1.%*d %d", &status) != 1) {
                free(raw);
                return -1;
        }
        *hend     = '\0';
        size_t nl = strlen(name);
        for (char *h = strstr(raw, "\r\n"); h; h = strstr(h + 2, "\r\n"))
                if (!strncasecmp(h + 2, name, nl) && h[2 + nl] == ':') {
                        const char *v = h + 3 + nl;
                        while (*v == ' ')
                                v++;
                        size_t vl = strcspn(v, "\r");
                        snprintf(value, size, "%.*s", (int)vl, v);
                }
        if (bodyp)
                *bodyp = strdup(hend + 4);
        free(raw);
        return status;
}

int it_http_get(const char *hostport, const char *path, char **bodyp) {
        return it_http("GET", hostport, path, NULL, bodyp);
}

size_t it_read_all(const char *topic, const char *isolation, it_rec_t **recsp) {
        const char *props[] = {
            "group.id", "kpay-it-reader",     "isolation.level",
            isolation,  "enable.auto.commit", "false",
            NULL};
        rd_kafka_t *rk = it_client(RD_KAFKA_CONSUMER, props);
        const struct rd_kafka_metadata *md;
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
        if (rd_kafka_metadata(rk, 0, rkt, &md, 30000))
                fail_msg("metadata of %s", topic);
        int parts = md->topics[0].partition_cnt;
        rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
        if (parts <= 0)
                fail_msg("topic %s has no partitions", topic);

        rd_kafka_topic_partition_list_t *list =
            rd_kafka_topic_partition_list_new(parts);
        int64_t *end = calloc(parts > 0 ? (size_t)parts : 1, sizeof(*end));
        for (int p = 0; p < parts; p++) {
                int64_t lo;
                /* Right after a broker restart (it_broker_start()) a
                 * partition may briefly answer "not leader": ask again. */
                rd_kafka_resp_err_t werr;
                int64_t until = it_now_ms() + 60000;
                while ((werr = rd_kafka_query_watermark_offsets(
                            rk, topic, p, &lo, &end[p], 30000)) &&
                       it_now_ms() < until) {
                        struct timespec ts = {0, 200 * 1000 * 1000};
                        nanosleep(&ts, NULL);
                }
                if (werr)
                        fail_msg("watermarks of %s [%d]: %s", topic, p,
                                 rd_kafka_err2str(werr));
                rd_kafka_topic_partition_list_add(list, topic, p)->offset =
                    RD_KAFKA_OFFSET_BEGINNING;
        }
        if (rd_kafka_assign(rk, list))
                fail_msg("assign %s", topic);
        size_t cnt = 0, cap = 1024;
        it_rec_t *recs   = calloc(cap, sizeof(*recs));
        int64_t deadline = it_now_ms() + 120000;
        for (;;) {
                rd_kafka_position(rk, list);
                int done = 1;
                for (int p = 0; p < parts; p++)
                        if (end[p] > 0 && list->elems[p].offset < end[p])
                                done = 0;
                if (done)
                        break;
                if (it_now_ms() > deadline)
                        fail_msg("reading %s did not reach its end", topic);
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
                if (!m)
                        continue;
                if (m->err) {
                        rd_kafka_message_destroy(m);
                        continue;
                }
                if (cnt == cap)
                        recs = realloc(recs, (cap *= 2) * sizeof(*recs));
                it_rec_t *r  = &recs[cnt++];
                r->key       = m->key ? strndup(m->key, m->key_len) : NULL;
                r->value     = m->payload ? strndup(m->payload, m->len) : NULL;
                r->partition = m->partition;
                r->offset    = m->offset;
                rd_kafka_headers_t *h;
                r->headers = NULL;
                if (!rd_kafka_message_detach_headers(m, &h))
                        r->headers = h;
                rd_kafka_message_destroy(m);
        }
        free(end);
        rd_kafka_topic_partition_list_destroy(list);
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        *recsp = recs;
        return cnt;
}

void it_free_recs(it_rec_t *recs, size_t cnt) {
        for (size_t i = 0; i < cnt; i++) {
                free(recs[i].key);
                free(recs[i].value);
                if (recs[i].headers)
                        rd_kafka_headers_destroy(recs[i].headers);
        }
        free(recs);
}

rd_kafka_t *it_producer(void) {
        const char *props[] = {
            "enable.idempotence", "true", "partitioner", "murmur2_random",
            "linger.ms",          "5",    NULL};
        return it_client(RD_KAFKA_PRODUCER, props);
}

void it_produce(rd_kafka_t *rk, const char *topic, int32_t partition,
                const char *key, const char *value) {
        for (;;) {
                rd_kafka_resp_err_t err = rd_kafka_producev(
                    rk, RD_KAFKA_V_TOPIC(topic),
                    RD_KAFKA_V_PARTITION(partition < 0 ? RD_KAFKA_PARTITION_UA
                                                       : partition),
                    RD_KAFKA_V_KEY((void *)key, key ? strlen(key) : 0),
                    RD_KAFKA_V_VALUE((void *)value, value ? strlen(value) : 0),
                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
                if (!err)
                        return;
                if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                        fail_msg("produce to %s: %s", topic,
                                 rd_kafka_err2str(err));
                rd_kafka_poll(rk, 50);
        }
}

void it_producer_close(rd_kafka_t *rk) {
        if (rd_kafka_flush(rk, 60000))
                fail_msg("flush did not finish");
        if (rd_kafka_outq_len(rk) != 0)
                fail_msg("undelivered records");
        rd_kafka_destroy(rk);
}

/* ------------------------------------------------------------------------
 * kpay-testproc instances. */

#include <inttypes.h>

#include "kpay/kp_topics.h"

void it_env_init(it_env_t *e, const char *name, int partitions) {
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

void it_env_cleanup(it_env_t *e) {
        for (int i = 0; i < IT_MAX_INST; i++)
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

it_inst_t *it_inst_start_v(it_env_t *e, int i, const char *id,
                           const char *const *extra) {
        it_inst_t *in = &e->inst[i];
        snprintf(in->id, sizeof(in->id), "%s", id);
        snprintf(in->state, sizeof(in->state), "%s/%s.%d", e->root, id, i);
        snprintf(in->log, sizeof(in->log), "%s/%s.%d.log", e->root, id, i);
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

it_inst_t *it_inst_start(it_env_t *e, int i, const char *id, const char *extra1,
                         const char *extra2) {
        const char *extra[] = {extra1, extra2, NULL};
        return it_inst_start_v(e, i, id, extra);
}

void it_inst_wait_ready(it_inst_t *in, int timeout_ms) {
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

void it_inst_stop(it_inst_t *in) {
        kill(in->pid, SIGTERM);
        int rc = it_wait_exit(in->pid, 60000);
        if (rc != 0) {
                it_dump_log(in->log, 40);
                fail_msg("instance %s exited %d after SIGTERM", in->id, rc);
        }
        in->pid = 0;
}

void it_inst_kill(it_inst_t *in) {
        kill(in->pid, SIGKILL);
        it_wait_exit(in->pid, 30000);
        in->pid = 0;
}

void it_produce_values(it_env_t *e, int keys, int from, int to) {
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

size_t it_wait_outputs(it_env_t *e, size_t n, int timeout_ms) {
        int64_t deadline = it_now_ms() + timeout_ms;
        for (;;) {
                it_rec_t *recs;
                size_t cnt = it_read_all(e->out, "read_committed", &recs);
                it_free_recs(recs, cnt);
                if (cnt >= n)
                        return cnt;
                if (it_now_ms() > deadline) {
                        for (int i = 0; i < IT_MAX_INST; i++)
                                if (e->inst[i].pid > 0)
                                        it_dump_log(e->inst[i].log, 30);
                        fail_msg("only %zu of %zu outputs within %d ms", cnt, n,
                                 timeout_ms);
                }
                struct timespec ts = {0, 200 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
}

void it_check_exactly_once(it_env_t *e, int keys, int values) {
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
                        fail_msg("malformed output \"%.60s\"", recs[i].value);
                if (v != next[k])
                        fail_msg(
                            "key k%d: expected value %d next, got %d "
                            "(\"%.60s\" at %d@%" PRId64
                            "): a duplicate or a gap",
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

json_t *it_get_json(const char *endpoint, const char *path, int want_status) {
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

/* Percent-encodes @p s for a query string. */
static void url_encode(char *buf, size_t size, const char *s) {
        static const char hex[] = "0123456789ABCDEF";
        size_t of               = 0;
        for (; *s && of + 4 < size; s++) {
                unsigned char c = (unsigned char)*s;
                if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                    c == '.' || c == '~') {
                        buf[of++] = (char)c;
                } else {
                        buf[of++] = '%';
                        buf[of++] = hex[c >> 4];
                        buf[of++] = hex[c & 15];
                }
        }
        buf[of] = '\0';
}

json_t *it_store_scan(const char *endpoint, const char *store, int limit) {
        json_t *all = json_array();
        char path[1400], cursor[1100];
        snprintf(path, sizeof(path), "/v1/stores/%s?limit=%d", store, limit);
        for (int page = 0; page < 100000; page++) {
                json_t *j     = it_get_json(endpoint, path, 200);
                json_t *items = json_object_get(j, "items"), *it;
                size_t i;
                if (json_array_size(items) > (size_t)limit)
                        fail_msg("GET %s: %zu items, limit %d", path,
                                 json_array_size(items), limit);
                json_array_foreach(items, i, it) json_array_append(all, it);
                json_t *next = json_object_get(j, "next");
                if (!json_is_string(next)) {
                        json_decref(j);
                        return all;
                }
                url_encode(cursor, sizeof(cursor), json_string_value(next));
                snprintf(path, sizeof(path), "/v1/stores/%s?limit=%d&after=%s",
                         store, limit, cursor);
                json_decref(j);
        }
        fail_msg("the scan of %s on %s did not end", store, endpoint);
        return NULL;
}

int64_t it_key_value(const char *endpoint, int k) {
        char path[128];
        snprintf(path, sizeof(path), "/v1/stores/sums/keys/k%d", k);
        json_t *j   = it_get_json(endpoint, path, 200);
        json_t *v   = json_object_get(j, "value");
        int64_t val = json_integer_value(v);
        if (!json_is_integer(v))
                fail_msg("%s: value is not an integer", path);
        json_decref(j);
        return val;
}

double it_metric(const char *endpoint, const char *name) {
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

int64_t it_topic_end(rd_kafka_t *rk, const char *topic, int partitions) {
        int64_t sum = 0;
        for (int p = 0; p < partitions; p++) {
                int64_t lo, hi;
                rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
                    rk, topic, p, &lo, &hi, 30000);
                if (err)
                        fail_msg("watermarks of %s [%d]: %s", topic, p,
                                 rd_kafka_err2str(err));
                sum += hi;
        }
        return sum;
}

static void *feeder_run(void *arg) {
        it_feeder_t *f = arg;
        rd_kafka_t *rk = it_producer();
        for (int v = 1; v <= f->max_values && !atomic_load(&f->stop); v++) {
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
                /* Pacing, not waiting for anything. */
                struct timespec ts = {0, 10 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
        if (rd_kafka_flush(rk, 60000) || rd_kafka_outq_len(rk))
                f->failed = 1;
        rd_kafka_destroy(rk);
        return NULL;
}

void it_feeder_start(it_feeder_t *f, it_env_t *e, int keys, int max_values) {
        memset(f, 0, sizeof(*f));
        f->e          = e;
        f->keys       = keys;
        f->max_values = max_values;
        if (pthread_create(&f->thread, NULL, feeder_run, f))
                fail_msg("pthread_create failed");
}

int it_feeder_stop(it_feeder_t *f) {
        atomic_store(&f->stop, 1);
        if (pthread_join(f->thread, NULL))
                fail_msg("pthread_join failed");
        if (f->failed)
                fail_msg("the feeder could not deliver its input");
        return atomic_load(&f->produced);
}

double it_wait_metric(it_inst_t *in, const char *name, double min,
                      int timeout_ms) {
        int64_t deadline = it_now_ms() + timeout_ms;
        for (;;) {
                double v = it_metric(in->endpoint, name);
                if (v >= min)
                        return v;
                if (it_exited(in->pid)) {
                        it_dump_log(in->log, 40);
                        fail_msg("instance %s exited", in->id);
                }
                if (it_now_ms() > deadline) {
                        it_dump_log(in->log, 40);
                        fail_msg("%s is %g, not %g, after %d ms", name, v, min,
                                 timeout_ms);
                }
                struct timespec ts = {0, 50 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
}

/* ------------------------------------------------------------------------
 * kpay daemons as real processes. */

const char *it_env_bin(const char *name) {
        const char *b = getenv(name);
        if (!b)
                fail_msg("%s is not set: run through ctest", name);
        return b;
}

void it_daemon_init(it_daemon_t *d, const char *bin_env, const char *root,
                    const char *id) {
        d->bin = it_env_bin(bin_env);
        d->pid = 0;
        snprintf(d->id, sizeof(d->id), "%s", id);
        snprintf(d->state, sizeof(d->state), "%s/%s", root, id);
        snprintf(d->log, sizeof(d->log), "%s/%s.log", root, id);
        snprintf(d->endpoint, sizeof(d->endpoint), "127.0.0.1:%d",
                 it_free_port());
}

void it_daemon_spawn(it_daemon_t *d, const char *prefix,
                     const char *const *extra) {
        char *argv[40] = {(char *)d->bin,
                          "-b",
                          (char *)it_bootstrap(),
                          "--topic-prefix",
                          (char *)prefix,
                          "--instance-id",
                          d->id,
                          "--listen",
                          d->endpoint,
                          "--heartbeat-ms",
                          "1000"};
        int n          = 11;
        for (; extra && *extra && n < 39; extra++)
                argv[n++] = (char *)*extra;
        argv[n] = NULL;
        d->pid  = it_spawn(argv, d->log);
}

void it_daemon_start(it_daemon_t *d, const char *bin_env, const char *root,
                     const char *id, const char *prefix,
                     const char *const *extra) {
        const char *argv[32] = {"--state-dir", NULL};
        size_t n             = 2;
        it_daemon_init(d, bin_env, root, id);
        argv[1] = d->state;
        for (; extra && *extra && n < 31; extra++)
                argv[n++] = *extra;
        argv[n] = NULL;
        it_daemon_spawn(d, prefix, argv);
}

void it_daemon_wait_ready(it_daemon_t *d, int timeout_ms) {
        int64_t deadline = it_now_ms() + timeout_ms;
        while (it_http_get(d->endpoint, "/readyz", NULL) != 200) {
                if (it_exited(d->pid)) {
                        it_dump_log(d->log, 40);
                        fail_msg("%s exited before it was ready", d->id);
                }
                if (it_now_ms() > deadline) {
                        it_dump_log(d->log, 40);
                        fail_msg("%s not ready", d->id);
                }
                struct timespec ts = {0, 50 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
}

void it_daemon_stop(it_daemon_t *d) {
        if (d->pid <= 0)
                return;
        kill(d->pid, SIGTERM);
        int rc = it_wait_exit(d->pid, 60000);
        if (rc != 0) {
                it_dump_log(d->log, 40);
                fail_msg("%s exited %d after SIGTERM", d->id, rc);
        }
        d->pid = 0;
}

void it_daemons_teardown(it_daemon_t *const *all, size_t cnt,
                         const char *root) {
        for (size_t i = 0; i < cnt; i++)
                if (all[i]->pid > 0) {
                        kill(all[i]->pid, SIGTERM);
                        if (it_wait_exit(all[i]->pid, 60000) != 0)
                                fprintf(stderr, "%s did not exit cleanly\n",
                                        all[i]->id);
                        all[i]->pid = 0;
                }
        char cmd[400];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
        if (system(cmd) != 0)
                fprintf(stderr, "could not remove %s\n", root);
}

int it_admin_run_topics(const char *prefix, int partitions, char **outp) {
        char parts[16];
        snprintf(parts, sizeof(parts), "%d", partitions);
        char *const argv[] = {(char *)it_env_bin("KPAY_ADMIN_BIN"),
                              "topics",
                              "-b",
                              (char *)it_bootstrap(),
                              "--topic-prefix",
                              (char *)prefix,
                              "--partitions",
                              parts,
                              NULL};
        return it_run(argv, 120000, outp);
}

int it_admin_topics(const char *prefix, int partitions) {
        char *out = NULL;
        int rc    = it_admin_run_topics(prefix, partitions, &out);
        if (rc != 0)
                fprintf(stderr, "kpay-admin topics: %d\n%s", rc, out);
        free(out);
        return rc == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------------
 * Stores and money.
 */

json_t *it_store_items(const char *endpoint, const char *store) {
        return it_store_scan(endpoint, store, 1000);
}

void it_money_add(kp_money_t *sum, const json_t *obj, const char *what) {
        kp_money_t m;
        kp_money_init(&m);
        if (kp_money_from_json(obj, KP_MONEY_JSON_STRING, &m)) {
                char *s = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
                fail_msg(
                    "%s: not an object of currencies to decimal "
                    "strings: %s",
                    what, s ? s : "(none)");
        }
        if (kp_money_add_all(sum, &m))
                fail_msg("%s: the sum passes 128 bits", what);
        kp_money_clear(&m);
}

kp_i128_t it_balance(const json_t *value, const char *currency) {
        kp_money_t m;
        kp_money_init(&m);
        if (kp_money_from_json(json_object_get(value, "balances"),
                               KP_MONEY_JSON_STRING, &m))
                fail_msg("an account value without balances");
        kp_i128_t b = kp_money_get(&m, currency);
        kp_money_clear(&m);
        return b;
}

void it_books_add(kp_money_t *sum, const json_t *items) {
        size_t i;
        json_t *it;
        json_array_foreach(items, i, it) {
                const char *k = json_string_value(json_object_get(it, "key"));
                kp_money_t m;
                kp_money_init(&m);
                if (!k || kp_money_from_json(
                              json_object_get(json_object_get(it, "value"),
                                              "balances"),
                              KP_MONEY_JSON_STRING, &m))
                        fail_msg("account %s: no balances object",
                                 k ? k : "(no key)");
                for (size_t c = 0; k[0] != '@' && c < m.cnt; c++) {
                        if (m.e[c].amount < 0) {
                                char buf[KP_I128_DEC_SIZE];
                                kp_i128_format(m.e[c].amount, buf);
                                fail_msg("%s is overdrawn: %s %s", k, buf,
                                         m.e[c].currency);
                        }
                }
                if (kp_money_add_all(sum, &m))
                        fail_msg("the books pass 128 bits");
                kp_money_clear(&m);
        }
}
