/* Unit tests of kp_service (the lifecycle state machine), of the
 * processor's transaction state machine and commit decision, and of
 * kp_kafka_conf_build()'s require/default semantics and the defaults of
 * every client. No broker: nothing here connects. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "kpay/kp_app.h"
#include "kpay/kp_kafka.h"
#include "kpay/kp_proc.h"
#include "kpay/kp_service.h"

/* Every legal lifecycle transition, and nothing else. */
static void test_state_transitions(void **state) {
        (void)state;
        static const struct {
                kp_svc_state_t from, to;
        } legal[] = {
            {KP_SVC_STARTING, KP_SVC_RESTORING},
            {KP_SVC_STARTING, KP_SVC_RUNNING},
            {KP_SVC_STARTING, KP_SVC_STOPPING},
            {KP_SVC_STARTING, KP_SVC_FAILED},
            {KP_SVC_RESTORING, KP_SVC_RUNNING},
            {KP_SVC_RESTORING, KP_SVC_STOPPING},
            {KP_SVC_RESTORING, KP_SVC_FAILED},
            {KP_SVC_RUNNING, KP_SVC_RESTORING},
            {KP_SVC_RUNNING, KP_SVC_STOPPING},
            {KP_SVC_RUNNING, KP_SVC_FAILED},
            {KP_SVC_STOPPING, KP_SVC_FAILED},
        };
        int cnt = 0;
        for (int f = 0; f < KP_SVC__CNT; f++)
                for (int t = 0; t < KP_SVC__CNT; t++) {
                        int want = 0;
                        for (size_t i = 0; i < sizeof(legal) / sizeof(*legal);
                             i++)
                                if (legal[i].from == (kp_svc_state_t)f &&
                                    legal[i].to == (kp_svc_state_t)t)
                                        want = 1;
                        assert_int_equal(
                            kp_svc_state_transition_valid((kp_svc_state_t)f,
                                                          (kp_svc_state_t)t),
                            want);
                        cnt += want;
                }
        assert_int_equal(cnt, (int)(sizeof(legal) / sizeof(*legal)));
        assert_int_equal(
            kp_svc_state_transition_valid(KP_SVC__CNT, KP_SVC_RUNNING), 0);
        assert_string_equal(kp_svc_state2str(KP_SVC_RESTORING), "RESTORING");
        assert_string_equal(kp_svc_state2str(KP_SVC__CNT), "UNKNOWN");
}

static void test_txn_transitions(void **state) {
        (void)state;
        assert_true(kp_txn_transition_valid(KP_TXN_IDLE, KP_TXN_OPEN));
        assert_true(kp_txn_transition_valid(KP_TXN_OPEN, KP_TXN_IDLE));
        assert_true(kp_txn_transition_valid(KP_TXN_OPEN, KP_TXN_MUST_ABORT));
        assert_true(kp_txn_transition_valid(KP_TXN_MUST_ABORT, KP_TXN_IDLE));
        /* A transaction that must abort never goes back to open, and an
         * idle one cannot be doomed. */
        assert_false(kp_txn_transition_valid(KP_TXN_MUST_ABORT, KP_TXN_OPEN));
        assert_false(kp_txn_transition_valid(KP_TXN_IDLE, KP_TXN_MUST_ABORT));
        assert_false(kp_txn_transition_valid(KP_TXN_IDLE, KP_TXN_IDLE));
        assert_string_equal(kp_txn_state2str(KP_TXN_MUST_ABORT), "MUST_ABORT");
        assert_string_equal(kp_txn_state2str(KP_TXN__CNT), "UNKNOWN");
}

/* An app with the common options of a service, from @p argv. */
static kp_app_t *new_app(int argc, char **argv) {
        static const kp_app_def_t def = {
            .name   = "test-service",
            .groups = KP_APP_CLIENT | KP_APP_SERVICE,
        };
        int rc        = -1;
        kp_app_t *app = kp_app_new(&def, argc, argv, &rc);
        assert_non_null(app);
        return app;
}

