/* Integration test of SASL/SCRAM + TLS to the cluster (docs/security.md):
 * the kafka_secure fixture's broker (`./kpay kafka start --secure`: one
 * SASL_SSL listener, SCRAM-SHA-512 user kpay, a throwaway CA) and the whole
 * pipeline through it: kpay-admin topics, kpay-inflight, kpay-account and
 * kpay-confirmed, then kpay-gen --wait, every payment COMPLETE and the
 * books at 0. Each binary gets its settings another way (--kafka-config,
 * KPAY_KAFKA_CONFIG, KPAY_KAFKA_PASSWORD_FILE, KPAY_KAFKA_SASL_PASSWORD,
 * -X), and the password shows nowhere: logs, /v1/config, /metrics,
 * InstanceInfo, --help. A wrong password or an unknown CA makes a daemon,
 * kpay-gen and kpay-admin exit non-zero at once with one error line. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "it_util.h"
#include "kpay/kp_conf.h"
#include "kpay/kp_topics.h"

#define PARTITIONS 3
#define PAYMENTS   300
/* Any wrong credentials end a process within this long (it takes 1-3 s:
 * one failed authentication); a retry storm would run into it. */
#define FAIL_FAST_MS 45000

static char prefix[64], root[256];
static char password[128];          /* the fixture's user kpay */
static char full[300];              /* the fixture's client.properties */
static char nopw[300], pwfile[300]; /* the same without the password */
static char wrong[300], badca[300]; /* wrong password; another CA */
static it_daemon_t inflight, account, confirmed;

static kp_err_t find_password(const char *key, const char *value, int line,
                              void *opaque, char *errstr, size_t errstr_size) {
        (void)line;
        (void)opaque;
        (void)errstr;
        (void)errstr_size;
        if (!strcmp(key, "sasl.password"))
                snprintf(password, sizeof(password), "%s", value);
        return KP_OK;
}

static void write_file(const char *path, const char *text) {
        FILE *fp = fopen(path, "w");
        if (!fp || fputs(text, fp) < 0 || fclose(fp))
                fail_msg("writing %s: %s", path, strerror(errno));
}

/* The fixture's file with its password line replaced by @p pwline (or
 * dropped), its CA by @p ca (or kept), written to @p path. */
static void derive(const char *path, const char *pwline, const char *ca) {
        FILE *in = fopen(full, "r"), *out = fopen(path, "w");
        if (!in || !out)
                fail_msg("deriving %s from %s", path, full);
        char line[1024];
        /* Another style than the fixture's: key: value, comments, blanks. */
        fputs("# derived by test_secure\n\n", out);
        while (fgets(line, sizeof(line), in)) {
                if (!strncmp(line, "sasl.password=", 14)) {
                        if (pwline)
                                fprintf(out, "%s\n", pwline);
                } else if (!strncmp(line, "ssl.ca.location=", 16) && ca) {
                        fprintf(out, "ssl.ca.location : %s\n", ca);
                } else if (!strncmp(line, "sasl.username=", 14)) {
                        fprintf(out, "  sasl.username :  %s", line + 14);
                } else {
                        fputs(line, out);
                }
        }
        fclose(in);
        if (fclose(out))
                fail_msg("writing %s", path);
}

/* What the children would inherit: none of the Kafka settings. */
static void clear_kafka_env(void) {
        unsetenv("KPAY_KAFKA_CONFIG");
        unsetenv("KPAY_KAFKA_PASSWORD_FILE");
        unsetenv("KPAY_KAFKA_SASL_PASSWORD");
}

