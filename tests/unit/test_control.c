/* Unit tests of kpay-control's logic (control.c) and of the control
 * plane's records (kp_control.c): request validation, the token check, the
 * next version, the state computation over instances, versions and
 * in-flight totals, and the rate split. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "control.h"
#include "kpay/kp_control.h"
#include "kpay/kp_mem.h"

static kp_err_t parse(control_cmd_t cmd, const char *body,
                      control_request_t *r) {
        char errstr[256];
        return control_parse_request(cmd, body, body ? strlen(body) : 0, r,
                                     errstr, sizeof(errstr));
}

static void test_requests(void **state) {
        (void)state;
        control_request_t r;
        assert_int_equal(parse(CONTROL_CMD_PAUSE, NULL, &r), KP_OK);
        assert_int_equal(parse(CONTROL_CMD_PAUSE, "{}", &r), KP_OK);
        assert_int_equal(
            parse(CONTROL_CMD_RESUME, "{\"reason\":\"upgrade\"}", &r), KP_OK);
        assert_string_equal(r.reason, "upgrade");
        assert_int_equal(
            parse(CONTROL_CMD_RATE_LIMIT, "{\"payments_per_second\":500}", &r),
            KP_OK);
        assert_int_equal(r.rate_limit, 500);
        assert_int_equal(
            parse(CONTROL_CMD_RATE_LIMIT, "{\"payments_per_second\":null}", &r),
            KP_OK);
        assert_int_equal(r.rate_limit, 0);

        static const char *bad_rate[] = {
            "{\"payments_per_second\":-1}",
            "{\"payments_per_second\":0}",
            "{\"payments_per_second\":1.5}",
            "{\"payments_per_second\":\"5\"}",
            "{\"payments_per_second\":true}",
            "{\"payments_per_second\":1e12}",
            "{\"payments_per_second\":1000001}",
            "{\"payments_per_second\":5,\"x\":1}",
            "{}",
            "[500]",
            "{\"payments_per_second\":5,\"payments_per_second\":6}",
        };
        for (size_t i = 0; i < sizeof(bad_rate) / sizeof(*bad_rate); i++)
                assert_int_not_equal(
                    parse(CONTROL_CMD_RATE_LIMIT, bad_rate[i], &r), KP_OK);
        assert_int_equal(parse(CONTROL_CMD_RATE_LIMIT, NULL, &r), KP_ERR_PARSE);
        assert_int_equal(parse(CONTROL_CMD_PAUSE, "not json", &r),
                         KP_ERR_PARSE);
        assert_int_equal(parse(CONTROL_CMD_PAUSE, "{\"paused\":true}", &r),
                         KP_ERR_INVALID_ARG);
        assert_int_equal(parse(CONTROL_CMD_PAUSE, "{\"reason\":5}", &r),
                         KP_ERR_INVALID_ARG);
        assert_int_equal(
            parse(CONTROL_CMD_PAUSE, "{\"payments_per_second\":5}", &r),
            KP_ERR_INVALID_ARG);
}

static void test_tokens(void **state) {
        (void)state;
        assert_true(control_token_equal("s3cret", "s3cret"));
        assert_false(control_token_equal("s3cret", "s3cre"));
        assert_false(control_token_equal("s3cret", "s3cret!"));
        assert_false(control_token_equal("s3cret", "S3cret"));
        assert_false(control_token_equal("", "x"));
        assert_int_equal(control_authorize(NULL, NULL), 0);
        assert_int_equal(control_authorize("", "whatever"), 0);
        assert_int_equal(control_authorize("t0k", NULL), 401);
        assert_int_equal(control_authorize("t0k", "Basic dDBr"), 401);
        assert_int_equal(control_authorize("t0k", "Bearer "), 401);
        assert_int_equal(control_authorize("t0k", "Bearer t0K"), 403);
        assert_int_equal(control_authorize("t0k", "Bearer t0k"), 0);
        assert_int_equal(control_authorize("t0k", "bearer t0k"), 0);

        char actor[80];
        control_actor(actor, sizeof(actor), NULL, 1);
        assert_string_equal(actor, "token");
        control_actor(actor, sizeof(actor), "", 0);
        assert_string_equal(actor, "anonymous");
        control_actor(actor, sizeof(actor), "ops bob\n<x>@site", 1);
        assert_string_equal(actor, "ops_bob__x_@site");
        char longer[200];
        memset(longer, 'a', sizeof(longer) - 1);
        longer[sizeof(longer) - 1] = '\0';
        control_actor(actor, sizeof(actor), longer, 1);
        assert_int_equal(strlen(actor), KP_CONTROL_ACTOR_MAX);
}

static void test_next_and_records(void **state) {
        (void)state;
        kp_control_status_t cur = {0}, next, back;
        control_request_t req   = {.cmd        = CONTROL_CMD_RATE_LIMIT,
                                   .rate_limit = 500};
        control_next(&cur, &req, "bob", 1000, &next);
        assert_int_equal(next.version, 1);
        assert_int_equal(next.rate_limit, 500);
        assert_false(next.paused);
        req.cmd = CONTROL_CMD_PAUSE;
        control_next(&next, &req, "ann", 2000, &cur);
        assert_int_equal(cur.version, 2);
        assert_true(cur.paused);
        assert_int_equal(cur.rate_limit, 500); /* carried over */
        assert_string_equal(cur.command, "pause");
        assert_string_equal(cur.actor, "ann");

        char errstr[256];
        char *json = kp_control_status_to_json(&cur);
        assert_int_equal(kp_control_status_from_json(json, strlen(json), &back,
                                                     errstr, sizeof(errstr)),
                         KP_OK);
        assert_int_equal(back.version, cur.version);
        assert_int_equal(back.paused, cur.paused);
        assert_int_equal(back.rate_limit, cur.rate_limit);
        assert_string_equal(back.command, cur.command);
        assert_string_equal(back.actor, cur.actor);
        assert_int_equal(back.ts, cur.ts);
        kp_free(json);
        static const char *bad[] = {
            "x",
            "{}",
            "{\"v\":2,\"version\":1,\"paused\":true}",
            "{\"v\":1,\"version\":0,\"paused\":true,\"rate_limit\":null,"
            "\"command\":\"pause\",\"actor\":\"a\",\"ts\":1}",
            "{\"v\":1,\"version\":3,\"paused\":1,\"rate_limit\":null,"
            "\"command\":\"pause\",\"actor\":\"a\",\"ts\":1}",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
                assert_int_equal(
                    kp_control_status_from_json(bad[i], strlen(bad[i]), &back,
                                                errstr, sizeof(errstr)),
                    KP_ERR_PARSE);

        kp_control_report_t r = {.version        = 7,
                                 .paused         = 1,
                                 .rate_share     = 250,
                                 .inflight_count = 3},
                            rb;
        /* Amounts per currency, exact beyond int64 (decimal strings). */
        assert_int_equal(kp_money_set(&r.inflight_amounts, "USD", 4500), KP_OK);
        assert_int_equal(
            kp_money_set(&r.inflight_amounts, "EUR", (kp_i128_t)INT64_MAX * 2),
            KP_OK);
        json = kp_control_report_to_json(&r);
        assert_non_null(strstr(json,
                               "\"inflight_amounts\":{\"EUR\":"
                               "\"18446744073709551614\",\"USD\":"
                               "\"4500\"}"));
        assert_int_equal(kp_control_report_from_json(json, &rb), KP_OK);
        assert_int_equal(rb.version, r.version);
        assert_int_equal(rb.paused, r.paused);
        assert_true(rb.rate_share == r.rate_share);
        assert_int_equal(rb.inflight_count, r.inflight_count);
        assert_true(kp_money_equal(&rb.inflight_amounts, &r.inflight_amounts));
        kp_control_report_clear(&rb);
        kp_control_report_clear(&r);
        kp_free(json);
        assert_int_equal(kp_control_report_from_json("{\"paused\":1}", &rb),
                         KP_ERR_PARSE);
        /* The amount of an older report (one integer) is not accepted. */
        const char *old =
            "{\"control_version\":1,\"paused\":true,"
            "\"rate_share\":0,\"inflight_count\":0,"
            "\"inflight_amount\":0}";
        assert_int_equal(kp_control_report_from_json(old, &rb), KP_ERR_PARSE);
        assert_int_equal(kp_control_report_from_json(NULL, &rb), KP_ERR_PARSE);
}

