/* api.c: kpay-web's /api/v1 endpoints but payments (docs/api.md): the glue
 * between the HTTP requests, the fan-out to the processor instances
 * (kp_fanout) and the pure merge logic of merge.c. */
#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "account.h"
#include "confirmed.h"
#include "control.h"
#include "inflight.h"
#include "kpay/kp_buf.h"
#include "kpay/kp_conf.h"
#include "kpay/kp_fanout.h"
#include "kpay/kp_json.h"
#include "kpay/kp_kafka.h"
#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_money.h"
#include "kpay/kp_payment.h"
#include "kpay/kp_time.h"
#include "merge.h"
#include "web.h"
#include "web_api.h"

#define ACCOUNTS_LIMIT_DEFAULT 50
#define ACCOUNTS_LIMIT_MAX     1000
#define DLQ_LIMIT_DEFAULT      50
#define DLQ_LIMIT_MAX          500
#define DLQ_PREVIEW_MAX        256
#define SLOWEST_DEFAULT        10

/* ------------------------------------------------------------------------
 * Fan-out: one group per (service, path); every group of a call is asked
 * in one kp_fanout_run(), so that a call costs one deadline at most. */

typedef struct fan_s {
        const char *service; /* "account"; NULL: every service */
        char *path;          /* asked of every live instance */
        /* Ask one endpoint, not the instances: kpay-control (the
         * --control-url's, else the first live instance's). */
        int control;
        int raw;      /* keep the answers' text (texts), not JSON */
        char **texts; /* per instance with raw: the 200 answer */
        kp_instance_info_t *infos;
        size_t cnt;
        json_t **answers; /* per instance: its 200 answer (an object) */
        int *status;      /* per instance: HTTP status, -1: none */
        int32_t partition_count;
        int32_t *missing;
        size_t missing_cnt;
} fan_t;

static void fan_init(fan_t *f, const char *service, char *path) {
        memset(f, 0, sizeof(*f));
        f->service = service;
        f->path    = path;
}

static void fan_clear(fan_t *f) {
        for (size_t i = 0; i < f->cnt; i++) {
                if (f->answers)
                        json_decref(f->answers[i]);
                if (f->texts)
                        kp_free(f->texts[i]);
        }
        kp_free(f->texts);
        kp_free(f->answers);
        kp_free(f->status);
        kp_free(f->missing);
        kp_instance_info_list_free(f->infos, f->cnt);
        kp_free(f->path);
        memset(f, 0, sizeof(*f));
}

/* The partition count of the pipeline topics as the instances of
 * @p service publish it, else as any processor does; 0: unknown. */
static int32_t partition_count_of(web_t *w, const kp_instance_info_t *infos,
                                  size_t cnt) {
        int32_t n = 0;
        for (size_t i = 0; i < cnt; i++)
                if (infos[i].partition_count > n)
                        n = infos[i].partition_count;
        if (n > 0)
                return n;
        kp_instance_info_t *all;
        size_t acnt = kp_discovery_instances(w->disc, NULL, &all);
        for (size_t i = 0; i < acnt; i++)
                if (all[i].partition_count > n)
                        n = all[i].partition_count;
        kp_instance_info_list_free(all, acnt);
        return n;
}

/* The one endpoint of a control group: --control-url, else the first
 * live kpay-control instance (none: the group has no instance). */
static void control_target(web_t *w, fan_t *f) {
        kp_instance_info_t *infos;
        size_t cnt = kp_discovery_instances(w->disc, "control", &infos);
        char hostport[256], base[256];
        f->cnt   = 0;
        f->infos = kp_calloc(1, sizeof(*f->infos));
        if (w->conf->control_url &&
            !kp_http_split_url(w->conf->control_url, hostport, sizeof(hostport),
                               base, sizeof(base))) {
                f->infos[0].service  = kp_strdup("control");
                f->infos[0].instance = kp_strdup("control-url");
                f->infos[0].endpoint = kp_strdup(hostport);
                char *p              = kp_asprintf("%s%s", base, f->path);
                kp_free(f->path);
                f->path = p;
                f->cnt  = 1;
        } else {
                for (size_t i = 0; i < cnt && !f->cnt; i++)
                        if (infos[i].endpoint && infos[i].state &&
                            !strcmp(infos[i].state, "RUNNING")) {
                                kp_instance_info_copy(&f->infos[0], &infos[i]);
                                f->cnt = 1;
                        }
        }
        kp_instance_info_list_free(infos, cnt);
}

/* Asks every group's instances at once, within --request-timeout-ms. */
static void fan_run(web_t *w, fan_t **groups, size_t gcnt) {
        size_t total = 0, k = 0;
        for (size_t g = 0; g < gcnt; g++) {
                fan_t *f = groups[g];
                if (f->control)
                        control_target(w, f);
                else
                        f->cnt = kp_discovery_instances(w->disc, f->service,
                                                        &f->infos);
                f->answers = kp_calloc(f->cnt ? f->cnt : 1, sizeof(json_t *));
                f->texts   = kp_calloc(f->cnt ? f->cnt : 1, sizeof(char *));
                f->status  = kp_calloc(f->cnt ? f->cnt : 1, sizeof(int));
                total += f->cnt;
        }
        kp_fanout_req_t *reqs = kp_calloc(total ? total : 1, sizeof(*reqs));
        for (size_t g = 0; g < gcnt; g++)
                for (size_t i = 0; i < groups[g]->cnt; i++, k++) {
                        reqs[k].hostport = groups[g]->infos[i].endpoint;
                        reqs[k].path     = groups[g]->path;
                }
        if (total)
                kp_fanout_run(reqs, total, NULL,
                              (int)w->conf->request_timeout_ms);
        k = 0;
        for (size_t g = 0; g < gcnt; g++) {
                fan_t *f = groups[g];
                web_cover_t *cover =
                    kp_calloc(f->cnt ? f->cnt : 1, sizeof(*cover));
                for (size_t i = 0; i < f->cnt; i++, k++) {
                        kp_fanout_req_t *q = &reqs[k];
                        f->status[i]       = q->status;
                        json_t *j          = NULL;
                        if (f->raw && q->status == 200 && q->resp) {
                                f->texts[i] = q->resp;
                                q->resp     = NULL;
                        }
                        if (!f->raw && q->status == 200 && q->resp)
                                j = json_loadb(q->resp, q->resp_len, 0, NULL);
                        if (j && !json_is_object(j)) {
                                json_decref(j);
                                j = NULL;
                        }
                        /* A restoring instance serves only part of what it
                         * owns: its answer does not count. */
                        if (j && f->infos[i].state &&
                            strcmp(f->infos[i].state, "RUNNING")) {
                                json_decref(j);
                                j = NULL;
                        }
                        if (!j && q->status != 200)
                                KP_DEBUG("%s %s: %s", f->service,
                                         f->infos[i].instance,
                                         q->errstr[0] ? q->errstr : "not 200");
                        f->answers[i]          = j;
                        cover[i].partitions    = f->infos[i].partitions;
                        cover[i].partition_cnt = f->infos[i].partition_cnt;
                        cover[i].answered      = j != NULL;
                }
                f->partition_count =
                    f->control ? 0 : partition_count_of(w, f->infos, f->cnt);
                f->missing = kp_calloc(
                    f->partition_count ? (size_t)f->partition_count : 1,
                    sizeof(int32_t));
                f->missing_cnt = web_missing_partitions(
                    cover, f->cnt, f->partition_count, f->missing);
                kp_free(cover);
        }
        kp_fanout_clear(reqs, total);
        kp_free(reqs);
}

/* A group is partial when partitions are missing, or when nothing at all
 * is known of the service (no instance, no partition count). */
static int fan_partial(const fan_t *f) {
        if (f->missing_cnt)
                return 1;
        if (!f->partition_count && !f->control)
                return 1;
        for (size_t i = 0; i < f->cnt; i++)
                if (f->answers[i])
                        return 0;
        return 1;
}

static json_t *parts_json(const int32_t *parts, size_t cnt) {
        json_t *a = json_array();
        for (size_t i = 0; i < cnt; i++)
                kp_json_append(a, json_integer(parts[i]));
        return a;
}