static int setup(void **state) {
        (void)state;
        const char *cfg = getenv("KPAY_TEST_KAFKA_CONFIG");
        if (!cfg || !*cfg)
                fail_msg(
                    "KPAY_TEST_KAFKA_CONFIG is not set: run this test "
                    "through ctest (fixture kafka_secure)");
        snprintf(full, sizeof(full), "%s", cfg);
        char err[512];
        if (kp_conf_props_load(full, find_password, NULL, err, sizeof(err)) ||
            !*password)
                fail_msg("no sasl.password in %s: %s", full, err);
        it_unique_prefix(prefix, sizeof(prefix), "secure");
        snprintf(root, sizeof(root), "/tmp/kpay-it-secure-XXXXXX");
        if (!mkdtemp(root))
                fail_msg("mkdtemp: %s", strerror(errno));
        snprintf(nopw, sizeof(nopw), "%s/nopw.properties", root);
        snprintf(pwfile, sizeof(pwfile), "%s/password", root);
        snprintf(wrong, sizeof(wrong), "%s/wrong.properties", root);
        snprintf(badca, sizeof(badca), "%s/badca.properties", root);
        derive(nopw, NULL, NULL);
        derive(wrong, "sasl.password = not-the-password", NULL);
        char line[200];
        snprintf(line, sizeof(line), "%s\n", password);
        write_file(pwfile, line);
        /* A CA that did not sign the broker's certificate. */
        char cmd[1200], otherca[300];
        snprintf(otherca, sizeof(otherca), "%s/other-ca.crt", root);
        snprintf(cmd, sizeof(cmd),
                 "openssl req -x509 -newkey rsa:2048 -nodes -days 1 "
                 "-subj '/CN=not kpay' -keyout '%s/other-ca.key' -out '%s' "
                 ">/dev/null 2>&1",
                 root, otherca);
        if (system(cmd) != 0)
                fail_msg("openssl could not make a CA: %s", cmd);
        derive(badca, NULL, otherca);
        clear_kafka_env();
        return 0;
}

static int teardown(void **state) {
        (void)state;
        it_daemon_t *all[] = {&inflight, &account, &confirmed};
        it_daemons_teardown(all, 3, root);
        return 0;
}

/* Fails when @p text contains the password. */
static void assert_no_password(const char *text, const char *where) {
        if (text && strstr(text, password))
                fail_msg("the SASL password shows in %s", where);
}

static char *slurp(const char *path) {
        FILE *fp = fopen(path, "r");
        if (!fp)
                fail_msg("open %s: %s", path, strerror(errno));
        size_t cap = 1 << 16, len = 0;
        char *buf = malloc(cap);
        size_t n;
        while (buf && (n = fread(buf + len, 1, cap - len - 1, fp)) > 0) {
                len += n;
                if (cap - len < 2)
                        buf = realloc(buf, cap *= 2);
        }
        fclose(fp);
        if (!buf)
                fail_msg("out of memory");
        buf[len] = '\0';
        return buf;
}

/* Every HTTP answer a daemon gives about itself: no password; /v1/config
 * shows the properties in use, the password masked. */
static void check_daemon_shows_no_secret(it_daemon_t *d) {
        static const char *const paths[] = {"/v1/config", "/metrics",
                                            "/healthz", "/readyz"};
        for (size_t i = 0; i < sizeof(paths) / sizeof(*paths); i++) {
                char *body = NULL, where[200];
                int st     = it_http_get(d->endpoint, paths[i], &body);
                if (st != 200)
                        fail_msg("%s %s: HTTP %d", d->id, paths[i], st);
                snprintf(where, sizeof(where), "%s %s", d->id, paths[i]);
                assert_no_password(body, where);
                free(body);
        }
        json_t *cfg     = it_get_json(d->endpoint, "/v1/config", 200);
        json_t *clients = json_object_get(cfg, "kafka");
        const char *name;
        json_t *props;
        int seen = 0;
        json_object_foreach(clients, name, props) {
                const char *proto = json_string_value(
                    json_object_get(props, "security.protocol"));
                const char *pw =
                    json_string_value(json_object_get(props, "sasl.password"));
                if (!proto || strcmp(proto, "sasl_ssl") || !pw ||
                    strcmp(pw, "********"))
                        fail_msg(
                            "%s client %s: security.protocol %s, "
                            "sasl.password %s",
                            d->id, name, proto ? proto : "none",
                            pw ? "shown" : "none");
                seen++;
        }
        assert_true(seen >= 1);
        json_decref(cfg);
        char *log = slurp(d->log);
        assert_no_password(log, d->log);
        free(log);
}