/* A service refuses an illegal transition and stays where it was. */
static void test_service_refuses_illegal(void **state) {
        (void)state;
        char *argv[]           = {"test-service", "--instance-id", "t1",
                                  "--listen",     "127.0.0.1:0",   NULL};
        kp_app_t *app          = new_app(5, argv);
        kp_service_conf_t conf = {.heartbeat_ms        = 5000,
                                  .http_threads        = 1,
                                  .shutdown_timeout_ms = 1000};
        char errstr[256];
        kp_service_t *svc =
            kp_service_new(app, &conf, "test", errstr, sizeof(errstr));
        assert_non_null(svc);
        assert_int_equal(kp_service_state(svc), KP_SVC_STARTING);
        assert_string_equal(kp_service_instance(svc), "t1");
        assert_null(kp_service_endpoint(svc)); /* not started */
        assert_int_equal(kp_service_set_state(svc, KP_SVC_RUNNING), KP_OK);
        assert_int_equal(kp_service_set_state(svc, KP_SVC_RUNNING), KP_OK);
        assert_int_equal(kp_service_set_state(svc, KP_SVC_STARTING),
                         KP_ERR_STATE);
        assert_int_equal(kp_service_state(svc), KP_SVC_RUNNING);
        assert_int_equal(kp_service_set_state(svc, KP_SVC_RESTORING), KP_OK);
        assert_int_equal(kp_service_set_state(svc, KP_SVC_STOPPING), KP_OK);
        assert_int_equal(kp_service_set_state(svc, KP_SVC_RUNNING),
                         KP_ERR_STATE);
        assert_int_equal(kp_service_set_state(svc, KP_SVC_FAILED), KP_OK);
        assert_int_equal(kp_service_set_state(svc, KP_SVC_STOPPING),
                         KP_ERR_STATE);
        assert_int_equal(kp_service_state(svc), KP_SVC_FAILED);
        kp_service_destroy(svc);
        kp_service_destroy(NULL);
        kp_app_destroy(app);
}

static void test_service_needs_listen(void **state) {
        (void)state;
        char *argv[]           = {"test-service", "--instance-id", "t1",
                                  "--listen",     "nonsense",      NULL};
        kp_app_t *app          = new_app(5, argv);
        kp_service_conf_t conf = {.heartbeat_ms        = 5000,
                                  .http_threads        = 1,
                                  .shutdown_timeout_ms = 1000};
        char errstr[256]       = "";
        assert_null(kp_service_new(app, &conf, "test", errstr, sizeof(errstr)));
        assert_true(strlen(errstr) > 0);
        assert_null(kp_service_new(app, &conf, "", errstr, sizeof(errstr)));
        kp_app_destroy(app);
}

static char *conf_get(rd_kafka_conf_t *conf, const char *name) {
        static char buf[512];
        size_t size = sizeof(buf);
        assert_int_equal(rd_kafka_conf_get(conf, name, buf, &size),
                         RD_KAFKA_CONF_OK);
        return buf;
}