/* Sets "partial" and "missing_partitions" of one group on @p o. */
static void set_partial(json_t *o, const fan_t *f, int extra_partial) {
        kp_json_set(o, "partial",
                    json_boolean(fan_partial(f) || extra_partial));
        kp_json_set(o, "missing_partitions",
                    parts_json(f->missing, f->missing_cnt));
}

/* GET /v1/stores/{store}/keys/{key} of the owner of @p key. */
int web_store_get(web_t *w, const char *service, const char *store,
                  const char *key, json_t **valuep, int32_t *partitionp) {
        kp_instance_info_t owner;
        int32_t part = -1;
        *valuep      = NULL;
        kp_err_t err = kp_discovery_owner(w->disc, service, store, key,
                                          strlen(key), &owner, &part);
        if (partitionp)
                *partitionp = part;
        if (err)
                return 503;
        char *ek   = kp_http_url_encode(key);
        char *path = kp_asprintf("/v1/stores/%s/keys/%s", store, ek);
        kp_free(ek);
        kp_fanout_req_t q = {.hostport = owner.endpoint, .path = path};
        kp_fanout_run(&q, 1, NULL, (int)w->conf->request_timeout_ms);
        kp_free(path);
        kp_instance_info_clear(&owner);
        int status = 503;
        json_t *j  = q.status == 200 && q.resp
                         ? json_loadb(q.resp, q.resp_len, 0, NULL)
                         : NULL;
        json_t *v  = json_object_get(j, "value");
        if (v) {
                *valuep = json_incref(v);
                status  = 200;
        } else if (q.status == 404 && q.resp) {
                /* 404 is "no such key" only when the owner says so (not
                 * "not_owned": a partition that moved). */
                json_t *e = json_loadb(q.resp, q.resp_len, 0, NULL);
                const char *code =
                    json_string_value(json_object_get(e, "error"));
                if (code && !strcmp(code, "not_found"))
                        status = 404;
                json_decref(e);
        }
        json_decref(j);
        kp_fanout_clear(&q, 1);
        return status;
}

/* ------------------------------------------------------------------------
 * Input checks. */

/* A query parameter as an integer in [min, max] (default @p def).
 * @returns 0, or -1 with 400 set on @p r. */
static int query_int(web_req_t *r, const char *name, int64_t def, int64_t min,
                     int64_t max, int64_t *out) {
        const char *s = kp_http_req_query(r->http, name);
        *out          = def;
        if (!s)
                return 0;
        if (kp_parse_int64(s, out) || *out < min || *out > max) {
                kp_http_resp_error(r->resp, 400, "bad_request",
                                   "%s must be an integer from %" PRId64
                                   " to %" PRId64,
                                   name, min, max);
                return -1;
        }
        return 0;
}

/* An account id as the codec takes it, else 400 on @p r. */
static int check_account(web_req_t *r, const char *id) {
        if (!id || !kp_account_id_valid(id)) {
                kp_http_resp_error(r->resp, 400, "bad_request",
                                   "not a valid account id (an optional "
                                   "'@', then 1-%d letters, digits, '.', "
                                   "'_', ':', '-')",
                                   KP_ACCOUNT_ID_MAX);
                return -1;
        }
        return 0;
}

/* ------------------------------------------------------------------------
 * Accounts. */

/* An account as the API shows it, from its store value; NULL when the
 * value does not decode. */
static json_t *account_json(const char *id, size_t idlen, const json_t *value) {
        acct_record_t rec;
        char why[200];
        char *enc = kp_json_dump(json_incref((json_t *)value));
        acct_record_init(&rec);
        kp_err_t err = acct_decode(enc, strlen(enc), &rec, why, sizeof(why));
        kp_free(enc);
        if (err) {
                KP_WARN("account %.*s: its store value does not decode: %s",
                        (int)idlen, id, why);
                acct_record_clear(&rec);
                return NULL;
        }
        json_t *o = json_object();
        kp_json_set(o, "id", json_stringn(id, idlen));
        kp_json_set(o, "balances",
                    kp_money_to_json(&rec.balances, KP_MONEY_JSON_STRING));
        kp_json_set(o, "frozen", json_boolean(rec.frozen));
        kp_json_set(o, "updated_ms", json_integer(rec.updated_ms));
        kp_json_set(
            o, "last_payment",
            rec.last_payment[0] ? json_string(rec.last_payment) : json_null());
        acct_record_clear(&rec);
        return o;
}

/* The items of an instance's scan answer as web_items (borrowing it).
 * The instances are asked for one item more than the page when they can
 * be (up to their maximum): one that returns it has more, whatever its
 * "next" says. */
static void page_of(json_t *answer, size_t limit, web_page_t *pg) {
        json_t *items = json_object_get(answer, "items"), *it;
        size_t i;
        pg->cnt  = 0;
        pg->more = json_is_string(json_object_get(answer, "next")) ||
                   json_array_size(items) > limit;
        pg->items = kp_calloc(json_array_size(items) + 1, sizeof(web_item_t));
        json_array_foreach(items, i, it) {
                json_t *k = json_object_get(it, "key");
                json_t *p = json_object_get(it, "partition");
                json_t *v = json_object_get(it, "value");
                if (!json_is_string(k) || !json_is_integer(p) || !v)
                        continue;
                web_item_t *o = &pg->items[pg->cnt++];
                o->key        = json_string_value(k);
                o->klen       = json_string_length(k);
                o->partition  = (int32_t)json_integer_value(p);
                o->value      = v;
        }
}

static void h_accounts(web_req_t *r) {
        web_t *w           = r->w;
        const char *prefix = kp_http_req_query(r->http, "prefix");
        const char *after  = kp_http_req_query(r->http, "after");
        int64_t limit;
        int32_t ap;
        const char *ak;
        if (query_int(r, "limit", ACCOUNTS_LIMIT_DEFAULT, 1, ACCOUNTS_LIMIT_MAX,
                      &limit))
                return;
        if (prefix && *prefix && !kp_account_id_valid(prefix) &&
            strcmp(prefix, "@")) {
                kp_http_resp_error(r->resp, 400, "bad_request",
                                   "prefix must be the start of an account "
                                   "id (an optional '@', then letters, "
                                   "digits, '.', '_', ':', '-')");
                return;
        }
        if (prefix && !*prefix)
                prefix = NULL;
        if (after && *after && web_cursor_parse(after, &ap, &ak)) {
                kp_http_resp_error(r->resp, 400, "bad_request",
                                   "after must be a cursor as returned in "
                                   "\"next\"");
                return;
        }
        if (after && !*after)
                after = NULL;

        /* Where the instances start: the caller's cursor, or the start of
         * the prefix's keys (the key equal to the prefix looked up on its
         * own when the cursor cannot include it). */
        int lookup   = 0;
        int32_t pp   = -1;
        char *cursor = NULL;
        kp_instance_info_t *infos;
        size_t icnt = kp_discovery_instances(w->disc, "account", &infos);
        int32_t n   = partition_count_of(w, infos, icnt);
        kp_instance_info_list_free(infos, icnt);
        if (after) {
                cursor = kp_strdup(after);
        } else if (prefix && n > 0) {
                pp     = kp_partition_for_key(prefix, strlen(prefix), n);
                cursor = web_prefix_cursor(prefix, pp, &lookup);
        }
        char *path;
        int64_t ask = limit < ACCOUNTS_LIMIT_MAX ? limit + 1 : limit;
        if (cursor) {
                char *ec = kp_http_url_encode(cursor);
                path     = kp_asprintf(
                        "/v1/stores/balances?limit=%" PRId64 "&after=%s", ask, ec);
                kp_free(ec);
        } else {
                path = kp_asprintf("/v1/stores/balances?limit=%" PRId64, ask);
        }
        kp_free(cursor);
        fan_t f, *fp = &f;
        fan_init(&f, "account", path);
        fan_run(w, &fp, 1);

        json_t *exact     = NULL;
        int exact_missing = 0;
        if (lookup) {
                int st = web_store_get(w, "account", "balances", prefix, &exact,
                                       NULL);
                exact_missing = st == 503;
        }
        web_page_t *pages = kp_calloc(f.cnt + 1, sizeof(*pages));
        size_t pcnt = 0, total = 0;
        for (size_t i = 0; i < f.cnt; i++) {
                if (!f.answers[i])
                        continue;
                page_of(f.answers[i], (size_t)limit, &pages[pcnt]);
                total += pages[pcnt++].cnt;
        }
        web_item_t ex;
        if (exact) {
                ex            = (web_item_t){prefix, strlen(prefix), pp, exact};
                pages[pcnt++] = (web_page_t){&ex, 1, 0};
                total++;
        }
        web_item_t *out = kp_calloc(total + 1, sizeof(*out));
        int more        = 0;
        size_t m =
            web_page_merge(pages, pcnt, prefix, (size_t)limit, out, &more);
        json_t *items = json_array();
        for (size_t i = 0; i < m; i++) {
                json_t *a = account_json(out[i].key, out[i].klen, out[i].value);
                if (a)
                        kp_json_append(items, a);
        }
        json_t *o = json_object();
        kp_json_set(o, "items", items);
        if (more && m > 0) {
                char *c = web_cursor_of(&out[m - 1]);
                kp_json_set(o, "next", json_string(c));
                kp_free(c);
        } else {
                kp_json_set(o, "next", json_null());
        }
        if (exact_missing && pp >= 0) {
                int have = 0;
                for (size_t i = 0; i < f.missing_cnt; i++)
                        have |= f.missing[i] == pp;
                if (!have) {
                        f.missing = kp_realloc(
                            f.missing, (f.missing_cnt + 1) * sizeof(int32_t));
                        f.missing[f.missing_cnt++] = pp;
                }
        }
        set_partial(o, &f, exact_missing);
        kp_http_resp_json(r->resp, 200, o);
        for (size_t i = 0; i < pcnt; i++)
                if (pages[i].items != &ex)
                        kp_free(pages[i].items);
        kp_free(pages);
        kp_free(out);
        json_decref(exact);
        fan_clear(&f);
}

