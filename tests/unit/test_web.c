/* Unit tests of kpay-web's pure logic (web-tier/merge.c), its router's
 * templates, and its OpenAPI document against the routes it registers. */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kpay/kp_discovery.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_money.h"
#include "merge.h"
#include "metrics.h"
#include "web.h"
#include "web_api.h"

static void test_missing_partitions(void **state) {
        (void)state;
        const int32_t a[] = {0, 2, 4}, b[] = {1, 3, 5}, c[] = {1};
        web_cover_t in[] = {{a, 3, 1}, {b, 3, 0}, {c, 1, 1}};
        int32_t out[6];
        size_t n = web_missing_partitions(in, 3, 6, out);
        assert_int_equal(n, 2);
        assert_int_equal(out[0], 3);
        assert_int_equal(out[1], 5);
        in[1].answered = 1;
        assert_int_equal(web_missing_partitions(in, 3, 6, out), 0);
        assert_int_equal(web_missing_partitions(NULL, 0, 3, out), 3);
        assert_int_equal(web_missing_partitions(in, 3, 0, out), 0);
}

static void test_cursor(void **state) {
        (void)state;
        int32_t p;
        const char *k;
        assert_int_equal(web_cursor_parse("3:acc-1", &p, &k), 0);
        assert_int_equal(p, 3);
        assert_string_equal(k, "acc-1");
        assert_int_equal(web_cursor_parse("0:", &p, &k), 0);
        assert_string_equal(k, "");
        assert_int_equal(web_cursor_parse("12:a:b", &p, &k), 0);
        assert_string_equal(k, "a:b");
        const char *bad[] = {"",     ":x",  "x:y",           "-1:a",
                             "1a:b", "acc", "99999999999:a", NULL};
        for (int i = 0; bad[i]; i++)
                assert_int_equal(web_cursor_parse(bad[i], &p, &k), -1);
        web_item_t it = {"acc-7", 5, 4, NULL};
        char *c       = web_cursor_of(&it);
        assert_string_equal(c, "4:acc-7");
        kp_free(c);
        int lookup;
        c = web_prefix_cursor("acc-1", 3, &lookup);
        assert_string_equal(c, "2:acc-1");
        assert_int_equal(lookup, 0);
        kp_free(c);
        c = web_prefix_cursor("acc-1", 0, &lookup);
        assert_string_equal(c, "0:acc-1");
        assert_int_equal(lookup, 1);
        kp_free(c);
}

/* ------------------------------------------------------------------------
 * Paging over two instances, as the runtime's scan answers: the first
 * `limit` items after the cursor of every partition the instance owns. */

#define KEYS  97
#define PARTS 6

static char keys[KEYS][16];
static int32_t key_part[KEYS];

static void make_keys(void) {
        for (int i = 0; i < KEYS; i++) {
                snprintf(keys[i], sizeof(keys[i]), "acc-%d", i);
                key_part[i] =
                    kp_partition_for_key(keys[i], strlen(keys[i]), PARTS);
        }
}

static int item_before(const char *k, int32_t p, const char *ck, int32_t cp) {
        int c = strcmp(k, ck);
        return c < 0 || (c == 0 && p <= cp);
}

/* The runtime's page of an instance owning partitions with bit p of
 * @p mask set. */
static size_t scan(unsigned mask, const char *cursor, size_t limit,
                   web_item_t *out, int *morep) {
        int32_t cp     = -1;
        const char *ck = NULL;
        if (cursor)
                assert_int_equal(web_cursor_parse(cursor, &cp, &ck), 0);
        web_item_t all[KEYS];
        size_t n = 0;
        for (int i = 0; i < KEYS; i++) {
                if (!(mask & (1u << key_part[i])))
                        continue;
                if (ck && item_before(keys[i], key_part[i], ck, cp))
                        continue;
                all[n++] =
                    (web_item_t){keys[i], strlen(keys[i]), key_part[i], NULL};
        }
        /* In key order (the keys are distinct). */
        for (size_t i = 1; i < n; i++)
                for (size_t j = i;
                     j > 0 && strcmp(all[j - 1].key, all[j].key) > 0; j--) {
                        web_item_t t = all[j];
                        all[j]       = all[j - 1];
                        all[j - 1]   = t;
                }
        *morep = n > limit;
        if (n > limit)
                n = limit;
        memcpy(out, all, n * sizeof(*out));
        return n;
}