/* -X overrides a default but not a requirement. */
static void test_conf_build(void **state) {
        (void)state;
        char *argv[]                         = {"test-service",
                                                "-X",
                                                "linger.ms=0",
                                                "-X",
                                                "isolation.level=read_uncommitted",
                                                "-X",
                                                "fetch.wait.max.ms=77",
                                                "-X",
                                                "delivery.timeout.ms=4000",
                                                NULL};
        kp_app_t *app                        = new_app(9, argv);
        static const kp_kafka_prop_t props[] = {
            {"linger.ms", "5", KP_PROP_DEFAULT},
            {"isolation.level", "read_committed", KP_PROP_REQUIRE},
            {"enable.auto.commit", "false", KP_PROP_REQUIRE},
            {"session.timeout.ms", "12000", KP_PROP_DEFAULT},
            /* -X gave it under its alias delivery.timeout.ms: kept. */
            {"message.timeout.ms", "60000", KP_PROP_DEFAULT},
            {"group.instance.id", NULL, KP_PROP_REQUIRE}, /* skipped */
            {NULL},
        };
        char errstr[256];
        rd_kafka_conf_t *conf = kp_kafka_conf_build(
            kp_app_conf(app), "cid", props, errstr, sizeof(errstr));
        assert_non_null(conf);
        assert_string_equal(conf_get(conf, "linger.ms"), "0");
        assert_string_equal(conf_get(conf, "isolation.level"),
                            "read_committed");
        assert_string_equal(conf_get(conf, "enable.auto.commit"), "false");
        assert_string_equal(conf_get(conf, "session.timeout.ms"), "12000");
        assert_string_equal(conf_get(conf, "fetch.wait.max.ms"), "77");
        assert_string_equal(conf_get(conf, "message.timeout.ms"), "4000");
        assert_string_equal(conf_get(conf, "client.id"), "cid");
        rd_kafka_conf_destroy(conf);

        /* A bad value in a table row is an error naming the property. */
        static const kp_kafka_prop_t bad[] = {
            {"linger.ms", "soon", KP_PROP_REQUIRE},
            {NULL},
        };
        assert_null(kp_kafka_conf_build(kp_app_conf(app), "cid", bad, errstr,
                                        sizeof(errstr)));
        assert_non_null(strstr(errstr, "linger.ms"));
        kp_app_destroy(app);
}

/* A default only some librdkafka builds know: set where known, skipped
 * where not, -X wins, and a bad value is still an error. */
static void test_conf_build_if_known(void **state) {
        (void)state;
        char errstr[256];
        char *plain[]                        = {"test", NULL};
        kp_app_t *app                        = new_app(1, plain);
        static const kp_kafka_prop_t props[] = {
            {"kpay.no.such.property", "1", KP_PROP_DEFAULT_IF_KNOWN},
            {"linger.ms", "7", KP_PROP_DEFAULT_IF_KNOWN},
            {NULL},
        };
        rd_kafka_conf_t *conf = kp_kafka_conf_build(
            kp_app_conf(app), "cid", props, errstr, sizeof(errstr));
        assert_non_null(conf);
        assert_string_equal(conf_get(conf, "linger.ms"), "7");
        rd_kafka_conf_destroy(conf);

        static const kp_kafka_prop_t bad[] = {
            {"linger.ms", "soon", KP_PROP_DEFAULT_IF_KNOWN},
            {NULL},
        };
        assert_null(kp_kafka_conf_build(kp_app_conf(app), "cid", bad, errstr,
                                        sizeof(errstr)));
        assert_non_null(strstr(errstr, "linger.ms"));
        kp_app_destroy(app);

        char *argv[] = {"test", "-X", "linger.ms=3", NULL};
        app          = new_app(3, argv);
        conf = kp_kafka_conf_build(kp_app_conf(app), "cid", props, errstr,
                                   sizeof(errstr));
        assert_non_null(conf);
        assert_string_equal(conf_get(conf, "linger.ms"), "3");
        rd_kafka_conf_destroy(conf);
        kp_app_destroy(app);
}

/* Nagle is off on every client unless -X turns it back on. */
static void test_client_defaults(void **state) {
        (void)state;
        char errstr[256];
        char *plain[]         = {"test", NULL};
        kp_app_t *app         = new_app(1, plain);
        rd_kafka_conf_t *conf = kp_kafka_conf_build(
            kp_app_conf(app), "cid", NULL, errstr, sizeof(errstr));
        assert_non_null(conf);
        assert_string_equal(conf_get(conf, "socket.nagle.disable"), "true");
        rd_kafka_conf_destroy(conf);
        kp_app_destroy(app);

        char *argv[] = {"test", "-X", "socket.nagle.disable=false", NULL};
        app          = new_app(3, argv);
        conf = kp_kafka_conf_build(kp_app_conf(app), "cid", NULL, errstr,
                                   sizeof(errstr));
        assert_non_null(conf);
        assert_string_equal(conf_get(conf, "socket.nagle.disable"), "false");
        rd_kafka_conf_destroy(conf);
        kp_app_destroy(app);
}