/* The JSON summary kpay-gen --json prints (the line that parses as an
 * object with "expected"). */
static json_t *summary_of(const char *out) {
        json_t *found = NULL;
        for (const char *p = out; p && *p;) {
                const char *nl = strchr(p, '\n');
                size_t len     = nl ? (size_t)(nl - p) : strlen(p);
                if (len && *p == '{') {
                        json_error_t jerr;
                        json_t *j = json_loadb(p, len, 0, &jerr);
                        if (j && json_object_get(j, "expected")) {
                                json_decref(found);
                                found = j;
                        } else {
                                json_decref(j);
                        }
                }
                p = nl ? nl + 1 : NULL;
        }
        if (!found)
                fail_msg("kpay-gen printed no summary:\n%s", out);
        return found;
}

static int64_t jint(json_t *j, const char *key) {
        json_t *v = json_object_get(j, key);
        if (!json_is_integer(v))
                fail_msg("no integer %s in the summary", key);
        return json_integer_value(v);
}

static void test_pipeline_over_sasl_ssl(void **state) {
        (void)state;
        char *out = NULL;
        /* kpay-admin: --kafka-config, the fixture's file as written. */
        char parts[8];
        snprintf(parts, sizeof(parts), "%d", PARTITIONS);
        char *const admin[] = {(char *)it_env_bin("KPAY_ADMIN_BIN"),
                               "topics",
                               "-b",
                               (char *)it_bootstrap(),
                               "--topic-prefix",
                               prefix,
                               "--partitions",
                               parts,
                               "--kafka-config",
                               full,
                               NULL};
        int rc              = it_run(admin, 120000, &out);
        if (rc != 0)
                fail_msg("kpay-admin topics exited %d:\n%s", rc, out);
        assert_no_password(out, "kpay-admin's output");
        free(out);

        /* The processors: KPAY_KAFKA_CONFIG without the password, which
         * comes from KPAY_KAFKA_PASSWORD_FILE (kpay-account) or from
         * KPAY_KAFKA_SASL_PASSWORD (the two others). */
        it_daemon_init(&inflight, "KPAY_INFLIGHT_BIN", root, "inflight-1");
        it_daemon_init(&account, "KPAY_ACCOUNT_BIN", root, "account-1");
        it_daemon_init(&confirmed, "KPAY_CONFIRMED_BIN", root, "confirmed-1");
        it_daemon_t *procs[] = {&inflight, &account, &confirmed};
        setenv("KPAY_KAFKA_CONFIG", nopw, 1);
        for (int i = 0; i < 3; i++) {
                if (procs[i] == &account) {
                        setenv("KPAY_KAFKA_PASSWORD_FILE", pwfile, 1);
                        unsetenv("KPAY_KAFKA_SASL_PASSWORD");
                } else {
                        setenv("KPAY_KAFKA_SASL_PASSWORD", password, 1);
                        unsetenv("KPAY_KAFKA_PASSWORD_FILE");
                }
                const char *extra[] = {"--state-dir", procs[i]->state,
                                       "--partitions", parts, NULL};
                it_daemon_spawn(procs[i], prefix, extra);
        }
        clear_kafka_env();
        for (int i = 0; i < 3; i++)
                it_daemon_wait_ready(procs[i], 120000);

        /* kpay-gen: --kafka-config without the password, -X adds it. */
        char xpw[200], count[16];
        snprintf(xpw, sizeof(xpw), "sasl.password=%s", password);
        snprintf(count, sizeof(count), "%d", PAYMENTS);
        char *const gen[] = {(char *)it_env_bin("KPAY_GEN_BIN"),
                             "-b",
                             (char *)it_bootstrap(),
                             "--topic-prefix",
                             prefix,
                             "--kafka-config",
                             nopw,
                             "-X",
                             xpw,
                             "--accounts",
                             "10",
                             "--fund",
                             "--fund-amount",
                             "100000000",
                             "--amount",
                             "100:5000",
                             "--count",
                             count,
                             "--rate",
                             "200",
                             "--wait",
                             "--wait-timeout",
                             "240",
                             "--json",
                             "--quiet",
                             NULL};
        rc                = it_run(gen, 400000, &out);
        if (rc != 0) {
                for (int i = 0; i < 3; i++)
                        it_dump_log(procs[i]->log, 20);
                fail_msg("kpay-gen exited %d:\n%s", rc, out);
        }
        json_t *sum = summary_of(out);
        char *text  = json_dumps(sum, JSON_COMPACT);
        fprintf(stderr, "secure: kpay-gen: %s\n", text ? text : "?");
        free(text);
        /* Every payment COMPLETE (the accounts hold far more than they
         * send), none missing or twice, and the books at 0. */
        /* The payments and the 10 fundings. */
        assert_int_equal(jint(sum, "expected"), PAYMENTS + 10);
        json_t *oc = json_object_get(sum, "outcomes");
        assert_int_equal(jint(oc, "complete"), PAYMENTS + 10);
        assert_int_equal(jint(oc, "rejected"), 0);
        assert_int_equal(jint(sum, "missing"), 0);
        assert_int_equal(jint(sum, "multiple_outcomes"), 0);
        assert_int_equal(jint(sum, "failed"), 0);
        json_t *books = json_object_get(sum, "books");
        assert_true(json_is_true(json_object_get(books, "balanced")));
        const char *cur;
        json_t *amount;
        json_object_foreach(json_object_get(books, "sums"), cur, amount) {
                if (!json_is_string(amount) ||
                    strcmp(json_string_value(amount), "0"))
                        fail_msg("books in %s: not 0", cur);
        }
        json_decref(sum);
        assert_no_password(out, "kpay-gen's output");
        free(out);

        /* The password shows nowhere. */
        for (int i = 0; i < 3; i++)
                check_daemon_shows_no_secret(procs[i]);
        char topic[256];
        kp_topic_name(topic, sizeof(topic), prefix, KP_TOPIC_METADATA);
        it_rec_t *recs = NULL;
        size_t n       = it_read_all(topic, "read_committed", &recs);
        assert_true(n >= 3);
        for (size_t i = 0; i < n; i++)
                assert_no_password(recs[i].value, "an InstanceInfo record");
        it_free_recs(recs, n);
        setenv("KPAY_KAFKA_SASL_PASSWORD", password, 1);
        char *const help[] = {(char *)it_env_bin("KPAY_ACCOUNT_BIN"),
                              "--kafka-config", full, "--help", NULL};
        rc                 = it_run(help, 30000, &out);
        unsetenv("KPAY_KAFKA_SASL_PASSWORD");
        assert_int_equal(rc, 0);
        assert_non_null(strstr(out, "--kafka-config"));
        assert_no_password(out, "kpay-account --help");
        free(out);

        for (int i = 0; i < 3; i++)
                it_daemon_stop(procs[i]);
        for (int i = 0; i < 3; i++) {
                char *log = slurp(procs[i]->log);
                assert_no_password(log, procs[i]->log);
                free(log);
        }
}