/* Two instances owning 0-2 and 3-5 of six partitions. */
static int32_t parts_a[] = {0, 1, 2}, parts_b[] = {3, 4, 5};

static kp_instance_info_t info_of(const char *id, int32_t *parts, size_t n,
                                  const char *state) {
        kp_instance_info_t i = {.service         = "inflight",
                                .instance        = (char *)id,
                                .state           = (char *)state,
                                .partitions      = parts,
                                .partition_cnt   = n,
                                .partition_count = 6};
        return i;
}

static void test_state(void **state) {
        (void)state;
        kp_control_status_t st   = {.version = 4, .paused = 1};
        kp_instance_info_t ia    = info_of("a", parts_a, 3, "RUNNING");
        kp_instance_info_t ib    = info_of("b", parts_b, 3, "RUNNING");
        control_instance_t in[2] = {
            {.info       = &ia,
             .has_report = 1,
             .report     = {.version = 4, .paused = 1}},
            {.info       = &ib,
             .has_report = 1,
             .report     = {.version = 4, .paused = 1, .inflight_count = 2}},
        };
        kp_money_t sum;
        kp_money_init(&sum);
        assert_int_equal(kp_money_set(&in[0].report.inflight_amounts, "EUR", 7),
                         KP_OK);
        assert_int_equal(
            kp_money_set(&in[1].report.inflight_amounts, "USD", 300), KP_OK);
        assert_int_equal(kp_money_set(&in[1].report.inflight_amounts, "EUR", 1),
                         KP_OK);
        control_view_t v = control_compute(&st, in, 2);
        assert_int_equal(v.state, CONTROL_PAUSED); /* 2 still in flight */
        assert_int_equal(v.applied, 2);
        assert_int_equal(v.inflight_count, 2);
        /* Amounts summed per currency, never across. */
        assert_int_equal(control_inflight_amounts(in, 2, &sum), KP_OK);
        assert_int_equal(sum.cnt, 2);
        assert_true(kp_money_get(&sum, "USD") == 300);
        assert_true(kp_money_get(&sum, "EUR") == 8);
        kp_money_clear(&sum);
        kp_control_report_clear(&in[0].report);
        kp_control_report_clear(&in[1].report);
        in[0].report.version = in[1].report.version = 4;
        in[0].report.paused = in[1].report.paused = 1;
        v                                         = control_compute(&st, in, 2);
        assert_int_equal(v.state, CONTROL_DRAINED);
        assert_string_equal(control_state2str(v.state), "DRAINED");

        /* An instance still on the previous version, or not paused. */
        in[0].report.version = 3;
        v                    = control_compute(&st, in, 2);
        assert_int_equal(v.state, CONTROL_PAUSED);
        assert_false(in[0].applied);
        assert_int_equal(v.applied, 1);
        in[0].report.version = 5; /* a later version counts */
        in[0].report.paused  = 0;
        assert_int_equal(control_compute(&st, in, 2).state, CONTROL_PAUSED);
        in[0].report.paused = 1;
        assert_int_equal(control_compute(&st, in, 2).state, CONTROL_DRAINED);
        /* No report at all, restoring, or a partition nobody owns. */
        in[1].has_report = 0;
        assert_int_equal(control_compute(&st, in, 2).state, CONTROL_PAUSED);
        in[1].has_report = 1;
        ib.state         = "RESTORING";
        assert_int_equal(control_compute(&st, in, 2).state, CONTROL_PAUSED);
        ib.state = "RUNNING";
        v        = control_compute(&st, in, 1);
        assert_int_equal(v.state, CONTROL_PAUSED);
        assert_false(v.covered);
        /* No instance at all: nobody can vouch for the in-flight total. */
        assert_int_equal(control_compute(&st, in, 0).state, CONTROL_PAUSED);
        /* Running whatever the instances say; applied after the resume. */
        st.paused  = 0;
        st.version = 6;
        v          = control_compute(&st, in, 2);
        assert_int_equal(v.state, CONTROL_RUNNING);
        assert_int_equal(v.applied, 0);
        in[0].report.version = in[1].report.version = 6;
        in[0].report.paused = in[1].report.paused = 0;
        assert_int_equal(control_compute(&st, in, 2).applied, 2);
        /* Counts saturate instead of wrapping; amounts are 128 bits wide
         * and add up exactly beyond int64. */
        in[0].report.inflight_count = INT64_MAX;
        in[1].report.inflight_count = 5;
        assert_true(control_compute(&st, in, 2).inflight_count == INT64_MAX);
        assert_int_equal(
            kp_money_set(&in[0].report.inflight_amounts, "USD", INT64_MAX),
            KP_OK);
        assert_int_equal(kp_money_set(&in[1].report.inflight_amounts, "USD", 5),
                         KP_OK);
        assert_int_equal(control_inflight_amounts(in, 2, &sum), KP_OK);
        assert_true(kp_money_get(&sum, "USD") == (kp_i128_t)INT64_MAX + 5);
        kp_money_clear(&sum);
        kp_control_report_clear(&in[0].report);
        kp_control_report_clear(&in[1].report);
}