/* The commit decision: drained input commits once the minimum interval
 * has passed since the last commit; under load the transaction grows to
 * the cap (time or records), whichever comes first. Times are given, not
 * measured. */
static void test_commit_policy(void **state) {
        (void)state;
        const kp_commit_policy_t p = {
            .min_interval_ms = 10, .max_interval_ms = 100, .max_records = 50};
        /* Last commit at 1000, a record arrived at 1003. */
        kp_commit_state_t st = {
            .txn_started_ms = 1003, .last_commit_ms = 1000, .records = 1};
        /* Drained, but too soon after the last commit: wait for 1010. */
        assert_false(kp_commit_due(&p, &st, 1, 1004));
        assert_int_equal(kp_commit_wait_ms(&p, &st, 1004), 6);
        /* Drained and the minimum interval passed: commit. */
        assert_true(kp_commit_due(&p, &st, 1, 1010));
        assert_int_equal(kp_commit_wait_ms(&p, &st, 1010), 0);
        /* Records still coming: no commit before the cap... */
        assert_false(kp_commit_due(&p, &st, 0, 1010));
        assert_false(kp_commit_due(&p, &st, 0, 1102));
        /* ...which is 100 ms after the transaction began. */
        assert_true(kp_commit_due(&p, &st, 0, 1103));
        /* A lone record long after the last commit commits at once. */
        kp_commit_state_t idle = {
            .txn_started_ms = 5000, .last_commit_ms = 1000, .records = 1};
        assert_true(kp_commit_due(&p, &idle, 1, 5000));
        /* The record cap holds whatever the clock says. */
        kp_commit_state_t full = {
            .txn_started_ms = 1003, .last_commit_ms = 1000, .records = 50};
        assert_true(kp_commit_due(&p, &full, 0, 1004));
        assert_int_equal(kp_commit_wait_ms(&p, &full, 1004), 0);
        full.records = 49;
        assert_false(kp_commit_due(&p, &full, 0, 1004));
        /* The wait never passes the cap, even with a larger minimum. */
        const kp_commit_policy_t slow = {
            .min_interval_ms = 500, .max_interval_ms = 100, .max_records = 50};
        assert_int_equal(kp_commit_wait_ms(&slow, &st, 1004), 99);
        assert_false(kp_commit_due(&slow, &st, 1, 1102));
        assert_true(kp_commit_due(&slow, &st, 1, 1103));
        /* A minimum of 0 commits whenever the input is drained. */
        const kp_commit_policy_t eager = {
            .min_interval_ms = 0, .max_interval_ms = 100, .max_records = 50};
        assert_true(kp_commit_due(&eager, &st, 1, 1003));
        assert_false(kp_commit_due(&eager, &st, 0, 1003));
}

static void test_secrets(void **state) {
        (void)state;
        assert_true(kp_kafka_prop_is_secret("sasl.password"));
        assert_true(kp_kafka_prop_is_secret("ssl.key.password"));
        assert_true(kp_kafka_prop_is_secret("ssl.key.pem"));
        assert_true(kp_kafka_prop_is_secret("ssl.keystore.password"));
        assert_true(kp_kafka_prop_is_secret("sasl.oauthbearer.client.secret"));
        assert_false(kp_kafka_prop_is_secret("sasl.username"));
        assert_false(kp_kafka_prop_is_secret("linger.ms"));
}

/* ------------------------------------------------------------------------
 * --kafka-config, the SASL password and -X (kp_kafka_config_apply()). */