static void h_account(web_req_t *r) {
        const char *id = web_param(r, "id");
        json_t *v;
        int32_t part;
        if (check_account(r, id))
                return;
        int st = web_store_get(r->w, "account", "balances", id, &v, &part);
        if (st == 200) {
                json_t *a = account_json(id, strlen(id), v);
                json_decref(v);
                if (a)
                        kp_http_resp_json(r->resp, 200, a);
                else
                        kp_http_resp_error(r->resp, 500, "internal",
                                           "the account's stored value does "
                                           "not decode");
        } else if (st == 404) {
                kp_http_resp_error(r->resp, 404, "not_found", "no account %s",
                                   id);
        } else {
                web_resp_unavailable(r->resp, &part, part >= 0 ? 1 : 0,
                                     "the instance owning the account's "
                                     "partition did not answer");
        }
}

static void account_command(web_req_t *r, kp_cmd_type_t type) {
        const char *id = web_param(r, "id");
        if (check_account(r, id))
                return;
        size_t blen      = 0;
        const char *body = kp_http_req_body(r->http, &blen);
        char cid[KP_PAYMENT_ID_MAX + 1];
        snprintf(cid, sizeof(cid), "web-%" PRId64 "-%08x", kp_wall_ms(),
                 (unsigned)random());
        if (body && blen) {
                /* An optional body: {"id": "<command id>"}, nothing else. */
                json_t *j = web_body_object(r);
                if (!j)
                        return;
                const char *k;
                json_t *v;
                json_object_foreach(j, k, v) {
                        if (strcmp(k, "id") || !json_is_string(v) ||
                            !kp_payment_id_valid(json_string_value(v))) {
                                kp_http_resp_error(
                                    r->resp, 400, "bad_request",
                                    "the body may only hold \"id\": 1-%d "
                                    "printable ASCII characters",
                                    KP_PAYMENT_ID_MAX);
                                json_decref(j);
                                return;
                        }
                        snprintf(cid, sizeof(cid), "%s", json_string_value(v));
                }
                json_decref(j);
        }
        kp_account_cmd_t cmd = {
            .v = 1, .command = type, .created_ms = kp_wall_ms()};
        snprintf(cmd.account, sizeof(cmd.account), "%s", id);
        snprintf(cmd.id, sizeof(cmd.id), "%s", cid);
        size_t len;
        char *enc = kp_account_cmd_serialize(&cmd, &len);
        json_t *j = json_loadb(enc, len, 0, NULL);
        kp_free(enc);
        /* Who asked, for kpay-account's audit record (an extra field,
         * which older readers ignore: docs/events.md). */
        kp_json_set(j, "actor", json_string(r->actor));
        enc = kp_json_dump(j);
        kp_err_t err =
            web_produce(r->w, r->w->topic_inflight, id, enc, strlen(enc), NULL);
        kp_free(enc);
        if (err) {
                kp_http_resp_error(
                    r->resp, err == KP_ERR_TIMED_OUT ? 504 : 503,
                    err == KP_ERR_TIMED_OUT ? "timeout" : "unavailable",
                    "the command could not be written to %s",
                    r->w->topic_inflight);
                return;
        }
        kp_http_resp_json(
            r->resp, 202,
            json_pack("{s:s, s:s, s:s}", "account", id, "command",
                      type == KP_CMD_FREEZE ? "FREEZE" : "UNFREEZE", "id",
                      cid));
}

static void h_freeze(web_req_t *r) {
        account_command(r, KP_CMD_FREEZE);
}

static void h_unfreeze(web_req_t *r) {
        account_command(r, KP_CMD_UNFREEZE);
}

/* ------------------------------------------------------------------------
 * Pipeline totals. */

/* Walks the items of key @p key in a scan group's answers, each partition
 * once (an instance that still lists a partition that moved, say). */
typedef void(totals_cb)(const json_t *value, void *opaque);

static void foreach_key(const fan_t *f, const char *key, totals_cb *cb,
                        void *opaque) {
        size_t n   = f->partition_count > 0 ? (size_t)f->partition_count : 0;
        char *seen = kp_calloc(n + 1, 1);
        for (size_t i = 0; i < f->cnt; i++) {
                json_t *items = json_object_get(f->answers[i], "items"), *it;
                size_t k;
                json_array_foreach(items, k, it) {
                        const char *ik =
                            json_string_value(json_object_get(it, "key"));
                        json_t *jp = json_object_get(it, "partition");
                        if (!ik || strcmp(ik, key) || !json_is_integer(jp))
                                continue;
                        json_int_t p = json_integer_value(jp);
                        if (p < 0 || (size_t)p >= n || seen[p])
                                continue;
                        seen[p] = 1;
                        cb(json_object_get(it, "value"), opaque);
                }
        }
        kp_free(seen);
}

/* A count and amounts, summed over partitions. */
typedef struct sum_s {
        int64_t count;
        kp_money_t amounts;
        int bad; /* a value that did not decode, or an overflow */
} sum_t;

static void sum_init(sum_t *s) {
        s->count = 0;
        s->bad   = 0;
        kp_money_init(&s->amounts);
}

static void sum_add(sum_t *s, int64_t count, const kp_money_t *amounts) {
        if (__builtin_add_overflow(s->count, count, &s->count) ||
            kp_money_add_all(&s->amounts, amounts))
                s->bad = 1;
}

/* {"count","amounts"} (count and amounts null when unknown); frees @p s. */
static json_t *sum_json(sum_t *s) {
        json_t *o = json_object();
        kp_json_set(o, "count", s->bad ? json_null() : json_integer(s->count));
        kp_json_set(o, "amounts",
                    s->bad
                        ? json_null()
                        : kp_money_to_json(&s->amounts, KP_MONEY_JSON_STRING));
        kp_money_clear(&s->amounts);
        return o;
}

static char *dump_value(const json_t *v) {
        return kp_json_dump(json_incref((json_t *)v));
}

static void inflight_cb(const json_t *value, void *opaque) {
        sum_t *s = opaque;
        inflight_record_t rec;
        inflight_record_init(&rec);
        char *enc = dump_value(value);
        if (inflight_totals_decode(enc, strlen(enc), &rec))
                s->bad = 1;
        else
                sum_add(s, rec.inflight_count, &rec.inflight_amounts);
        kp_free(enc);
        inflight_record_clear(&rec);
}

