/* Integration tests of kp_service daemons that are not stream processors
 * (kpay-control, whose control plane integration.control tests, and
 * kpay-web), as real processes on the fixture's broker: the service part:
 * health, readiness, metrics and configuration over HTTP; InstanceInfo on
 * kpay.metadata while running; a tombstone and exit status 0 after SIGTERM. */
#include <errno.h>
#include <jansson.h>
#include <setjmp.h>
#include <signal.h>
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
#include "kpay/kp_topics.h"

/* The last InstanceInfo record of @p key on @p topic: 1 with its state in
 * @p state ("" for a tombstone), 0 when there is none yet. */
static int last_info(const char *topic, const char *key, char *state,
                     size_t size, char *endpoint, size_t esize) {
        it_rec_t *recs;
        size_t cnt = it_read_all(topic, "read_committed", &recs);
        int found  = 0;
        for (size_t i = 0; i < cnt; i++) {
                if (!recs[i].key || strcmp(recs[i].key, key))
                        continue;
                found    = 1;
                state[0] = endpoint[0] = '\0';
                if (!recs[i].value)
                        continue;
                json_error_t jerr;
                json_t *j = json_loads(recs[i].value, 0, &jerr);
                if (!j)
                        fail_msg("InstanceInfo is not JSON: %s", recs[i].value);
                const char *st = json_string_value(json_object_get(j, "state"));
                const char *ep =
                    json_string_value(json_object_get(j, "endpoint"));
                snprintf(state, size, "%s", st ? st : "?");
                snprintf(endpoint, esize, "%s", ep ? ep : "?");
                json_decref(j);
        }
        it_free_recs(recs, cnt);
        return found;
}

/* Runs the daemon of @p bin_env as a kp_service and checks everything a
 * service owes: endpoints, its InstanceInfo, its tombstone. */
static void check_service(const char *bin_env, const char *service) {
        const char *bin = getenv(bin_env);
        if (!bin)
                fail_msg("%s is not set: run through ctest", bin_env);
        char prefix[64], meta[256], endpoint[32], log[256], key[128];
        it_unique_prefix(prefix, sizeof(prefix), service);
        kp_topic_name(meta, sizeof(meta), prefix, KP_TOPIC_METADATA);
        const char *topics[] = {meta, NULL};
        it_create_topics(topics, 1, 1);
        snprintf(endpoint, sizeof(endpoint), "127.0.0.1:%d", it_free_port());
        snprintf(log, sizeof(log), "/tmp/kpay-it-%s-%ld.log", service,
                 (long)getpid());
        snprintf(key, sizeof(key), "%s/s1", service);
        char *argv[] = {(char *)bin,
                        "-b",
                        (char *)it_bootstrap(),
                        "--topic-prefix",
                        prefix,
                        "--instance-id",
                        "s1",
                        "--listen",
                        endpoint,
                        "--heartbeat-ms",
                        "500",
                        NULL};
        pid_t pid    = it_spawn(argv, log);

        int64_t deadline = it_now_ms() + 60000;
        while (it_http_get(endpoint, "/readyz", NULL) != 200) {
                if (it_exited(pid) || it_now_ms() > deadline) {
                        it_dump_log(log, 30);
                        fail_msg("%s not ready", service);
                }
                struct timespec ts = {0, 50 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
        json_t *h = it_get_json(endpoint, "/healthz", 200);
        assert_string_equal(json_string_value(json_object_get(h, "service")),
                            service);
        assert_string_equal(json_string_value(json_object_get(h, "state")),
                            "RUNNING");
        json_decref(h);
        json_t *c = it_get_json(endpoint, "/v1/config", 200);
        assert_non_null(
            json_object_get(json_object_get(c, "kafka"), "announcer"));
        json_decref(c);
        assert_true(
            it_metric(endpoint, "kpay_service_state{state=\"RUNNING\"}") == 1);
        assert_true(
            it_metric(endpoint, "kpay_service_state{state=\"STARTING\"}") == 0);
        /* Unknown paths and wrong methods are JSON errors. */
        assert_int_equal(it_http_get(endpoint, "/nope", NULL), 404);
        assert_int_equal(it_http("POST", endpoint, "/healthz", "", NULL), 405);

        /* Its InstanceInfo: RUNNING at the endpoint it listens on. */
        char state[32], ep[64];
        deadline = it_now_ms() + 30000;
        while (!last_info(meta, key, state, sizeof(state), ep, sizeof(ep)) ||
               strcmp(state, "RUNNING")) {
                if (it_now_ms() > deadline)
                        fail_msg("no RUNNING InstanceInfo for %s", key);
                struct timespec ts = {0, 100 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
        assert_string_equal(ep, endpoint);

        /* A clean exit leaves a tombstone. */
        kill(pid, SIGTERM);
        int rc = it_wait_exit(pid, 30000);
        if (rc != 0) {
                it_dump_log(log, 30);
                fail_msg("%s exited %d after SIGTERM", service, rc);
        }
        assert_true(last_info(meta, key, state, sizeof(state), ep, sizeof(ep)));
        assert_string_equal(state, "");
        unlink(log);
}

static void test_control_is_a_service(void **state) {
        (void)state;
        check_service("KPAY_CONTROL_BIN", "control");
}

static void test_web_is_a_service(void **state) {
        (void)state;
        check_service("KPAY_WEB_BIN", "web");
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_control_is_a_service),
            cmocka_unit_test(test_web_is_a_service),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