/* Writes @p text to a new temporary file; returns its path (static). */
static const char *tmpfile_with(const char *text) {
        static char paths[4][64];
        static int next;
        char *path = paths[next++ % 4];
        snprintf(path, 64, "/tmp/kpay-test-kconf-XXXXXX");
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, strlen(text)), (int)strlen(text));
        close(fd);
        return path;
}

static void unset_kafka_env(void) {
        unsetenv("KPAY_KAFKA_CONFIG");
        unsetenv("KPAY_KAFKA_PASSWORD_FILE");
        unsetenv("KPAY_KAFKA_SASL_PASSWORD");
        unsetenv("KPAY_KAFKA");
}

/* kp_app_new() of a client with @p argv: NULL with *rcp on an error. */
static kp_app_t *client_app(char **argv, int *rcp) {
        static const kp_app_def_t def = {.name   = "test-client",
                                         .groups = KP_APP_CLIENT};
        int argc                      = 0;
        while (argv[argc])
                argc++;
        *rcp = -1;
        return kp_app_new(&def, argc, argv, rcp);
}

static const char *kv(kp_app_t *app, const char *key) {
        return kp_conf_kv_get(&kp_app_conf(app)->kafka, key);
}

/* The file's properties, the password from the environment, and -X over
 * both; the file's values count as the user's against a default row. */
static void test_kafka_config_precedence(void **state) {
        (void)state;
        unset_kafka_env();
        const char *file = tmpfile_with(
            "# the cluster\n"
            "security.protocol = SASL_SSL\n"
            "sasl.mechanisms: SCRAM-SHA-512\n"
            "sasl.username=kpay\n"
            "sasl.password=from-file\n"
            "linger.ms=7\n"
            "fetch.wait.max.ms=250\n");
        char *argv[] = {"test", "--kafka-config", (char *)file,
                        "-X",   "linger.ms=9",    NULL};
        int rc;
        kp_app_t *app = client_app(argv, &rc);
        assert_non_null(app);
        assert_string_equal(kv(app, "security.protocol"), "SASL_SSL");
        assert_string_equal(kv(app, "sasl.mechanisms"), "SCRAM-SHA-512");
        assert_string_equal(kv(app, "sasl.password"), "from-file");
        assert_string_equal(kv(app, "linger.ms"), "9");
        static const kp_kafka_prop_t props[] = {
            {"fetch.wait.max.ms", "100", KP_PROP_DEFAULT},
            {"linger.ms", "5", KP_PROP_DEFAULT},
            {NULL},
        };
        char errstr[256];
        rd_kafka_conf_t *conf = kp_kafka_conf_build(
            kp_app_conf(app), "cid", props, errstr, sizeof(errstr));
        assert_non_null(conf);
        assert_string_equal(conf_get(conf, "fetch.wait.max.ms"), "250");
        assert_string_equal(conf_get(conf, "linger.ms"), "9");
        assert_string_equal(conf_get(conf, "security.protocol"), "sasl_ssl");
        assert_string_equal(conf_get(conf, "sasl.username"), "kpay");
        rd_kafka_conf_destroy(conf);
        kp_app_destroy(app);

        /* The environment's password over the file's, the file from
         * KPAY_KAFKA_CONFIG. */
        setenv("KPAY_KAFKA_CONFIG", file, 1);
        setenv("KPAY_KAFKA_SASL_PASSWORD", "from-env", 1);
        char *plain[] = {"test", NULL};
        app           = client_app(plain, &rc);
        assert_non_null(app);
        assert_string_equal(kv(app, "sasl.password"), "from-env");
        assert_string_equal(kv(app, "linger.ms"), "7");
        kp_app_destroy(app);

        /* -X over the environment's password. */
        char *x[] = {"test", "-X", "sasl.password=from-x", NULL};
        app       = client_app(x, &rc);
        assert_non_null(app);
        assert_string_equal(kv(app, "sasl.password"), "from-x");
        kp_app_destroy(app);

        /* A password file: its first line, without the line end. */
        unsetenv("KPAY_KAFKA_SASL_PASSWORD");
        const char *pw = tmpfile_with("s3cr3t with space\r\nsecond line\n");
        setenv("KPAY_KAFKA_PASSWORD_FILE", pw, 1);
        app = client_app(plain, &rc);
        assert_non_null(app);
        assert_string_equal(kv(app, "sasl.password"), "s3cr3t with space");
        kp_app_destroy(app);

        /* Both ways at once, an empty file, a missing file: errors. */
        setenv("KPAY_KAFKA_SASL_PASSWORD", "from-env", 1);
        assert_null(client_app(plain, &rc));
        assert_int_equal(rc, 2);
        unsetenv("KPAY_KAFKA_SASL_PASSWORD");
        const char *empty = tmpfile_with("\nsecond\n");
        setenv("KPAY_KAFKA_PASSWORD_FILE", empty, 1);
        assert_null(client_app(plain, &rc));
        assert_int_equal(rc, 2);
        unlink(empty);
        assert_null(client_app(plain, &rc));
        assert_int_equal(rc, 2);
        unlink(pw);
        unlink(file);
        unset_kafka_env();
}