/* Confirmed and rejected of one key ("all" or a day). */
typedef struct outcome_sums_s {
        sum_t confirmed, rejected;
} outcome_sums_t;

static void confirmed_cb(const json_t *value, void *opaque) {
        outcome_sums_t *s = opaque;
        confirmed_record_t rec;
        confirmed_record_init(&rec);
        char *enc = dump_value(value);
        if (confirmed_totals_decode(enc, strlen(enc), &rec)) {
                s->confirmed.bad = s->rejected.bad = 1;
        } else {
                sum_add(&s->confirmed, rec.confirmed_count,
                        &rec.confirmed_amounts);
                sum_add(&s->rejected, rec.rejected_count,
                        &rec.rejected_amounts);
        }
        kp_free(enc);
        confirmed_record_clear(&rec);
}

/* Adds {"service","partitions"} for a partial group to @p missing, once
 * per service (the partitions of several groups of it joined). */
static void add_missing(json_t *missing, const fan_t *f) {
        if (!fan_partial(f))
                return;
        const char *svc = f->control ? "control" : f->service;
        size_t i;
        json_t *m;
        json_array_foreach(missing, i, m) {
                if (strcmp(json_string_value(json_object_get(m, "service")),
                           svc))
                        continue;
                json_t *parts = json_object_get(m, "partitions");
                for (size_t k = 0; k < f->missing_cnt; k++) {
                        int have = 0;
                        size_t x;
                        json_t *pv;
                        json_array_foreach(parts, x, pv) have |=
                            json_integer_value(pv) == f->missing[k];
                        if (!have)
                                kp_json_append(parts,
                                               json_integer(f->missing[k]));
                }
                return;
        }
        kp_json_append(missing,
                       json_pack("{s:s, s:o}", "service", svc, "partitions",
                                 parts_json(f->missing, f->missing_cnt)));
}

/* The first answer of a group, borrowed, or NULL. */
static json_t *first_answer(const fan_t *f) {
        for (size_t i = 0; i < f->cnt; i++)
                if (f->answers[i])
                        return f->answers[i];
        return NULL;
}

/* The merged SLA of the metrics groups (minute windows, /sla), or null. */
static json_t *sla_json(const fan_t *minutes, const fan_t *sla, int64_t now) {
        char why[256];
        json_t *obj = json_object_get(first_answer(sla), "objectives");
        if (!obj || !first_answer(minutes))
                return json_null();
        json_t *m = web_merge_windows(minutes->answers, minutes->cnt, NULL, why,
                                      sizeof(why));
        json_t *v = m ? web_sla_of(m, obj, now, why, sizeof(why)) : NULL;
        json_decref(m);
        if (!v) {
                KP_WARN("the SLA of the metrics instances: %s", why);
                return json_null();
        }
        return v;
}

/* The groups of /pipeline (and of the /events ticks): inflight totals,
 * confirmed all and today, control, the minutes and objectives of the
 * SLA, and with @p window the last seconds' windows. */
enum {
        PG_INFLIGHT,
        PG_ALL,
        PG_TODAY,
        PG_CONTROL,
        PG_MINUTES,
        PG_SLA,
        PG_SECONDS,
        PG__CNT
};

/* The path of a scan of @p store that starts right before key @p key on
 * every partition (keys > its prefix without the last byte): the
 * partitions' records of one key (a per-partition total) come first. */
static char *scan_from_key(const char *store, const char *key) {
        size_t kl = strlen(key);
        char *c   = kp_asprintf("0:%.*s", (int)(kl - 1), key);
        char *ec  = kp_http_url_encode(c);
        char *p   = kp_asprintf("/v1/stores/%s?limit=1000&after=%s", store, ec);
        kp_free(c);
        kp_free(ec);
        return p;
}

static json_t *pipeline_build(web_t *w, int with_window, json_t **windowp,
                              json_t **controlp) {
        fan_t g[PG__CNT], *gp[PG__CNT];
        int64_t now    = kp_wall_ms();
        int64_t minute = now - now % 60000;
        char day[CONFIRMED_DAY_KEY_SIZE];
        confirmed_day_key(day, sizeof(day), now);
        fan_init(&g[PG_INFLIGHT], "inflight",
                 scan_from_key("totals", INFLIGHT_TOTALS_KEY));
        fan_init(&g[PG_ALL], "confirmed",
                 scan_from_key("totals", CONFIRMED_ALL_KEY));
        fan_init(&g[PG_TODAY], "confirmed", scan_from_key("totals", day));
        fan_init(&g[PG_CONTROL], "control", kp_strdup("/api/v1/control"));
        g[PG_CONTROL].control = 1;
        fan_init(&g[PG_MINUTES], "metrics",
                 kp_asprintf("/v1/metrics/windows?size=1m&from=%" PRId64
                             "&to=%" PRId64,
                             minute - 15 * 60000, minute + 60000));
        fan_init(&g[PG_SLA], "metrics", kp_strdup("/v1/metrics/sla"));
        fan_init(&g[PG_SECONDS], "metrics",
                 kp_asprintf("/v1/metrics/windows?size=1s&from=%" PRId64
                             "&to=%" PRId64,
                             now - 10000, now));
        size_t gcnt = with_window ? PG__CNT : PG__CNT - 1;
        for (size_t i = 0; i < gcnt; i++)
                gp[i] = &g[i];
        fan_run(w, gp, gcnt);

        sum_t inflight;
        outcome_sums_t all, today;
        sum_init(&inflight);
        sum_init(&all.confirmed);
        sum_init(&all.rejected);
        sum_init(&today.confirmed);
        sum_init(&today.rejected);
        foreach_key(&g[PG_INFLIGHT], INFLIGHT_TOTALS_KEY, inflight_cb,
                    &inflight);
        foreach_key(&g[PG_ALL], CONFIRMED_ALL_KEY, confirmed_cb, &all);
        foreach_key(&g[PG_TODAY], day, confirmed_cb, &today);
        json_t *o = json_object(), *missing = json_array();
        kp_json_set(o, "inflight", sum_json(&inflight));
        kp_json_set(o, "confirmed",
                    json_pack("{s:o, s:o}", "all", sum_json(&all.confirmed),
                              "today", sum_json(&today.confirmed)));
        kp_json_set(o, "rejected",
                    json_pack("{s:o, s:o}", "all", sum_json(&all.rejected),
                              "today", sum_json(&today.rejected)));
        json_t *control = first_answer(&g[PG_CONTROL]);
        kp_json_set(o, "control", control ? json_incref(control) : json_null());
        kp_json_set(o, "sla", sla_json(&g[PG_MINUTES], &g[PG_SLA], now));
        for (size_t i = 0; i < gcnt; i++)
                if (i != PG_SECONDS)
                        add_missing(missing, &g[i]);
        kp_json_set(o, "partial", json_boolean(json_array_size(missing) > 0));
        kp_json_set(o, "missing", missing);
        if (controlp)
                *controlp = control ? json_incref(control) : json_null();
        if (with_window && windowp) {
                /* The latest second that every part has closed. */
                char why[256];
                json_t *m = web_merge_windows(
                    g[PG_SECONDS].answers, g[PG_SECONDS].cnt,
                    json_object_get(first_answer(&g[PG_SLA]), "objectives"),
                    why, sizeof(why));
                json_t *last = NULL, *wj;
                size_t i;
                json_array_foreach(json_object_get(m, "windows"), i, wj) {
                        if (json_is_true(json_object_get(wj, "final")))
                                last = wj;
                }
                *windowp = last ? json_incref(last) : json_null();
                json_decref(m);
        }
        for (size_t i = 0; i < PG__CNT;
             i++) /* the window group too, asked or not */
                fan_clear(&g[i]);
        return o;
}

static void h_pipeline(web_req_t *r) {
        kp_http_resp_json(r->resp, 200, pipeline_build(r->w, 0, NULL, NULL));
}

/* ------------------------------------------------------------------------
 * Metrics, merged over the kpay-metrics instances. */

/* @p name as a query parameter "&name=value" for the instances, when it
 * is an integer >= 0 (else 400). */