/* Pages through everything with @p limit (and @p prefix), as kpay-web
 * does, checking order; returns how many keys were listed. */
static size_t page_all(size_t limit, const char *prefix, unsigned mask_a,
                       unsigned mask_b, int dup) {
        char *cursor  = NULL;
        char last[32] = "";
        size_t seen = 0, pages = 0;
        int lookup = 0;
        int32_t pp = -1;
        if (prefix) {
                pp     = kp_partition_for_key(prefix, strlen(prefix), PARTS);
                cursor = web_prefix_cursor(prefix, pp, &lookup);
        }
        for (;;) {
                web_item_t a[KEYS], b[KEYS], out[2 * KEYS + 1], ex;
                web_page_t pg[3];
                size_t pc = 0;
                int ma, mb, more;
                pg[pc].items  = a;
                pg[pc].cnt    = scan(mask_a, cursor, limit, a, &ma);
                pg[pc++].more = ma;
                pg[pc].items  = b;
                pg[pc].cnt    = scan(mask_b, cursor, limit, b, &mb);
                pg[pc++].more = mb;
                if (lookup && pages == 0) {
                        for (int i = 0; i < KEYS; i++)
                                if (!strcmp(keys[i], prefix)) {
                                        ex       = (web_item_t){keys[i],
                                                                strlen(keys[i]),
                                                                key_part[i], NULL};
                                        pg[pc++] = (web_page_t){&ex, 1, 0};
                                }
                }
                size_t n = web_page_merge(pg, pc, prefix, limit, out, &more);
                assert_true(n <= limit);
                for (size_t i = 0; i < n; i++) {
                        assert_true(strcmp(last, out[i].key) < 0);
                        if (prefix)
                                assert_memory_equal(out[i].key, prefix,
                                                    strlen(prefix));
                        snprintf(last, sizeof(last), "%s", out[i].key);
                        seen++;
                }
                pages++;
                kp_free(cursor);
                cursor = NULL;
                if (!more)
                        break;
                assert_true(n > 0);
                cursor = web_cursor_of(&out[n - 1]);
                assert_true(pages < 2 * KEYS);
        }
        (void)dup;
        return seen;
}

static void test_paging(void **state) {
        (void)state;
        make_keys();
        /* Two instances with three partitions each, then one with all, and
         * overlapping owners (a partition moving: listed by both). */
        const unsigned masks[][2] = {{0x15, 0x2a}, {0x3f, 0}, {0x1f, 0x3e}};
        const size_t limits[]     = {1, 2, 7, 50, 96, 97, 1000};
        for (size_t m = 0; m < 3; m++)
                for (size_t l = 0; l < sizeof(limits) / sizeof(limits[0]); l++)
                        assert_int_equal(page_all(limits[l], NULL, masks[m][0],
                                                  masks[m][1], m == 2),
                                         KEYS);
        /* Prefixes: acc-1 is acc-1, acc-10..19; every acc-N prefix (some
         * of whose own keys live on partition 0, which the cursor cannot
         * include: the lookup adds them). */
        int saw_zero = 0;
        for (int i = 0; i < KEYS; i++) {
                size_t want = 0;
                for (int j = 0; j < KEYS; j++)
                        want += !strncmp(keys[j], keys[i], strlen(keys[i]));
                saw_zero |= key_part[i] == 0;
                assert_int_equal(page_all(3, keys[i], 0x15, 0x2a, 0), want);
        }
        assert_true(saw_zero);
        assert_int_equal(page_all(5, "zzz", 0x15, 0x2a, 0), 0);
}

static void test_page_merge_dedup(void **state) {
        (void)state;
        web_item_t a[] = {{"a", 1, 0, NULL}, {"b", 1, 1, NULL}};
        web_item_t b[] = {
            {"b", 1, 1, NULL}, {"b", 1, 2, NULL}, {"c", 1, 0, NULL}};
        web_page_t pg[] = {{a, 2, 0}, {b, 3, 1}};
        web_item_t out[5];
        int more;
        size_t n = web_page_merge(pg, 2, NULL, 10, out, &more);
        assert_int_equal(n, 4);
        assert_string_equal(out[1].key, "b");
        assert_int_equal(out[1].partition, 1);
        assert_int_equal(out[2].partition, 2);
        assert_int_equal(more, 1); /* b said it has more */
        n = web_page_merge(pg, 2, NULL, 2, out, &more);
        assert_int_equal(n, 2);
        assert_int_equal(more, 1);
        /* An instance whose page ran past the prefix has no more of it. */
        n = web_page_merge(pg, 2, "b", 10, out, &more);
        assert_int_equal(n, 2);
        assert_int_equal(more, 0);
}