/* What a bad file is told: FILE:LINE and why, never a secret. */
static void test_kafka_config_errors(void **state) {
        (void)state;
        unset_kafka_env();
        static const struct {
                const char *text;
                const char *want;
        } cases[] = {
            {"sasl.password=hunter2\nsasl.mechanisms=SCRAM-SHA-512\n"
             "no.such.property=1\n",
             ":3: Kafka property no.such.property=1: No such configuration "
             "property"},
            {"sasl.password=hunter2\nsasl.jaas.config=org.x required;\n",
             ":2: Kafka property sasl.jaas.config: Java JAAS configuration "
             "is not supported"},
            {"\n\nsecurity.protocol=TLS\n",
             ":3: Kafka property "
             "security.protocol=TLS: Invalid "
             "value"},
            {"sasl.password=hunter2\nbootstrap.servers=b:9092\n",
             ":2: bootstrap.servers: give the brokers with "
             "--bootstrap-servers"},
            {"client.id=me\n", ":1: client.id: kpay names each client"},
            {"sasl.password=hunter2\nsasl.username\n",
             ":2: sasl.username has no value"},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
                const char *file = tmpfile_with(cases[i].text);
                kp_app_conf_t c  = {.kafka_config = (char *)file};
                char errstr[512];
                assert_int_equal(
                    kp_kafka_config_apply(&c, errstr, sizeof(errstr)),
                    KP_ERR_CONFIG);
                char want[600];
                snprintf(want, sizeof(want), "--kafka-config %s%s", file,
                         cases[i].want);
                if (strncmp(errstr, want, strlen(want)))
                        fail_msg("case %zu: got \"%s\", want \"%s...\"", i,
                                 errstr, want);
                assert_null(strstr(errstr, "hunter2"));
                assert_int_equal(c.kafka.cnt, 0);
                unlink(file);
        }
        kp_app_conf_t c = {.kafka_config = "/nonexistent/kafka.properties"};
        char errstr[512];
        assert_int_equal(kp_kafka_config_apply(&c, errstr, sizeof(errstr)),
                         KP_ERR_CONFIG);
        assert_non_null(
            strstr(errstr, "cannot open /nonexistent/kafka.properties"));
        /* librdkafka's reason for a secret is shown unless it quotes the
         * value. */
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        assert_int_equal(kp_kafka_conf_set(conf, "sasl.password.bogus",
                                           "hunter2", errstr, sizeof(errstr)),
                         KP_ERR_CONFIG);
        assert_string_equal(errstr,
                            "Kafka property sasl.password.bogus: No "
                            "such configuration property: "
                            "\"sasl.password.bogus\"");
        rd_kafka_conf_destroy(conf);
}