static void test_rate_share(void **state) {
        (void)state;
        assert_true(kp_control_rate_share(0, 6, 12) == 0);
        assert_true(kp_control_rate_share(500, 12, 12) == 500);
        assert_true(kp_control_rate_share(500, 6, 12) == 250);
        assert_true(kp_control_rate_share(500, 4, 12) * 3 == 500);
        assert_true(kp_control_rate_share(500, 0, 12) * 12 == 500);
        assert_true(kp_control_rate_share(500, 3, 0) == 500);
        assert_true(kp_control_rate_share(500, 20, 12) == 500);
        /* Shares of a split add up to the whole. */
        double sum = 0;
        int own[]  = {5, 4, 3};
        for (int i = 0; i < 3; i++)
                sum += kp_control_rate_share(1000, own[i], 12);
        assert_true(sum > 999.999 && sum < 1000.001);
}

/* The OpenAPI document parses and lists exactly the REST endpoints. */
static void test_openapi(void **state) {
        (void)state;
        json_error_t jerr;
        json_t *doc = json_loads(control_openapi_json(), 0, &jerr);
        assert_non_null(doc);
        assert_string_equal(json_string_value(json_object_get(doc, "openapi")),
                            "3.0.3");
        json_t *paths = json_object_get(doc, "paths");
        assert_int_equal(json_object_size(paths), 4);
        assert_non_null(
            json_object_get(json_object_get(paths, "/api/v1/control"), "get"));
        assert_non_null(json_object_get(
            json_object_get(paths, "/api/v1/control/pause"), "post"));
        assert_non_null(json_object_get(
            json_object_get(paths, "/api/v1/control/resume"), "post"));
        json_t *put = json_object_get(
            json_object_get(paths, "/api/v1/control/rate-limit"), "put");
        assert_non_null(put);
        /* Every error is a shared response with a JSON Error body. */
        json_t *shared =
            json_object_get(json_object_get(doc, "components"), "responses");
        const char *codes[] = {"400", "401", "403", "413", "503"};
        for (size_t i = 0; i < 5; i++) {
                const char *ref = json_string_value(json_object_get(
                    json_object_get(json_object_get(put, "responses"),
                                    codes[i]),
                    "$ref"));
                assert_non_null(ref);
                const char *name = strrchr(ref, '/') + 1;
                json_t *schema   = json_object_get(
                      json_object_get(
                          json_object_get(json_object_get(shared, name),
                                          "content"),
                          "application/json"),
                      "schema");
                assert_string_equal(
                    json_string_value(json_object_get(schema, "$ref")),
                    "#/components/schemas/Error");
        }
        json_decref(doc);
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_requests),
            cmocka_unit_test(test_tokens),
            cmocka_unit_test(test_next_and_records),
            cmocka_unit_test(test_state),
            cmocka_unit_test(test_rate_share),
            cmocka_unit_test(test_openapi),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