static void test_preview(void **state) {
        (void)state;
        char *p = web_preview("ab\x01\\\xff", 5, 256);
        assert_string_equal(p, "ab\\x01\\\\\\xff");
        kp_free(p);
        /* Cut before an escape, never inside one. */
        p = web_preview("abc\xff", 4, 5);
        assert_string_equal(p, "abc");
        kp_free(p);
        char big[1000];
        memset(big, 0x80, sizeof(big));
        p = web_preview(big, sizeof(big), 256);
        assert_true(strlen(p) <= 256);
        assert_int_equal(strlen(p) % 4, 0);
        kp_free(p);
        p = web_preview("", 0, 256);
        assert_string_equal(p, "");
        kp_free(p);
}

/* ------------------------------------------------------------------------
 * kpay-metrics' answers. */

static json_t *window_json(int64_t start, int64_t complete, int64_t mask,
                           int final) {
        metrics_window_t w;
        metrics_window_init(&w, METRICS_1M, start);
        w.complete_count = complete;
        w.active_mask    = mask;
        w.final          = final;
        assert_int_equal(kp_money_add(&w.complete_amount, "USD",
                                      (kp_i128_t)(100 * complete)),
                         KP_OK);
        json_t *j = metrics_window_to_json(&w, 0);
        metrics_window_clear(&w);
        return j;
}

static json_t *answer(json_t *w1, json_t *w2) {
        json_t *arr = json_array();
        if (w1)
                json_array_append_new(arr, w1);
        if (w2)
                json_array_append_new(arr, w2);
        return json_pack("{s:s, s:I, s:I, s:o}", "size", "1m", "from",
                         (json_int_t)0, "to", (json_int_t)600000, "windows",
                         arr);
}

static void test_merge_windows(void **state) {
        (void)state;
        char why[256];
        json_t *ans[3] = {
            answer(window_json(60000, 3, 1, 1), window_json(120000, 2, 2, 1)),
            NULL, /* an instance that did not answer */
            answer(window_json(60000, 4, 4, 0), NULL)};
        json_t *obj = json_pack("{s:I, s:I, s:I}", "p99_ms", (json_int_t)200,
                                "min_throughput", (json_int_t)1,
                                "max_rejection_bp", (json_int_t)100);
        json_t *m   = web_merge_windows(ans, 3, obj, why, sizeof(why));
        assert_non_null(m);
        json_t *ws = json_object_get(m, "windows");
        assert_int_equal(json_array_size(ws), 2);
        json_t *w0 = json_array_get(ws, 0);
        assert_int_equal(json_integer_value(json_object_get(w0, "start_ms")),
                         60000);
        json_t *c = json_object_get(w0, "complete");
        assert_int_equal(json_integer_value(json_object_get(c, "count")), 7);
        assert_false(json_is_true(json_object_get(w0, "final")));
        assert_int_equal(json_integer_value(json_object_get(w0, "partitions")),
                         2);
        assert_int_equal(json_integer_value(json_object_get(
                             json_object_get(w0, "sla"), "outcomes")),
                         7);

        /* The SLA over the minutes before 180000 + the current one. */
        json_t *sla = web_sla_of(m, obj, 180000 + 5, why, sizeof(why));
        assert_non_null(sla);
        json_t *p15 = json_object_get(json_object_get(sla, "periods"), "15m");
        assert_int_equal(json_integer_value(json_object_get(p15, "outcomes")),
                         9);
        assert_int_equal(
            json_integer_value(json_object_get(p15, "traffic_seconds")), 3);
        json_t *p1 = json_object_get(json_object_get(sla, "periods"), "1m");
        assert_int_equal(json_integer_value(json_object_get(p1, "outcomes")),
                         2);
        json_decref(sla);
        assert_null(web_sla_of(m, NULL, 0, why, sizeof(why)));
        json_decref(m);

        /* A window that does not parse is an error, not a guess. */
        json_t *bad[1] = {json_pack("{s:[{s:s}]}", "windows", "size", "2h")};
        assert_null(web_merge_windows(bad, 1, obj, why, sizeof(why)));
        json_decref(bad[0]);
        for (int i = 0; i < 3; i++)
                json_decref(ans[i]);
        json_decref(obj);
}