/* librdkafka's broker-failure lines that mean "refused": noticed once,
 * fatal until the cluster has accepted the process. */
static void test_auth_failure_lines(void **state) {
        (void)state;
        char why[700];
        assert_false(kp_kafka_auth_failure(why, sizeof(why)));
        /* An ordinary disconnect is not one. */
        kp_kafka_log_cb(NULL, 6, "FAIL",
                        "[thrd:127.0.0.1:9092/bootstrap]: 127.0.0.1:9092/"
                        "bootstrap: Disconnected (after 1ms in state UP)");
        kp_kafka_log_cb(NULL, 3, "FAIL",
                        "b: Connect to ipv4#127.0.0.1:9 "
                        "failed: Connection refused");
        /* A broker going away while authenticating, or a TLS handshake
         * cut short: retried, not refused. */
        kp_kafka_log_cb(NULL, 3, "FAIL",
                        "GroupCoordinator: SASL authentication error: "
                        "SaslAuthenticateRequest failed: Local: Broker "
                        "transport failure (after 0ms in state DOWN)");
        kp_kafka_log_cb(NULL, 3, "FAIL",
                        "b: SSL handshake failed: error:0A000126:SSL "
                        "routines::unexpected eof while reading (after 3ms "
                        "in state SSL_HANDSHAKE)");
        /* Not at an error level: not a failure either. */
        kp_kafka_log_cb(NULL, 7, "FAIL",
                        "b: SASL authentication error: Authentication "
                        "failed");
        assert_false(kp_kafka_auth_failure(why, sizeof(why)));
        kp_kafka_log_cb(
            NULL, 3, "FAIL",
            "[thrd:sasl_ssl://127.0.0.1:1/bootstrap]: sasl_ssl://127.0.0.1:1/"
            "bootstrap: SASL authentication error: Authentication failed "
            "during authentication due to invalid credentials with SASL "
            "mechanism SCRAM-SHA-512 (after 300ms in state AUTH_REQ)");
        assert_true(kp_kafka_auth_failure(why, sizeof(why)));
        assert_string_equal(
            why,
            "Kafka refused this client's SASL credentials: "
            "sasl_ssl://127.0.0.1:1/bootstrap: SASL authentication error: "
            "Authentication failed during authentication due to invalid "
            "credentials with SASL mechanism SCRAM-SHA-512 (after 300ms in "
            "state AUTH_REQ); check sasl.mechanisms, sasl.username and "
            "sasl.password (--kafka-config, KPAY_KAFKA_SASL_PASSWORD or "
            "--kafka-password-file; docs/security.md)");
        /* The first reason stays. */
        kp_kafka_log_cb(NULL, 3, "FAIL",
                        "b: SSL handshake failed: error:0A000086:SSL "
                        "routines::certificate verify failed");
        char again[700];
        assert_true(kp_kafka_auth_failure(again, sizeof(again)));
        assert_string_equal(again, why);
        /* Once the cluster has accepted the process, never fatal. */
        kp_kafka_mark_ready();
        assert_false(kp_kafka_auth_failure(why, sizeof(why)));
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_state_transitions),
            cmocka_unit_test(test_txn_transitions),
            cmocka_unit_test(test_service_refuses_illegal),
            cmocka_unit_test(test_service_needs_listen),
            cmocka_unit_test(test_conf_build),
            cmocka_unit_test(test_conf_build_if_known),
            cmocka_unit_test(test_client_defaults),
            cmocka_unit_test(test_commit_policy),
            cmocka_unit_test(test_secrets),
            cmocka_unit_test(test_kafka_config_precedence),
            cmocka_unit_test(test_kafka_config_errors),
            cmocka_unit_test(test_auth_failure_lines),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