/* Runs @p argv, which must fail within FAIL_FAST_MS with exactly one
 * error line that contains @p want. */
static void expect_one_error(char *const argv[], const char *want) {
        char *out  = NULL;
        int64_t t0 = it_now_ms();
        int rc     = it_run(argv, FAIL_FAST_MS, &out);
        int64_t ms = it_now_ms() - t0;
        const char *prog =
            strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
        char plain[80];
        snprintf(plain, sizeof(plain), "%s: ", prog);
        int errors = 0, lines = 0;
        const char *match = NULL;
        for (const char *p = out; p && *p;) {
                const char *nl = strchr(p, '\n');
                size_t len     = nl ? (size_t)(nl - p) : strlen(p);
                char line[2048];
                snprintf(line, sizeof(line), "%.*s", (int)len, p);
                lines++;
                /* kpay's logfmt lines at error level and above, and the
                 * tools' plain "prog: reason" lines. */
                if (strstr(line, " level=error ") ||
                    strstr(line, " level=fatal ") ||
                    !strncmp(line, plain, strlen(plain))) {
                        errors++;
                        if (strstr(line, want))
                                match = p;
                }
                p = nl ? nl + 1 : NULL;
        }
        fprintf(stderr, "secure: %s exited %d after %" PRId64 " ms, %d lines\n",
                prog, rc, ms, lines);
        if (rc <= 0 || errors != 1 || !match)
                fail_msg("%s: exit %d after %" PRId64
                         " ms, %d error lines (want 1 with \"%s\"):\n%s",
                         prog, rc, ms, errors, want, out);
        assert_no_password(out, prog);
        free(out);
}