static json_t *slow(const char *id, int64_t lat) {
        return json_pack("{s:s, s:I, s:I, s:{s:n, s:n, s:n, s:n}, s:i}", "id",
                         id, "latency_ms", (json_int_t)lat, "created_ms",
                         (json_int_t)1, "stages_ms", "gateway", "intake",
                         "debit", "credit", "partition", 0);
}

static void test_merge_slowest(void **state) {
        (void)state;
        char why[256];
        json_t *a[2] = {
            json_pack("{s:I, s:[o,o]}", "minute_ms", (json_int_t)60000, "items",
                      slow("p1", 900), slow("p2", 10)),
            json_pack("{s:I, s:[o]}", "minute_ms", (json_int_t)60000, "items",
                      slow("p3", 500))};
        json_t *m = web_merge_slowest(a, 2, 2, why, sizeof(why));
        assert_non_null(m);
        json_t *items = json_object_get(m, "items");
        assert_int_equal(json_array_size(items), 2);
        assert_string_equal(
            json_string_value(json_object_get(json_array_get(items, 0), "id")),
            "p1");
        assert_string_equal(
            json_string_value(json_object_get(json_array_get(items, 1), "id")),
            "p3");
        json_decref(m);
        json_decref(a[0]);
        json_decref(a[1]);
}

/* ------------------------------------------------------------------------
 * The router's templates. */

static void match(const char *tmpl, const char *path, int want,
                  const char *name, const char *value) {
        char *names[WEB_PARAMS_MAX], *values[WEB_PARAMS_MAX];
        size_t cnt = 99;
        assert_int_equal(web_route_match(tmpl, path, names, values, &cnt),
                         want);
        if (!want) {
                assert_int_equal(cnt, 0);
                return;
        }
        if (name) {
                assert_true(cnt >= 1);
                assert_string_equal(names[cnt - 1], name);
                assert_string_equal(values[cnt - 1], value);
        }
        for (size_t i = 0; i < cnt; i++) {
                kp_free(names[i]);
                kp_free(values[i]);
        }
}

static void test_route_match(void **state) {
        (void)state;
        match("/api/v1/accounts", "/api/v1/accounts", 1, NULL, NULL);
        match("/api/v1/accounts", "/api/v1/accounts/", 0, NULL, NULL);
        match("/api/v1/accounts/{id}", "/api/v1/accounts/acc-1", 1, "id",
              "acc-1");
        match("/api/v1/accounts/{id}", "/api/v1/accounts/", 0, NULL, NULL);
        match("/api/v1/accounts/{id}", "/api/v1/accounts/a/b", 0, NULL, NULL);
        match("/api/v1/accounts/{id}/freeze", "/api/v1/accounts/x/freeze", 1,
              "id", "x");
        match("/api/v1/accounts/{id}/freeze", "/api/v1/accounts/x/thaw", 0,
              NULL, NULL);
        match("/assets/{path+}", "/assets/js/app.js", 1, "path", "js/app.js");
        match("/assets/{path+}", "/assets/", 0, NULL, NULL);
        match("/assets/{path+}", "/assets/js/", 0, NULL, NULL);
        match("/", "/", 1, NULL, NULL);
        match("/", "/x", 0, NULL, NULL);
        match("/x", "/", 0, NULL, NULL);
        const char *const http[][2] = {
            {"/api/v1/accounts", "/api/v1/accounts"},
            {"/api/v1/accounts/{id}", "/api/v1/accounts/"},
            {"/api/v1/accounts/{id}/freeze", "/api/v1/accounts/"},
            {"/assets/{path+}", "/assets/"},
            {"/", "/"}};
        for (size_t i = 0; i < sizeof(http) / sizeof(http[0]); i++) {
                char *p = web_route_http_path(http[i][0]);
                assert_string_equal(p, http[i][1]);
                kp_free(p);
        }
}

/* ------------------------------------------------------------------------
 * openapi.json names exactly the routes registered, and every $ref in it
 * resolves. */