static int pass_int(web_req_t *r, const char *name, char *buf, size_t size) {
        int64_t v;
        buf[0] = '\0';
        if (query_int(r, name, -1, 0, INT64_MAX, &v))
                return -1;
        if (v >= 0)
                snprintf(buf, size, "&%s=%" PRId64, name, v);
        return 0;
}

static void h_windows(web_req_t *r) {
        const char *size = kp_http_req_query(r->http, "size");
        char from[40], to[40], why[256];
        if (size && strcmp(size, "1s") && strcmp(size, "1m")) {
                kp_http_resp_error(r->resp, 400, "bad_request",
                                   "size must be 1s or 1m");
                return;
        }
        if (pass_int(r, "from", from, sizeof(from)) ||
            pass_int(r, "to", to, sizeof(to)))
                return;
        fan_t g[2], *gp[2] = {&g[0], &g[1]};
        fan_init(&g[0], "metrics",
                 kp_asprintf("/v1/metrics/windows?size=%s%s%s",
                             size ? size : "1s", from, to));
        fan_init(&g[1], "metrics", kp_strdup("/v1/metrics/sla"));
        fan_run(r->w, gp, 2);
        /* An instance's 400 (from > to...) is the caller's. */
        for (size_t i = 0; i < g[0].cnt; i++)
                if (g[0].status[i] == 400) {
                        kp_http_resp_error(r->resp, 400, "bad_request",
                                           "from and to are ms since the "
                                           "epoch, from <= to, at most 3600 "
                                           "windows");
                        fan_clear(&g[0]);
                        fan_clear(&g[1]);
                        return;
                }
        json_t *m = web_merge_windows(
            g[0].answers, g[0].cnt,
            json_object_get(first_answer(&g[1]), "objectives"), why,
            sizeof(why));
        if (m) {
                set_partial(m, &g[0], 0);
                kp_http_resp_json(r->resp, 200, m);
        } else {
                kp_http_resp_error(r->resp, 502, "unavailable",
                                   "the metrics instances' windows do not "
                                   "merge: %s",
                                   why);
        }
        fan_clear(&g[0]);
        fan_clear(&g[1]);
}

static void h_sla(web_req_t *r) {
        int64_t now = kp_wall_ms(), minute = now - now % 60000;
        fan_t g[2], *gp[2]                 = {&g[0], &g[1]};
        fan_init(&g[0], "metrics",
                 kp_asprintf("/v1/metrics/windows?size=1m&from=%" PRId64
                             "&to=%" PRId64,
                             minute - 15 * 60000, minute + 60000));
        fan_init(&g[1], "metrics", kp_strdup("/v1/metrics/sla"));
        fan_run(r->w, gp, 2);
        json_t *v = sla_json(&g[0], &g[1], now);
        if (json_is_object(v)) {
                set_partial(v, &g[0], 0);
                kp_http_resp_json(r->resp, 200, v);
        } else {
                json_decref(v);
                web_resp_unavailable(r->resp, g[0].missing, g[0].missing_cnt,
                                     "no kpay-metrics instance answered");
        }
        fan_clear(&g[0]);
        fan_clear(&g[1]);
}

static void h_slowest(web_req_t *r) {
        char minute[40], why[256];
        if (pass_int(r, "minute", minute, sizeof(minute)))
                return;
        fan_t f, *fp = &f;
        fan_init(&f, "metrics",
                 kp_asprintf("/v1/metrics/slowest?x=1%s", minute));
        fan_run(r->w, &fp, 1);
        /* Each instance keeps its --slowest N; the merge keeps as many as
         * the longest answer (at least the default). */
        size_t max = SLOWEST_DEFAULT;
        for (size_t i = 0; i < f.cnt; i++) {
                size_t n =
                    json_array_size(json_object_get(f.answers[i], "items"));
                if (n > max)
                        max = n;
        }
        json_t *m = web_merge_slowest(f.answers, f.cnt, max, why, sizeof(why));
        if (m) {
                if (!first_answer(&f))
                        kp_json_set(m, "minute_ms", json_null());
                set_partial(m, &f, 0);
                kp_http_resp_json(r->resp, 200, m);
        } else {
                kp_http_resp_error(r->resp, 502, "unavailable",
                                   "the metrics instances' lists do not "
                                   "merge: %s",
                                   why);
        }
        fan_clear(&f);
}

/* ------------------------------------------------------------------------
 * Instances. */

/* The sum of kpay_consumer_lag in a Prometheus text, or -1 without any. */
static int64_t lag_of(const char *text) {
        static const char name[] = "kpay_consumer_lag";
        int64_t sum              = -1;
        for (const char *l = text; l && *l;) {
                const char *e = strchr(l, '\n');
                if (!strncmp(l, name, sizeof(name) - 1) &&
                    (l[sizeof(name) - 1] == '{' ||
                     l[sizeof(name) - 1] == ' ')) {
                        const char *sp = e ? e : l + strlen(l);
                        while (sp > l && sp[-1] != ' ')
                                sp--;
                        double v = strtod(sp, NULL);
                        if (v >= 0 && v < 9e18)
                                sum = (sum < 0 ? 0 : sum) + (int64_t)v;
                }
                l = e ? e + 1 : NULL;
        }
        return sum;
}

static void h_instances(web_req_t *r) {
        fan_t f, *fp = &f;
        fan_init(&f, NULL, kp_strdup("/metrics"));
        f.raw = 1;
        fan_run(r->w, &fp, 1);
        int64_t now   = kp_wall_ms();
        json_t *items = json_array();
        for (size_t i = 0; i < f.cnt; i++) {
                const kp_instance_info_t *in = &f.infos[i];
                int64_t lag = f.texts[i] ? lag_of(f.texts[i]) : -1;
                kp_json_append(
                    items,
                    json_pack("{s:s?, s:s?, s:s?, s:s?, s:o, s:o, s:I, s:I}",
                              "service", in->service, "instance", in->instance,
                              "endpoint", in->endpoint, "state", in->state,
                              "partitions",
                              parts_json(in->partitions, in->partition_cnt),
                              "lag", lag >= 0 ? json_integer(lag) : json_null(),
                              "heartbeat_ms", (json_int_t)in->ts, "age_ms",
                              (json_int_t)(now - in->ts)));
        }
        fan_clear(&f);
        kp_http_resp_json(r->resp, 200, json_pack("{s:o}", "items", items));
}

/* ------------------------------------------------------------------------
 * kpay-control, proxied: status and body as it answers. */

static void proxy_control(web_req_t *r, const char *method, const char *path) {
        fan_t f;
        fan_init(&f, "control", kp_strdup(path));
        f.control = 1;
        control_target(r->w, &f);
        if (!f.cnt) {
                fan_clear(&f);
                kp_http_resp_error(r->resp, 503, "unavailable",
                                   "no kpay-control instance is live");
                return;
        }
        char hdrs[2048]                 = "";
        size_t of                       = 0;
        static const char *const pass[] = {"Authorization", "X-KPay-Actor",
                                           "Content-Type"};
        for (size_t i = 0; i < sizeof(pass) / sizeof(pass[0]); i++) {
                const char *v = kp_http_req_header(r->http, pass[i]);
                if (v && !strpbrk(v, "\r\n") &&
                    of + strlen(pass[i]) + strlen(v) + 5 < sizeof(hdrs))
                        of += (size_t)snprintf(hdrs + of, sizeof(hdrs) - of,
                                               "%s: %s\r\n", pass[i], v);
        }
        size_t blen       = 0;
        const char *body  = kp_http_req_body(r->http, &blen);
        char *b           = body ? kp_strndup(body, blen) : NULL;
        kp_fanout_req_t q = {.method   = method,
                             .hostport = f.infos[0].endpoint,
                             .path     = f.path,
                             .body     = b};
        kp_fanout_run(&q, 1, hdrs[0] ? hdrs : NULL,
                      (int)r->w->conf->request_timeout_ms);
        kp_free(b);
        if (q.status > 0 && q.resp)
                kp_http_resp_text(r->resp, q.status, "application/json", q.resp,
                                  q.resp_len);
        else if (q.status > 0)
                kp_http_resp_text(r->resp, q.status, "application/json", "", 0);
        else if (q.timed_out)
                kp_http_resp_error(r->resp, 504, "timeout",
                                   "kpay-control did not answer within "
                                   "%" PRId64 " ms",
                                   r->w->conf->request_timeout_ms);
        else
                kp_http_resp_error(r->resp, 503, "unavailable",
                                   "kpay-control: %s", q.errstr);
        kp_fanout_clear(&q, 1);
        fan_clear(&f);
}

