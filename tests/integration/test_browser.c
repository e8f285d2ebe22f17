/* The browser and API-contract tests (label browser; docs/ui.md): a real
 * suite on the fixture's broker (kpay-control, kpay-inflight, kpay-account,
 * kpay-confirmed, kpay-metrics and kpay-web with a bearer token), kpay-gen
 * sending 20 payments a second (2 % broken records, for the dead letters)
 * meanwhile, and the node scripts of tests/browser/ against it:
 *
 * - ui.test.mjs: Debian's chromium, headless, driven by playwright-core:
 *   the page loads, the charts change, a payment from the form, an
 *   account's balance against the API, Pause -> PAUSED -> DRAINED and
 *   Resume -> RUNNING, "Try it out" in /docs, no console errors;
 *   screenshots in <build>/browser-shots;
 * - contract.test.mjs: /openapi.json validated as OpenAPI 3, every
 *   operation called and its answers validated against its schemas (ajv),
 *   and the static files (types, caching, traversal refused).
 *
 * kpay-web serves a copy of <build>/ui in the test's directory, with a
 * symlink out of it (/etc/passwd) and one inside, which the contract test
 * asks for. */
#include <inttypes.h>
#include <jansson.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "it_util.h"
#include "kpay/kp_time.h"

#define PARTITIONS 4
#define TOKEN      "it-browser-token"
#define READY_MS   120000

static char prefix[64], root[256], token_file[300], ui_dir[300], web_url[64];
static it_daemon_t control, inflight, account, confirmed, metrics, web;
static it_daemon_t *all[] = {&web,     &metrics,  &confirmed,
                             &account, &inflight, &control};
static pid_t gen          = -1;
static char gen_log[320];

static void spawn(it_daemon_t *d, const char *bin_env, const char *id) {
        it_daemon_init(d, bin_env, root, id);
        const char *proc[] = {"--state-dir", d->state, "--partitions", "4",
                              NULL};
        const char *ctl[]  = {"--token-file", token_file,
                              "--instance-timeout-ms", "4000", NULL};
        /* A busy machine (and ASan) can take kpay-control past the
         * default 1 s to write a pause. */
        const char *w[] = {
            "--token-file",         token_file, "--ui-dir", ui_dir,
            "--request-timeout-ms", "5000",     NULL};
        it_daemon_spawn(d, prefix, d == &control ? ctl : d == &web ? w : proc);
}

static void sh(const char *cmd) {
        char *argv[] = {"/bin/sh", "-c", (char *)cmd, NULL};
        char *out    = NULL;
        int rc       = it_run(argv, 60000, &out);
        if (rc != 0)
                fail_msg("%s: exit %d: %s", cmd, rc, out ? out : "");
        free(out);
}