static void check_refs(json_t *doc, json_t *v) {
        const char *k;
        json_t *x;
        size_t i;
        if (json_is_object(v)) {
                json_object_foreach(v, k, x) {
                        if (!strcmp(k, "$ref")) {
                                const char *ref = json_string_value(x);
                                assert_non_null(ref);
                                assert_memory_equal(ref, "#/", 2);
                                char buf[256];
                                snprintf(buf, sizeof(buf), "%s", ref + 2);
                                json_t *at = doc;
                                for (char *s = strtok(buf, "/"); s;
                                     s       = strtok(NULL, "/"))
                                        at = json_object_get(at, s);
                                if (!at)
                                        fail_msg("dangling $ref %s", ref);
                        } else {
                                check_refs(doc, x);
                        }
                }
        } else if (json_is_array(v)) {
                json_array_foreach(v, i, x) check_refs(doc, x);
        }
}

static void test_openapi_routes(void **state) {
        (void)state;
        json_error_t jerr;
        json_t *doc = json_loads(web_openapi_json(), 0, &jerr);
        if (!doc)
                fail_msg("openapi.json does not parse: %s", jerr.text);
        assert_string_equal(json_string_value(json_object_get(doc, "openapi")),
                            "3.0.3");
        check_refs(doc, doc);

        web_t w = {0};
        web_register_routes(&w);
        size_t api_routes = 0;
        for (size_t i = 0; i < w.route_cnt; i++) {
                const web_route_t *r = &w.routes[i];
                if (r->flags & WEB_ROUTE_HIDDEN)
                        continue;
                api_routes++;
                char m[8];
                size_t n = strlen(r->method);
                assert_true(n < sizeof(m));
                for (size_t j = 0; j < n; j++)
                        m[j] = (char)(r->method[j] | 0x20);
                m[n]       = '\0';
                json_t *op = json_object_get(
                    json_object_get(json_object_get(doc, "paths"), r->tmpl), m);
                if (!op)
                        fail_msg("route %s %s is not in openapi.json",
                                 r->method, r->tmpl);
                /* A mutation says it takes the bearer token. */
                if (r->flags & WEB_ROUTE_MUTATION)
                        assert_non_null(json_object_get(op, "security"));
                assert_non_null(json_object_get(op, "responses"));
        }
        size_t ops = 0;
        const char *path, *method;
        json_t *item, *op;
        json_object_foreach(json_object_get(doc, "paths"), path, item) {
                json_object_foreach(item, method, op) ops++;
        }
        assert_int_equal(ops, api_routes);
        assert_true(api_routes >= 18);
        for (size_t i = 0; i < w.route_cnt; i++) {
                kp_free(w.routes[i].method);
                kp_free(w.routes[i].tmpl);
        }
        kp_free(w.routes);
        json_decref(doc);
}

/* docs/api.md lists exactly the operations of openapi.json, each as a
 * table row "| `METHOD /path` |". */
static void test_api_doc(void **state) {
        (void)state;
        json_t *doc = json_loads(web_openapi_json(), 0, NULL);
        assert_non_null(doc);
        FILE *f = fopen(KPAY_SOURCE_DIR "/docs/api.md", "r");
        assert_non_null(f);
        char line[2048];
        size_t rows = 0;
        while (fgets(line, sizeof(line), f)) {
                char method[16], rest[255], path[256], m[16];
                if (sscanf(line, "| `%15[A-Z] /%254[^`]` |", method, rest) != 2)
                        continue;
                snprintf(path, sizeof(path), "/%s", rest);
                size_t n = strlen(method);
                for (size_t j = 0; j <= n; j++)
                        m[j] = (char)(j < n ? method[j] | 0x20 : 0);
                if (!json_object_get(
                        json_object_get(json_object_get(doc, "paths"), path),
                        m))
                        fail_msg(
                            "docs/api.md lists %s %s, which "
                            "openapi.json does not have",
                            method, path);
                rows++;
        }
        fclose(f);
        size_t ops = 0;
        const char *path, *method;
        json_t *item, *op;
        json_object_foreach(json_object_get(doc, "paths"), path, item) {
                json_object_foreach(item, method, op) ops++;
        }
        /* Each listed once (a row twice would be counted twice). */
        assert_int_equal(rows, ops);
        json_decref(doc);
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_missing_partitions),
            cmocka_unit_test(test_cursor),
            cmocka_unit_test(test_paging),
            cmocka_unit_test(test_page_merge_dedup),
            cmocka_unit_test(test_preview),
            cmocka_unit_test(test_merge_windows),
            cmocka_unit_test(test_merge_slowest),
            cmocka_unit_test(test_route_match),
            cmocka_unit_test(test_openapi_routes),
            cmocka_unit_test(test_api_doc),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