static void h_control(web_req_t *r) {
        proxy_control(r, "GET", "/api/v1/control");
}

static void h_pause(web_req_t *r) {
        proxy_control(r, "POST", "/api/v1/control/pause");
}

static void h_resume(web_req_t *r) {
        proxy_control(r, "POST", "/api/v1/control/resume");
}

static void h_rate_limit(web_req_t *r) {
        proxy_control(r, "PUT", "/api/v1/control/rate-limit");
}

/* ------------------------------------------------------------------------
 * Dead letters: kpay.dlq read directly, newest first. */

/* api.c's own state. */
typedef struct api_s {
        pthread_mutex_t dlq_lock; /* one DLQ page at a time */
        rd_kafka_t *dlq;          /* assign-only consumer, made on first use */
        /* The /events ticker: one pipeline fan-out a second while anyone
         * listens, shared by every stream. */
        pthread_mutex_t ev_lock;
        pthread_cond_t ev_cond;
        pthread_t ev_thread;
        int ev_started;
        int ev_stop;
        int ev_listeners;
        uint64_t ev_seq; /* ticks made */
        char *ev_text;   /* the last tick, as an SSE event */
} api_t;

static api_t api = {.dlq_lock = PTHREAD_MUTEX_INITIALIZER,
                    .ev_lock  = PTHREAD_MUTEX_INITIALIZER};

static rd_kafka_t *dlq_consumer(web_t *w, char *errstr, size_t errstr_size) {
        if (api.dlq)
                return api.dlq;
        static const kp_kafka_prop_t props[] = {
            {"enable.auto.commit", "false", KP_PROP_REQUIRE},
            {"enable.auto.offset.store", "false", KP_PROP_REQUIRE},
            {"isolation.level", "read_committed", KP_PROP_REQUIRE},
            {"enable.partition.eof", "true", KP_PROP_REQUIRE},
            {"group.id", "kpay-web-dlq", KP_PROP_DEFAULT},
            {NULL},
        };
        char cid[300];
        snprintf(cid, sizeof(cid), "kpay-web-%s-dlq",
                 w->svc ? kp_service_instance(w->svc) : "test");
        rd_kafka_conf_t *conf = kp_kafka_conf_build(
            kp_service_app_conf(w->svc), cid, props, errstr, errstr_size);
        if (!conf)
                return NULL;
        api.dlq = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size);
        if (!api.dlq)
                rd_kafka_conf_destroy(conf);
        else
                rd_kafka_poll_set_consumer(api.dlq);
        return api.dlq;
}

/* One partition's part of a page. */
typedef struct dlq_part_s {
        int64_t lo, end; /* read [start, end) */
        int64_t start;
        rd_kafka_message_t **msgs; /* in offset order */
        size_t cnt;
        size_t take; /* taken from the top (newest offsets) */
} dlq_part_t;

static const char *hdr(const rd_kafka_message_t *m, const char *name, char *buf,
                       size_t size) {
        rd_kafka_headers_t *h = NULL;
        const void *v;
        size_t len;
        if (rd_kafka_message_headers(m, &h) ||
            rd_kafka_header_get_last(h, name, &v, &len))
                return NULL;
        if (len >= size)
                len = size - 1;
        memcpy(buf, v, len);
        buf[len] = '\0';
        for (size_t i = 0; i < len; i++)
                if ((unsigned char)buf[i] < 0x20 ||
                    (unsigned char)buf[i] > 0x7e)
                        buf[i] = '?';
        return buf;
}

static json_t *hdr_int(const rd_kafka_message_t *m, const char *name) {
        char buf[32];
        int64_t v;
        if (!hdr(m, name, buf, sizeof(buf)) || kp_parse_int64(buf, &v))
                return json_null();
        return json_integer(v);
}

static json_t *hdr_str(const rd_kafka_message_t *m, const char *name) {
        char buf[512];
        return hdr(m, name, buf, sizeof(buf)) ? json_string(buf) : json_null();
}

static json_t *letter_json(const rd_kafka_message_t *m) {
        rd_kafka_timestamp_type_t tt;
        int64_t ts  = rd_kafka_message_timestamp(m, &tt);
        char *prev  = web_preview(m->payload, m->len, DLQ_PREVIEW_MAX);
        char *key   = m->key ? web_preview(m->key, m->key_len, 256) : NULL;
        json_t *src = json_pack("{s:o, s:o, s:o}", "topic",
                                hdr_str(m, "kpay-source-topic"), "partition",
                                hdr_int(m, "kpay-source-partition"), "offset",
                                hdr_int(m, "kpay-source-offset"));
        json_t *o   = json_pack(
              "{s:i, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:s, s:I}", "partition",
              (int)m->partition, "offset", (json_int_t)m->offset, "timestamp_ms",
            ts >= 0 ? json_integer(ts) : json_null(), "key",
            key ? json_string(key) : json_null(), "error",
              hdr_str(m, "kpay-error"), "detail", hdr_str(m, "kpay-error-detail"),
              "service", hdr_str(m, "kpay-service"), "source", src, "preview",
              prev, "size", (json_int_t)m->len);
        kp_free(prev);
        kp_free(key);
        return o;
}

/* Parses "before": "<partition>:<offset>,..." into @p ends (-1: none). */
static int parse_before(const char *s, int64_t *ends, int32_t cnt) {
        for (int32_t p = 0; p < cnt; p++)
                ends[p] = -1;
        while (s && *s) {
                char num[48];
                const char *comma = strchr(s, ',');
                size_t n          = comma ? (size_t)(comma - s) : strlen(s);
                int32_t p;
                const char *off;
                int64_t v;
                if (n == 0 || n >= sizeof(num))
                        return -1;
                memcpy(num, s, n);
                num[n] = '\0';
                if (web_cursor_parse(num, &p, &off) ||
                    kp_parse_int64(off, &v) || v < 0 || p >= cnt)
                        return -1;
                ends[p] = v;
                s       = comma ? comma + 1 : NULL;
        }
        return 0;
}

/* Reads [start, end) of every partition of @p parts. */
static kp_err_t dlq_read(rd_kafka_t *rk, const char *topic, dlq_part_t *parts,
                         int32_t cnt, int timeout_ms) {
        rd_kafka_topic_partition_list_t *l =
            rd_kafka_topic_partition_list_new(cnt);
        size_t want = 0;
        for (int32_t p = 0; p < cnt; p++)
                if (parts[p].start < parts[p].end) {
                        rd_kafka_topic_partition_list_add(l, topic, p)->offset =
                            parts[p].start;
                        want++;
                }
        kp_err_t err = KP_OK;
        if (want && rd_kafka_assign(rk, l))
                err = KP_ERR_KAFKA;
        rd_kafka_topic_partition_list_destroy(l);
        int64_t deadline = kp_mono_ms() + timeout_ms;
        size_t done      = 0;
        char *fin        = kp_calloc((size_t)cnt + 1, 1);
        while (!err && done < want && kp_mono_ms() < deadline) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 50);
                if (!m)
                        continue;
                int32_t p = m->partition;
                if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                        if (p >= 0 && p < cnt && !fin[p]) {
                                fin[p] = 1;
                                done++;
                        }
                        rd_kafka_message_destroy(m);
                        continue;
                }
                if (!m->err && p >= 0 && p < cnt && !fin[p] &&
                    m->offset >= parts[p].end) {
                        /* Past the range (what was left of it were
                         * transaction markers, which are not delivered). */
                        fin[p] = 1;
                        done++;
                }
                if (m->err || p < 0 || p >= cnt || fin[p] ||
                    m->offset < parts[p].start) {
                        rd_kafka_message_destroy(m);
                        continue;
                }
                dlq_part_t *dp = &parts[p];
                dp->msgs =
                    kp_realloc(dp->msgs, (dp->cnt + 1) * sizeof(*dp->msgs));
                dp->msgs[dp->cnt++] = m;
                if (m->offset + 1 >= dp->end) {
                        fin[p] = 1;
                        done++;
                }
        }
        kp_free(fin);
        rd_kafka_assign(rk, NULL);
        if (!err && done < want)
                err = KP_ERR_TIMED_OUT;
        return err;
}