static int setup(void **state) {
        (void)state;
        const char *ui = getenv("KPAY_UI_DIR");
        if (!ui || access(ui, R_OK) != 0) {
                fprintf(stderr,
                        "KPAY_UI_DIR (%s) is missing: the build lays "
                        "it out (target kpay_ui; npm via ./kpay deps)\n",
                        ui ? ui : "unset");
                return -1;
        }
        it_unique_prefix(prefix, sizeof(prefix), "browser");
        snprintf(root, sizeof(root), "/tmp/kpay-it-browser-XXXXXX");
        if (!mkdtemp(root))
                return -1;
        snprintf(token_file, sizeof(token_file), "%s/token", root);
        FILE *f = fopen(token_file, "w");
        if (!f)
                return -1;
        fputs(TOKEN "\n", f);
        fclose(f);
        snprintf(ui_dir, sizeof(ui_dir), "%s/ui", root);
        char cmd[1200];
        snprintf(cmd, sizeof(cmd),
                 "cp -R '%s' '%s' && ln -s /etc/passwd '%s/assets/out-link.txt'"
                 " && ln -s app.js '%s/assets/in-link.js'",
                 ui, ui_dir, ui_dir, ui_dir);
        sh(cmd);
        if (it_admin_topics(prefix, PARTITIONS) != 0)
                return -1;
        spawn(&control, "KPAY_CONTROL_BIN", "control");
        spawn(&inflight, "KPAY_INFLIGHT_BIN", "inflight");
        spawn(&account, "KPAY_ACCOUNT_BIN", "account");
        spawn(&confirmed, "KPAY_CONFIRMED_BIN", "confirmed");
        spawn(&metrics, "KPAY_METRICS_BIN", "metrics");
        spawn(&web, "KPAY_WEB_BIN", "web");
        for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
                it_daemon_wait_ready(all[i], READY_MS);
        snprintf(web_url, sizeof(web_url), "http://%s", web.endpoint);

        /* The load: accounts acc-0..acc-29 funded, then 20 payments a
         * second for up to 15 minutes (stopped at teardown). */
        snprintf(gen_log, sizeof(gen_log), "%s/gen.log", root);
        char *argv[] = {(char *)it_env_bin("KPAY_GEN_BIN"),
                        "-b",
                        (char *)it_bootstrap(),
                        "--topic-prefix",
                        prefix,
                        "--accounts",
                        "30",
                        "--fund",
                        "--rate",
                        "20",
                        "--duration",
                        "900",
                        "--invalid-ratio",
                        "0.02",
                        "--quiet",
                        NULL};
        gen          = it_spawn(argv, gen_log);

        /* The pages need payments flowing: wait until kpay-web counts
         * confirmed ones (the funding's, then the load's). */
        int64_t deadline = it_now_ms() + READY_MS;
        for (;;) {
                char *body   = NULL;
                json_int_t n = -1;
                if (it_http_get(web.endpoint, "/api/v1/pipeline", &body) ==
                    200) {
                        json_error_t jerr;
                        json_t *j = json_loads(body, 0, &jerr);
                        n         = json_integer_value(json_object_get(
                                    json_object_get(json_object_get(j, "confirmed"),
                                                    "all"),
                                    "count"));
                        json_decref(j);
                }
                free(body);
                if (n > 0)
                        break;
                if (it_exit_status(gen) > 0 || it_now_ms() > deadline) {
                        it_dump_log(gen_log, 20);
                        it_dump_log(web.log, 20);
                        fprintf(stderr, "no confirmed payment in %d s\n",
                                READY_MS / 1000);
                        return -1;
                }
                kp_sleep_ms(500);
        }
        return 0;
}

static int teardown(void **state) {
        (void)state;
        if (gen > 0 && !it_exited(gen)) {
                kill(gen, SIGTERM);
                if (it_wait_exit(gen, 30000) < 0)
                        it_dump_log(gen_log, 20);
        }
        it_daemons_teardown(all, sizeof(all) / sizeof(all[0]), root);
        return 0;
}

/* Runs node on tests/browser/@p script with the suite's address. */
static void node(const char *script, int timeout_ms) {
        const char *dir  = getenv("KPAY_BROWSER_TESTS");
        const char *nodb = getenv("KPAY_NODE");
        if (!dir || !nodb)
                fail_msg(
                    "KPAY_BROWSER_TESTS / KPAY_NODE are not set (ctest "
                    "sets them)");
        char path[600];
        snprintf(path, sizeof(path), "%s/%s", dir, script);
        setenv("KPAY_WEB_URL", web_url, 1);
        setenv("KPAY_WEB_TOKEN", TOKEN, 1);
        char *argv[] = {(char *)nodb, path, NULL};
        char *out    = NULL;
        int rc       = it_run(argv, timeout_ms, &out);
        fprintf(stderr, "%s", out ? out : "");
        free(out);
        if (rc != 0) {
                it_dump_log(web.log, 30);
                it_dump_log(gen_log, 10);
                fail_msg("%s exited %d", script, rc);
        }
        for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
                if (it_exited(all[i]->pid))
                        fail_msg("%s exited during %s", all[i]->id, script);
}

static void test_ui(void **state) {
        (void)state;
        node("ui.test.mjs", 420000);
}

static void test_contract(void **state) {
        (void)state;
        node("contract.test.mjs", 300000);
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_ui),
            cmocka_unit_test(test_contract),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