static void test_wrong_credentials_fail_fast(void **state) {
        (void)state;
        char listen[40], sdir[300];
        /* kpay-admin: the wrong password in its --kafka-config. */
        char *const admin[] = {(char *)it_env_bin("KPAY_ADMIN_BIN"),
                               "topics",
                               "-b",
                               (char *)it_bootstrap(),
                               "--topic-prefix",
                               prefix,
                               "--kafka-config",
                               wrong,
                               NULL};
        expect_one_error(admin, "Kafka refused this client's SASL credentials");
        /* ... a CA that did not sign the broker's certificate. */
        char *const admin_ca[] = {(char *)it_env_bin("KPAY_ADMIN_BIN"),
                                  "wait",
                                  "-b",
                                  (char *)it_bootstrap(),
                                  "--kafka-config",
                                  badca,
                                  "-X",
                                  "sasl.password=irrelevant",
                                  NULL};
        expect_one_error(admin_ca, "Kafka TLS handshake failed");

        /* kpay-gen: the right file, a wrong KPAY_KAFKA_SASL_PASSWORD over
         * it. */
        setenv("KPAY_KAFKA_SASL_PASSWORD", "not-the-password", 1);
        char *const gen[] = {(char *)it_env_bin("KPAY_GEN_BIN"),
                             "-b",
                             (char *)it_bootstrap(),
                             "--topic-prefix",
                             prefix,
                             "--kafka-config",
                             full,
                             "--count",
                             "10",
                             NULL};
        expect_one_error(gen, "Kafka refused this client's SASL credentials");
        unsetenv("KPAY_KAFKA_SASL_PASSWORD");

        /* A processor: the wrong password through KPAY_KAFKA_CONFIG. */
        snprintf(listen, sizeof(listen), "127.0.0.1:%d", it_free_port());
        snprintf(sdir, sizeof(sdir), "%s/wrong-account", root);
        setenv("KPAY_KAFKA_CONFIG", wrong, 1);
        char *const acct[] = {(char *)it_env_bin("KPAY_ACCOUNT_BIN"),
                              "-b",
                              (char *)it_bootstrap(),
                              "--topic-prefix",
                              prefix,
                              "--instance-id",
                              "wrong-1",
                              "--listen",
                              listen,
                              "--state-dir",
                              sdir,
                              NULL};
        expect_one_error(acct, "Kafka refused this client's SASL credentials");
        unsetenv("KPAY_KAFKA_CONFIG");

        /* A service (kp_service, not a processor): the right file, a
         * wrong -X sasl.password on top. */
        snprintf(listen, sizeof(listen), "127.0.0.1:%d", it_free_port());
        char *const ctl[] = {(char *)it_env_bin("KPAY_CONTROL_BIN"),
                             "-b",
                             (char *)it_bootstrap(),
                             "--topic-prefix",
                             prefix,
                             "--instance-id",
                             "wrong-ctl",
                             "--listen",
                             listen,
                             "--kafka-config",
                             full,
                             "-X",
                             "sasl.password=not-the-password",
                             NULL};
        expect_one_error(ctl, "Kafka refused this client's SASL credentials");
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_pipeline_over_sasl_ssl),
            cmocka_unit_test(test_wrong_credentials_fail_fast),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