static void h_dlq(web_req_t *r) {
        web_t *w = r->w;
        int64_t limit;
        char errstr[512];
        if (query_int(r, "limit", DLQ_LIMIT_DEFAULT, 1, DLQ_LIMIT_MAX, &limit))
                return;
        pthread_mutex_lock(&api.dlq_lock);
        rd_kafka_t *rk = dlq_consumer(w, errstr, sizeof(errstr));
        if (!rk) {
                pthread_mutex_unlock(&api.dlq_lock);
                kp_http_resp_error(r->resp, 503, "unavailable", "%s", errstr);
                return;
        }
        int tmo                       = (int)w->conf->request_timeout_ms;
        const rd_kafka_metadata_t *md = NULL;
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, w->topic_dlq, NULL);
        int32_t pcnt          = -1;
        if (rkt && !rd_kafka_metadata(rk, 0, rkt, &md, tmo) &&
            md->topic_cnt == 1 && !md->topics[0].err)
                pcnt = md->topics[0].partition_cnt;
        if (md)
                rd_kafka_metadata_destroy(md);
        if (rkt)
                rd_kafka_topic_destroy(rkt);
        if (pcnt < 0) {
                pthread_mutex_unlock(&api.dlq_lock);
                kp_http_resp_error(r->resp, 503, "unavailable",
                                   "%s cannot be read now", w->topic_dlq);
                return;
        }
        int64_t *ends     = kp_calloc((size_t)pcnt + 1, sizeof(int64_t));
        dlq_part_t *parts = kp_calloc((size_t)pcnt + 1, sizeof(*parts));
        if (parse_before(kp_http_req_query(r->http, "before"), ends, pcnt)) {
                pthread_mutex_unlock(&api.dlq_lock);
                kp_free(ends);
                kp_free(parts);
                kp_http_resp_error(r->resp, 400, "bad_request",
                                   "before must be a cursor as returned in "
                                   "\"next\"");
                return;
        }
        kp_err_t err = KP_OK;
        for (int32_t p = 0; p < pcnt && !err; p++) {
                int64_t lo, hi;
                if (rd_kafka_query_watermark_offsets(rk, w->topic_dlq, p, &lo,
                                                     &hi, tmo)) {
                        err = KP_ERR_TIMED_OUT;
                        break;
                }
                parts[p].lo  = lo;
                parts[p].end = ends[p] >= 0 && ends[p] < hi ? ends[p] : hi;
                if (parts[p].end < lo)
                        parts[p].end = lo;
                parts[p].start =
                    parts[p].end - limit > lo ? parts[p].end - limit : lo;
        }
        if (!err)
                err = dlq_read(rk, w->topic_dlq, parts, pcnt, tmo);
        pthread_mutex_unlock(&api.dlq_lock);
        if (err) {
                for (int32_t p = 0; p < pcnt; p++) {
                        for (size_t i = 0; i < parts[p].cnt; i++)
                                rd_kafka_message_destroy(parts[p].msgs[i]);
                        kp_free(parts[p].msgs);
                }
                kp_free(parts);
                kp_free(ends);
                kp_http_resp_error(
                    r->resp, err == KP_ERR_TIMED_OUT ? 504 : 503,
                    err == KP_ERR_TIMED_OUT ? "timeout" : "unavailable",
                    "%s could not be read within %d ms", w->topic_dlq, tmo);
                return;
        }
        /* Newest first: each partition's letters from its end, the
         * partitions merged by timestamp, so that what a page takes of a
         * partition is always its newest part and the cursor (each
         * partition's lowest offset taken) loses nothing. */
        json_t *items = json_array();
        for (int64_t n = 0; n < limit; n++) {
                int32_t best = -1;
                int64_t bts  = 0;
                for (int32_t p = 0; p < pcnt; p++) {
                        dlq_part_t *dp = &parts[p];
                        if (dp->take >= dp->cnt)
                                continue;
                        rd_kafka_timestamp_type_t tt;
                        int64_t ts = rd_kafka_message_timestamp(
                            dp->msgs[dp->cnt - 1 - dp->take], &tt);
                        if (best < 0 || ts > bts) {
                                best = p;
                                bts  = ts;
                        }
                }
                if (best < 0)
                        break;
                dlq_part_t *dp = &parts[best];
                kp_json_append(items,
                               letter_json(dp->msgs[dp->cnt - 1 - dp->take]));
                dp->take++;
        }
        int more      = 0;
        kp_buf_t next = {0};
        for (int32_t p = 0; p < pcnt; p++) {
                dlq_part_t *dp = &parts[p];
                /* Where the next page ends on this partition: below what
                 * was read when all of it was taken (transaction markers
                 * carry no letter), else below the oldest letter taken. */
                int64_t e = dp->take == dp->cnt ? dp->start
                            : dp->take == 0
                                ? dp->end
                                : dp->msgs[dp->cnt - dp->take]->offset;
                more |= e > dp->lo;
                kp_buf_printf(&next, "%s%d:%" PRId64, p ? "," : "", (int)p, e);
                for (size_t i = 0; i < dp->cnt; i++)
                        rd_kafka_message_destroy(dp->msgs[i]);
                kp_free(dp->msgs);
        }
        char *ns  = kp_buf_take(&next, NULL);
        json_t *o = json_pack("{s:o, s:o}", "items", items, "next",
                              more ? json_string(ns) : json_null());
        kp_free(ns);
        kp_free(parts);
        kp_free(ends);
        kp_http_resp_json(r->resp, 200, o);
}

/* ------------------------------------------------------------------------
 * /events: Server-Sent Events, a tick a second. */

static void *ticker_main(void *arg) {
        web_t *w = arg;
        pthread_mutex_lock(&api.ev_lock);
        while (!api.ev_stop) {
                if (!api.ev_listeners) {
                        pthread_cond_wait(&api.ev_cond, &api.ev_lock);
                        continue;
                }
                pthread_mutex_unlock(&api.ev_lock);
                int64_t t0     = kp_mono_ms();
                json_t *window = NULL, *control = NULL;
                json_t *pl   = pipeline_build(w, 1, &window, &control);
                json_t *tick = json_pack(
                    "{s:I, s:O, s:o, s:o}", "ts", (json_int_t)kp_wall_ms(),
                    "pipeline", pl, "window", window, "control", control);
                json_decref(pl);
                char *data = kp_json_dump(tick);
                char *text = kp_asprintf("event: tick\ndata: %s\n\n", data);
                kp_free(data);
                pthread_mutex_lock(&api.ev_lock);
                kp_free(api.ev_text);
                api.ev_text = text;
                api.ev_seq++;
                pthread_cond_broadcast(&api.ev_cond);
                /* The next tick a second after this one began. */
                int64_t wait = 1000 - (kp_mono_ms() - t0);
                if (wait > 0 && !api.ev_stop) {
                        struct timespec ts;
                        clock_gettime(CLOCK_REALTIME, &ts);
                        ts.tv_sec += wait / 1000;
                        ts.tv_nsec += (wait % 1000) * 1000000L;
                        if (ts.tv_nsec >= 1000000000L) {
                                ts.tv_sec++;
                                ts.tv_nsec -= 1000000000L;
                        }
                        while (!api.ev_stop &&
                               pthread_cond_timedwait(&api.ev_cond,
                                                      &api.ev_lock, &ts) == 0)
                                ;
                }
        }
        pthread_mutex_unlock(&api.ev_lock);
        return NULL;
}

/* One listener's stream. */
typedef struct ev_stream_s {
        web_t *w;
        uint64_t seen; /* the tick it sent last */
        char *pending; /* what is left to send of it */
        size_t off, len;
} ev_stream_t;

