/* kp_proc_query.c: interactive queries on the committed state of this
 * instance's stores (/v1/stores, docs/runtime.md), the processor's part of
 * InstanceInfo, and consumer lag from librdkafka's statistics. */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kp_proc_int.h"
#include "kpay/kp_conf.h"
#include "kpay/kp_discovery.h"
#include "kpay/kp_http.h"
#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"

static int store_index(const kp_proc_t *proc, const char *name, size_t len) {
        for (int s = 0; s < proc->store_cnt; s++)
                if (strlen(proc->store_names[s]) == len &&
                    !strncmp(proc->store_names[s], name, len))
                        return s;
        return -1;
}

/* A store value as JSON: itself when it is JSON, else a string when it is
 * UTF-8, else hex under "value_hex". */
static void set_value(json_t *obj, const void *val, size_t vlen) {
        json_error_t jerr;
        json_t *v =
            json_loadb(val, vlen, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        if (!v)
                v = json_stringn(val, vlen);
        if (v) {
                json_object_set_new(obj, "value", v);
                return;
        }
        char *hex = kp_malloc(vlen * 2 + 1);
        for (size_t i = 0; i < vlen; i++)
                snprintf(hex + i * 2, 3, "%02x",
                         ((const unsigned char *)val)[i]);
        json_object_set_new(obj, "value_hex", json_string(hex));
        kp_free(hex);
}

static json_t *key_json(const void *key, size_t klen) {
        json_t *k = json_stringn(key, klen);
        return k ? k : json_string("(binary key)");
}

static void h_store_list(kp_proc_t *proc, kp_http_resp_t *resp) {
        json_t *stores = json_array();
        pthread_rwlock_rdlock(&proc->tasks_lock);
        for (int s = 0; s < proc->store_cnt; s++) {
                json_t *parts   = json_array();
                json_int_t keys = 0;
                for (int32_t p = 0; p < proc->partition_cnt; p++) {
                        task_t *t = proc->tasks[p];
                        if (!t || !t->ready)
                                continue;
                        json_array_append_new(parts, json_integer(p));
                        keys +=
                            (json_int_t)kp_store_estimate_keys(t->stores[s]);
                }
                json_array_append_new(
                    stores,
                    json_pack("{s:s, s:o, s:I}", "name", proc->store_names[s],
                              "partitions", parts, "keys_estimate", keys));
        }
        pthread_rwlock_unlock(&proc->tasks_lock);
        kp_http_resp_json(
            resp, 200,
            json_pack("{s:s, s:s, s:i, s:o}", "service", proc->service,
                      "instance", proc->conf->instance_id, "partition_count",
                      (int)proc->partition_cnt, "stores", stores));
}

static void h_store_key(kp_proc_t *proc, int s, const char *key,
                        kp_http_resp_t *resp) {
        size_t klen = strlen(key);
        if (!klen) {
                kp_http_resp_error(resp, 400, "bad_request", "empty key");
                return;
        }
        pthread_rwlock_rdlock(&proc->tasks_lock);
        if (!proc->tasks || proc->partition_cnt <= 0) {
                pthread_rwlock_unlock(&proc->tasks_lock);
                kp_http_resp_error(resp, 503, "starting",
                                   "this instance has not joined yet");
                return;
        }
        int32_t p = kp_partition_for_key(key, klen, proc->partition_cnt);
        task_t *t = proc->tasks[p];
        if (!t || !t->ready) {
                pthread_rwlock_unlock(&proc->tasks_lock);
                /* A partition still restoring here: 503, ask again. */
                json_t *e =
                    t ? json_pack("{s:s, s:s, s:i}", "error", "restoring",
                                  "message",
                                  "the key's partition is still restoring "
                                  "on this instance; retry later",
                                  "partition", (int)p)
                      : json_pack(
                            "{s:s, s:s, s:i}", "error", "not_owned", "message",
                            "this instance does not serve the key's partition "
                            "now; look the owner up in kpay.metadata",
                            "partition", (int)p);
                kp_http_resp_json(resp, t ? 503 : 404, e);
                return;
        }
        void *val = NULL;
        size_t vlen;
        kp_err_t err =
            kp_store_get_committed(t->stores[s], key, klen, &val, &vlen);
        pthread_rwlock_unlock(&proc->tasks_lock);
        if (err == KP_ERR_NOT_FOUND) {
                json_t *e =
                    json_pack("{s:s, s:s, s:i}", "error", "not_found",
                              "message", "no such key", "partition", (int)p);
                kp_http_resp_json(resp, 404, e);
                return;
        }
        if (err) {
                kp_http_resp_error(resp, 500, "store_error", "%s",
                                   kp_err2str(err));
                return;
        }
        json_t *obj =
            json_pack("{s:s, s:s, s:i}", "store", proc->store_names[s], "key",
                      key, "partition", (int)p);
        set_value(obj, val, vlen);
        kp_free(val);
        kp_http_resp_json(resp, 200, obj);
}

typedef struct scan_item_s {
        char *key;
        size_t klen;
        char *val;
        size_t vlen;
        int32_t partition;
} scan_item_t;

typedef struct scan_acc_s {
        scan_item_t *items;
        size_t cnt, cap, limit, from; /* items of this partition start at
                                         from */
        int32_t partition;
} scan_acc_t;

static int scan_collect(const void *key, size_t klen, const void *val,
                        size_t vlen, void *opaque) {
        scan_acc_t *acc = opaque;
        if (acc->cnt == acc->cap) {
                acc->cap = acc->cap ? acc->cap * 2 : 64;
                acc->items =
                    kp_realloc(acc->items, acc->cap * sizeof(*acc->items));
        }
        scan_item_t *it = &acc->items[acc->cnt++];
        it->key         = kp_malloc(klen + 1);
        memcpy(it->key, key, klen);
        it->key[klen] = '\0';
        it->klen      = klen;
        it->val       = kp_malloc(vlen + 1);
        memcpy(it->val, val, vlen);
        it->vlen      = vlen;
        it->partition = acc->partition;
        /* One more than a page: a partition that fills the page alone
         * must still show that it has more ("next"). */
        return acc->cnt - acc->from > acc->limit;
}

/* The scan's order: by key (bytewise), then by partition, so that a key
 * held by several partitions (a per-partition total) is one run of items
 * that a page boundary can split without losing any. */
static int item_cmp(const void *a, const void *b) {
        const scan_item_t *x = a, *y = b;
        size_t n = x->klen < y->klen ? x->klen : y->klen;
        int c    = memcmp(x->key, y->key, n);
        if (c)
                return c;
        if (x->klen != y->klen)
                return x->klen < y->klen ? -1 : 1;
        return x->partition < y->partition ? -1 : x->partition > y->partition;
}

/* The scan cursor "<partition>:<key>" (what "next" holds): the position
 * after that item. @returns 0, or -1 when @p cursor is not one. */
static int parse_cursor(const char *cursor, int32_t partition_cnt,
                        int32_t *partp, const char **keyp) {
        const char *colon = strchr(cursor, ':');
        int64_t p;
        char num[16];
        size_t nlen = colon ? (size_t)(colon - cursor) : 0;
        if (!colon || nlen == 0 || nlen >= sizeof(num))
                return -1;
        memcpy(num, cursor, nlen);
        num[nlen] = '\0';
        for (size_t i = 0; i < nlen; i++)
                if (num[i] < '0' || num[i] > '9')
                        return -1;
        if (kp_parse_int64(num, &p) || p < 0 || p >= partition_cnt)
                return -1;
        *partp = (int32_t)p;
        *keyp  = colon + 1;
        return 0;
}

static json_t *cursor_json(const scan_item_t *it) {
        json_t *k = key_json(it->key, it->klen);
        json_t *c =
            json_sprintf("%d:%s", (int)it->partition, json_string_value(k));
        json_decref(k);
        return c;
}

/* Collects from partition @p p of store @p s the first items after the
 * cursor (@p after_p, @p after): keys greater than it, and the cursor's
 * key itself on the partitions after the cursor's. */
static kp_err_t scan_partition(kp_proc_t *proc, int s, int32_t p,
                               const char *after, int32_t after_p,
                               scan_acc_t *acc) {
        task_t *t      = proc->tasks[p];
        acc->partition = p;
        acc->from      = acc->cnt;
        size_t alen    = after ? strlen(after) : 0;
        if (after && p > after_p) {
                void *val = NULL;
                size_t vlen;
                kp_err_t err = kp_store_get_committed(t->stores[s], after, alen,
                                                      &val, &vlen);
                if (err == KP_OK) {
                        int full = scan_collect(after, alen, val, vlen, acc);
                        kp_free(val);
                        if (full)
                                return KP_OK;
                } else if (err != KP_ERR_NOT_FOUND) {
                        return err;
                }
        }
        return kp_store_scan_committed(t->stores[s], after, alen, scan_collect,
                                       acc);
}

static void h_store_scan(kp_proc_t *proc, int s, const kp_http_req_t *req,
                         kp_http_resp_t *resp) {
        const char *cursor = kp_http_req_query(req, "after");
        const char *lim    = kp_http_req_query(req, "limit");
        int64_t limit      = 100;
        if (lim && (kp_parse_int64(lim, &limit) || limit < 1 || limit > 1000)) {
                kp_http_resp_error(resp, 400, "bad_request",
                                   "limit must be an integer from 1 to 1000");
                return;
        }
        /* Each partition contributes at most `limit` + 1 items after the
         * cursor; the merged first `limit` are the page, and any item
         * beyond them means a next page. */
        scan_acc_t acc    = {.limit = (size_t)limit};
        kp_err_t err      = KP_OK;
        const char *after = NULL;
        int32_t after_p   = -1;
        pthread_rwlock_rdlock(&proc->tasks_lock);
        if (cursor && *cursor &&
            parse_cursor(cursor, proc->partition_cnt, &after_p, &after)) {
                pthread_rwlock_unlock(&proc->tasks_lock);
                kp_http_resp_error(
                    resp, 400, "bad_request",
                    "after must be a cursor \"<partition>:<key>\" "
                    "as returned in \"next\"");
                return;
        }
        for (int32_t p = 0; p < proc->partition_cnt && !err; p++) {
                task_t *t = proc->tasks[p];
                if (t && t->ready)
                        err = scan_partition(proc, s, p, after, after_p, &acc);
        }
        pthread_rwlock_unlock(&proc->tasks_lock);
        if (!err) {
                /* qsort() must not get the NULL of an empty page. */
                if (acc.cnt)
                        qsort(acc.items, acc.cnt, sizeof(*acc.items), item_cmp);
                json_t *items = json_array();
                size_t n = acc.cnt < (size_t)limit ? acc.cnt : (size_t)limit;
                for (size_t i = 0; i < n; i++) {
                        json_t *o = json_object();
                        json_object_set_new(
                            o, "key",
                            key_json(acc.items[i].key, acc.items[i].klen));
                        json_object_set_new(
                            o, "partition",
                            json_integer(acc.items[i].partition));
                        set_value(o, acc.items[i].val, acc.items[i].vlen);
                        json_array_append_new(items, o);
                }
                json_t *next = acc.cnt > (size_t)limit
                                   ? cursor_json(&acc.items[n - 1])
                                   : json_null();
                kp_http_resp_json(
                    resp, 200,
                    json_pack("{s:s, s:o, s:o}", "store", proc->store_names[s],
                              "items", items, "next", next));
        } else {
                kp_http_resp_error(resp, 500, "store_error", "%s",
                                   kp_err2str(err));
        }
        for (size_t i = 0; i < acc.cnt; i++) {
                kp_free(acc.items[i].key);
                kp_free(acc.items[i].val);
        }
        kp_free(acc.items);
}

/* /v1/stores, /v1/stores/{store}, /v1/stores/{store}/keys/{key} */
static void h_stores(const kp_http_req_t *req, const char *rest,
                     kp_http_resp_t *resp, void *opaque) {
        kp_proc_t *proc = opaque;
        if (!strcmp(kp_http_req_path(req), "/v1/stores")) {
                h_store_list(proc, resp);
                return;
        }
        const char *slash = strchr(rest, '/');
        size_t nlen       = slash ? (size_t)(slash - rest) : strlen(rest);
        int s             = store_index(proc, rest, nlen);
        if (s < 0) {
                kp_http_resp_error(resp, 404, "unknown_store",
                                   "no store \"%.*s\" in service %s", (int)nlen,
                                   rest, proc->service);
                return;
        }
        if (!slash || !slash[1]) {
                h_store_scan(proc, s, req, resp);
                return;
        }
        if (strncmp(slash, "/keys/", 6)) {
                kp_http_resp_error(resp, 404, "not_found",
                                   "expected /v1/stores/{store}/keys/{key}");
                return;
        }
        h_store_key(proc, s, slash + 6, resp);
}

/* ------------------------------------------------------------------------
 * Consumer lag from librdkafka's statistics. */

int proc_stats_cb(rd_kafka_t *rk, char *json, size_t json_len, void *opaque) {
        kp_proc_t *proc = opaque;
        (void)rk;
        json_error_t jerr;
        json_t *root = json_loadb(json, json_len, 0, &jerr);
        if (!root)
                return 0;
        json_t *topics = json_object_get(root, "topics");
        const char *tname;
        json_t *topic;
        int64_t waiting = 0; /* over every input partition */
        json_object_foreach(topics, tname, topic) {
                const char *pname;
                json_t *part;
                json_object_foreach(json_object_get(topic, "partitions"), pname,
                                    part) {
                        /* consumer_lag counts from the consumer's own
                         * committed offset, which the transactional
                         * commits (through the producer) never move: the
                         * lag is measured from the position handed to the
                         * application instead (a transaction marker at the
                         * end of a partition may show as 1). */
                        json_t *ls  = json_object_get(part, "ls_offset");
                        json_t *app = json_object_get(part, "app_offset");
                        if (!json_is_integer(ls) || !json_is_integer(app) ||
                            json_integer_value(app) < 0 ||
                            json_integer_value(ls) < 0 || !strcmp(pname, "-1"))
                                continue;
                        int64_t lagv =
                            json_integer_value(ls) - json_integer_value(app);
                        if (lagv < 0)
                                lagv = 0;
                        char labels[600], esc[300];
                        snprintf(
                            labels, sizeof(labels),
                            "topic=\"%s\",partition=\"%s\"",
                            kp_metrics_escape_label(esc, sizeof(esc), tname),
                            pname);
                        kp_gauge_set(
                            kp_metrics_gauge(proc->metrics, "kpay_consumer_lag",
                                             "Records between the position "
                                             "handed to the processor and "
                                             "the last stable offset of an "
                                             "input partition.",
                                             labels),
                            (double)lagv);
                        waiting += lagv;
                }
        }
        json_decref(root);
        proc->lag = waiting;
        return 0;
}

void proc_query_routes(kp_proc_t *proc) {
        kp_service_route(proc->svc, "GET", "/v1/stores", h_stores, proc);
        kp_service_route(proc->svc, "GET", "/v1/stores/", h_stores, proc);
}

/* What the processor adds to InstanceInfo: its stores, the partitions it
 * owns, and the partition count of its inputs. @locality processing
 * thread (the only writer of the tasks table) */
void proc_info_cb(kp_instance_info_t *info, void *opaque) {
        kp_proc_t *proc = opaque;
        size_t pcnt     = 0;
        for (int32_t p = 0; p < proc->partition_cnt; p++)
                if (proc->tasks[p])
                        proc->info_parts[pcnt++] = p;
        info->stores          = (char **)proc->store_names;
        info->store_cnt       = (size_t)proc->store_cnt;
        info->partitions      = proc->info_parts;
        info->partition_cnt   = pcnt;
        info->partition_count = proc->partition_cnt;
}

void proc_publish_restoring(kp_proc_t *proc) {
        int32_t *parts =
            kp_calloc((size_t)proc->partition_cnt + 1, sizeof(*parts));
        size_t n = 0;
        for (int32_t p = 0; proc->tasks && p < proc->partition_cnt; p++)
                if (proc->tasks[p] && !proc->tasks[p]->ready)
                        parts[n++] = p;
        kp_service_set_restoring(proc->svc, parts, n);
        kp_free(parts);
        kp_gauge_set(proc->m_restoring, n > 0);
        kp_gauge_set(proc->m_restoring_partitions, (double)n);
        if (proc_failed(proc) || proc->stopping || !kp_app_running())
                return;
        /* RESTORING while any partition restores, though the others are
         * processed meanwhile (docs/runtime.md, "Lifecycle"). */
        kp_svc_state_t st = kp_service_state(proc->svc);
        if (n && (st == KP_SVC_STARTING || st == KP_SVC_RUNNING))
                kp_service_set_state(proc->svc, KP_SVC_RESTORING);
        else if (!n && (st == KP_SVC_STARTING || st == KP_SVC_RESTORING))
                kp_service_set_state(proc->svc, KP_SVC_RUNNING);
}

int kp_proc_owned_partitions(kp_proc_t *proc) {
        int n = 0;
        pthread_rwlock_rdlock(&proc->tasks_lock);
        for (int32_t p = 0; proc->tasks && p < proc->partition_cnt; p++)
                if (proc->tasks[p] && proc->tasks[p]->ready)
                        n++;
        pthread_rwlock_unlock(&proc->tasks_lock);
        return n;
}

int64_t kp_proc_assignment_epoch(const kp_proc_t *proc) {
        return proc->assign_epoch;
}

int32_t kp_proc_partition_count(kp_proc_t *proc) {
        pthread_rwlock_rdlock(&proc->tasks_lock);
        int32_t n = proc->partition_cnt;
        pthread_rwlock_unlock(&proc->tasks_lock);
        return n;
}

int kp_proc_foreach_committed(kp_proc_t *proc, int store, const void *key,
                              size_t klen, kp_proc_committed_cb *cb,
                              void *opaque) {
        int n = 0;
        if (store < 0 || store >= proc->store_cnt || !klen)
                return -1;
        pthread_rwlock_rdlock(&proc->tasks_lock);
        for (int32_t p = 0; proc->tasks && p < proc->partition_cnt; p++) {
                task_t *t = proc->tasks[p];
                void *val = NULL;
                size_t vlen;
                if (!t || !t->ready)
                        continue;
                kp_err_t err = kp_store_get_committed(t->stores[store], key,
                                                      klen, &val, &vlen);
                if (err == KP_ERR_NOT_FOUND) {
                        cb(p, NULL, 0, opaque);
                } else if (err) {
                        n = -1;
                        break;
                } else {
                        cb(p, val, vlen, opaque);
                        kp_free(val);
                }
                n++;
        }
        pthread_rwlock_unlock(&proc->tasks_lock);
        return n;
}