static long ev_read(void *opaque, char *buf, size_t max) {
        ev_stream_t *st = opaque;
        while (st->off >= st->len) {
                kp_free(st->pending);
                st->pending = NULL;
                st->off = st->len = 0;
                pthread_mutex_lock(&api.ev_lock);
                while (!api.ev_stop && !atomic_load(&st->w->stopping) &&
                       api.ev_seq == st->seen) {
                        struct timespec ts;
                        clock_gettime(CLOCK_REALTIME, &ts);
                        ts.tv_nsec += 200 * 1000000L;
                        if (ts.tv_nsec >= 1000000000L) {
                                ts.tv_sec++;
                                ts.tv_nsec -= 1000000000L;
                        }
                        pthread_cond_timedwait(&api.ev_cond, &api.ev_lock, &ts);
                }
                if (api.ev_stop || atomic_load(&st->w->stopping)) {
                        pthread_mutex_unlock(&api.ev_lock);
                        return -1;
                }
                st->seen    = api.ev_seq;
                st->pending = kp_strdup(api.ev_text);
                st->len     = strlen(st->pending);
                pthread_mutex_unlock(&api.ev_lock);
        }
        size_t n = st->len - st->off < max ? st->len - st->off : max;
        memcpy(buf, st->pending + st->off, n);
        st->off += n;
        return (long)n;
}

static void ev_free(void *opaque) {
        ev_stream_t *st = opaque;
        pthread_mutex_lock(&api.ev_lock);
        api.ev_listeners--;
        pthread_mutex_unlock(&api.ev_lock);
        kp_free(st->pending);
        kp_free(st);
}

static void h_events(web_req_t *r) {
        pthread_mutex_lock(&api.ev_lock);
        if (!api.ev_started) {
                pthread_condattr_t ca;
                pthread_condattr_init(&ca);
                pthread_cond_init(&api.ev_cond, &ca);
                pthread_condattr_destroy(&ca);
                if (pthread_create(&api.ev_thread, NULL, ticker_main, r->w)) {
                        pthread_cond_destroy(&api.ev_cond);
                        pthread_mutex_unlock(&api.ev_lock);
                        kp_http_resp_error(r->resp, 503, "unavailable",
                                           "cannot start the event ticker");
                        return;
                }
                api.ev_started = 1;
        }
        api.ev_listeners++;
        pthread_cond_broadcast(&api.ev_cond);
        ev_stream_t *st = kp_calloc(1, sizeof(*st));
        st->w           = r->w;
        /* A first line at once, so that the client sees the stream open;
         * then every tick from the next one. */
        st->seen    = api.ev_seq;
        st->pending = kp_strdup("retry: 1000\n: kpay-web events\n\n");
        st->len     = strlen(st->pending);
        pthread_mutex_unlock(&api.ev_lock);
        kp_http_resp_header(r->resp, "Cache-Control", "no-cache");
        kp_http_resp_header(r->resp, "X-Accel-Buffering", "no");
        kp_http_resp_stream(r->resp, 200, "text/event-stream", ev_read, ev_free,
                            st);
}

/* ------------------------------------------------------------------------
 * Registration. */

static void h_openapi(web_req_t *r) {
        const char *doc = web_openapi_json();
        kp_http_resp_text(r->resp, 200, "application/json", doc, strlen(doc));
}

void web_api_routes(web_t *w) {
        web_route(w, "GET", "/openapi.json", WEB_ROUTE_HIDDEN, h_openapi, NULL);
        web_route(w, "GET", "/api/v1/accounts", 0, h_accounts, NULL);
        web_route(w, "GET", "/api/v1/accounts/{id}", 0, h_account, NULL);
        web_route(w, "POST", "/api/v1/accounts/{id}/freeze", WEB_ROUTE_MUTATION,
                  h_freeze, NULL);
        web_route(w, "POST", "/api/v1/accounts/{id}/unfreeze",
                  WEB_ROUTE_MUTATION, h_unfreeze, NULL);
        web_route(w, "GET", "/api/v1/pipeline", 0, h_pipeline, NULL);
        web_route(w, "GET", "/api/v1/metrics/windows", 0, h_windows, NULL);
        web_route(w, "GET", "/api/v1/metrics/sla", 0, h_sla, NULL);
        web_route(w, "GET", "/api/v1/metrics/slowest", 0, h_slowest, NULL);
        web_route(w, "GET", "/api/v1/instances", 0, h_instances, NULL);
        web_route(w, "GET", "/api/v1/dlq", 0, h_dlq, NULL);
        web_route(w, "GET", "/api/v1/events", 0, h_events, NULL);
        web_route(w, "GET", "/api/v1/control", 0, h_control, NULL);
        web_route(w, "POST", "/api/v1/control/pause", WEB_ROUTE_MUTATION,
                  h_pause, NULL);
        web_route(w, "POST", "/api/v1/control/resume", WEB_ROUTE_MUTATION,
                  h_resume, NULL);
        web_route(w, "PUT", "/api/v1/control/rate-limit", WEB_ROUTE_MUTATION,
                  h_rate_limit, NULL);
}

void web_api_tick(web_t *w, int64_t now_ms) {
        (void)w;
        (void)now_ms;
}

void web_api_fini(web_t *w) {
        (void)w;
        pthread_mutex_lock(&api.ev_lock);
        int started = api.ev_started;
        api.ev_stop = 1;
        if (started)
                pthread_cond_broadcast(&api.ev_cond);
        pthread_mutex_unlock(&api.ev_lock);
        if (started) {
                pthread_join(api.ev_thread, NULL);
                pthread_cond_destroy(&api.ev_cond);
        }
        kp_free(api.ev_text);
        api.ev_text = NULL;
        if (api.dlq) {
                rd_kafka_consumer_close(api.dlq);
                rd_kafka_destroy(api.dlq);
                api.dlq = NULL;
        }
}

/* cmake/embed.cmake's copy of web-tier/openapi.json. */
extern const char web_openapi_doc[];

/* Renames the $refs to kpay-control's schemas inside @p v. */
static void rename_refs(json_t *v) {
        static const char pre[] = "#/components/schemas/";
        const char *k;
        json_t *x;
        size_t i;
        if (json_is_object(v)) {
                json_object_foreach(v, k, x) {
                        const char *ref = json_string_value(x);
                        if (!strcmp(k, "$ref") && ref &&
                            !strncmp(ref, pre, sizeof(pre) - 1)) {
                                char *n = kp_asprintf(
                                    "%sControl%s", pre,
                                    !strcmp(ref + sizeof(pre) - 1, "Control")
                                        ? "Status"
                                        : ref + sizeof(pre) - 1);
                                json_object_set_new(v, k, json_string(n));
                                kp_free(n);
                        } else {
                                rename_refs(x);
                        }
                }
        } else if (json_is_array(v)) {
                json_array_foreach(v, i, x) rename_refs(x);
        }
}

static char *openapi_text;

/* The document: web-tier/openapi.json with kpay-control's schemas (its
 * own document's) added as ControlStatus, ControlInstance, ControlReason
 * and ControlRateLimit, so that the proxied bodies are described once. */
static void openapi_build(void) {
        static const char *const names[] = {"Control", "Instance", "Reason",
                                            "RateLimit"};
        json_t *doc                      = json_loads(web_openapi_doc, 0, NULL);
        json_t *ctl = json_loads(control_openapi_json(), 0, NULL);
        json_t *dst =
            json_object_get(json_object_get(doc, "components"), "schemas");
        json_t *src =
            json_object_get(json_object_get(ctl, "components"), "schemas");
        if (!doc || !dst || !src) {
                KP_FATAL("the compiled-in OpenAPI documents do not parse");
                abort();
        }
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                json_t *sc = json_deep_copy(json_object_get(src, names[i]));
                if (!sc) {
                        KP_FATAL("kpay-control's OpenAPI has no %s", names[i]);
                        abort();
                }
                rename_refs(sc);
                char *n =
                    kp_asprintf("Control%s", i == 0 ? "Status" : names[i]);
                kp_json_set(dst, n, sc);
                kp_free(n);
        }
        json_decref(ctl);
        openapi_text = kp_json_dump(doc);
}

const char *web_openapi_json(void) {
        static pthread_once_t once = PTHREAD_ONCE_INIT;
        pthread_once(&once, openapi_build);
        return openapi_text;
}
