/* merge.c: kpay-web's pure logic (merge.h). */
#include "merge.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kpay/kp_buf.h"
#include "kpay/kp_conf.h"
#include "kpay/kp_json.h"
#include "kpay/kp_mem.h"
#include "metrics.h"

size_t web_missing_partitions(const web_cover_t *inst, size_t cnt,
                              int32_t partition_count, int32_t *out) {
        size_t n = 0;
        for (int32_t p = 0; p < partition_count; p++) {
                int covered = 0;
                for (size_t i = 0; i < cnt && !covered; i++) {
                        if (!inst[i].answered)
                                continue;
                        for (size_t j = 0; j < inst[i].partition_cnt; j++)
                                if (inst[i].partitions[j] == p) {
                                        covered = 1;
                                        break;
                                }
                }
                if (!covered)
                        out[n++] = p;
        }
        return n;
}

int web_cursor_parse(const char *cursor, int32_t *partp, const char **keyp) {
        const char *colon = cursor ? strchr(cursor, ':') : NULL;
        char num[12];
        size_t nlen = colon ? (size_t)(colon - cursor) : 0;
        int64_t p;
        if (!colon || nlen == 0 || nlen >= sizeof(num))
                return -1;
        for (size_t i = 0; i < nlen; i++)
                if (cursor[i] < '0' || cursor[i] > '9')
                        return -1;
        memcpy(num, cursor, nlen);
        num[nlen] = '\0';
        if (kp_parse_int64(num, &p) || p < 0 || p > INT32_MAX)
                return -1;
        *partp = (int32_t)p;
        *keyp  = colon + 1;
        return 0;
}

char *web_cursor_of(const web_item_t *it) {
        return kp_asprintf("%d:%.*s", (int)it->partition, (int)it->klen,
                           it->key);
}

/* The runtime's scan order: key bytes, then partition. */
static int item_cmp(const void *a, const void *b) {
        const web_item_t *x = a, *y = b;
        size_t n = x->klen < y->klen ? x->klen : y->klen;
        int c    = memcmp(x->key, y->key, n);
        if (c)
                return c;
        if (x->klen != y->klen)
                return x->klen < y->klen ? -1 : 1;
        return (x->partition > y->partition) - (x->partition < y->partition);
}

static int has_prefix(const web_item_t *it, const char *prefix, size_t plen) {
        /* No prefix (NULL, plen 0) matches everything: memcmp() must not
         * see a NULL pointer, even for 0 bytes (UBSan). */
        return it->klen >= plen &&
               (plen == 0 || !memcmp(it->key, prefix, plen));
}

size_t web_page_merge(const web_page_t *pages, size_t page_cnt,
                      const char *prefix, size_t limit, web_item_t *out,
                      int *morep) {
        size_t plen = prefix ? strlen(prefix) : 0, n = 0;
        int more = 0;
        for (size_t i = 0; i < page_cnt; i++) {
                const web_page_t *pg = &pages[i];
                for (size_t j = 0; j < pg->cnt; j++)
                        if (has_prefix(&pg->items[j], prefix, plen))
                                out[n++] = pg->items[j];
                /* An instance has more of the prefix's keys when it said
                 * so and its page did not already run past the prefix's
                 * keys (which sort together). */
                if (pg->more &&
                    (pg->cnt == 0 ||
                     has_prefix(&pg->items[pg->cnt - 1], prefix, plen)))
                        more = 1;
        }
        if (n)
                qsort(out, n, sizeof(*out), item_cmp);
        size_t u = 0;
        for (size_t i = 0; i < n; i++)
                if (!u || item_cmp(&out[u - 1], &out[i]))
                        out[u++] = out[i];
        if (u > limit) {
                u    = limit;
                more = 1;
        }
        *morep = more && u > 0;
        return u;
}

char *web_prefix_cursor(const char *prefix, int32_t prefix_partition,
                        int *lookupp) {
        *lookupp = prefix_partition <= 0;
        return kp_asprintf("%d:%s",
                           prefix_partition > 0 ? (int)prefix_partition - 1 : 0,
                           prefix);
}

/* ------------------------------------------------------------------------
 * kpay-metrics' answers. */

static kp_err_t objectives_of(const json_t *o, metrics_objectives_t *obj) {
        static const kp_json_field_t f[] = {
            {"p99_ms", offsetof(metrics_objectives_t, p99_ms)},
            {"min_throughput", offsetof(metrics_objectives_t, min_throughput)},
            {"max_rejection_bp",
             offsetof(metrics_objectives_t, max_rejection_bp)},
        };
        return kp_json_get_int64s(o, f, 3, obj, sizeof(*obj));
}

/* Windows by start, ascending. */
typedef struct win_list_s {
        metrics_window_t *w;
        size_t cnt, cap;
} win_list_t;

static void win_list_clear(win_list_t *l) {
        for (size_t i = 0; i < l->cnt; i++)
                metrics_window_clear(&l->w[i]);
        kp_free(l->w);
        memset(l, 0, sizeof(*l));
}

/* Adds @p w (taken) to the list, merging it into a window of the same
 * start. */
static kp_err_t win_list_add(win_list_t *l, metrics_window_t *w) {
        size_t i = 0;
        while (i < l->cnt && l->w[i].start_ms < w->start_ms)
                i++;
        if (i < l->cnt && l->w[i].start_ms == w->start_ms &&
            l->w[i].size == w->size) {
                kp_err_t err = metrics_window_merge(&l->w[i], w);
                metrics_window_clear(w);
                return err;
        }
        if (l->cnt == l->cap) {
                l->cap = l->cap ? l->cap * 2 : 16;
                l->w   = kp_realloc(l->w, l->cap * sizeof(*l->w));
        }
        memmove(&l->w[i + 1], &l->w[i], (l->cnt - i) * sizeof(*l->w));
        l->w[i] = *w;
        l->cnt++;
        return KP_OK;
}

/* Parses every window of every answer into @p l. */
static kp_err_t windows_collect(json_t *const *answers, size_t cnt,
                                win_list_t *l, const char **sizep,
                                int64_t *fromp, int64_t *top, char *errstr,
                                size_t errstr_size) {
        for (size_t i = 0; i < cnt; i++) {
                const json_t *a = answers[i], *arr, *wj;
                size_t k;
                if (!a)
                        continue;
                arr = json_object_get(a, "windows");
                if (!json_is_array(arr)) {
                        snprintf(errstr, errstr_size,
                                 "an answer without \"windows\"");
                        return KP_ERR_PARSE;
                }
                const char *sz = json_string_value(json_object_get(a, "size"));
                if (sz && !*sizep)
                        *sizep = sz;
                json_t *f = json_object_get(a, "from"),
                       *t = json_object_get(a, "to");
                if (json_is_integer(f) &&
                    (*fromp < 0 || json_integer_value(f) < *fromp))
                        *fromp = json_integer_value(f);
                if (json_is_integer(t) && json_integer_value(t) > *top)
                        *top = json_integer_value(t);
                json_array_foreach(arr, k, wj) {
                        metrics_window_t w;
                        char why[200];
                        if (metrics_window_from_json(wj, &w, why,
                                                     sizeof(why))) {
                                snprintf(errstr, errstr_size,
                                         "a window does not parse: %s", why);
                                return KP_ERR_PARSE;
                        }
                        if (win_list_add(l, &w)) {
                                snprintf(errstr, errstr_size,
                                         "windows of %" PRId64
                                         " do not merge (overflow)",
                                         w.start_ms);
                                return KP_ERR_OVERFLOW;
                        }
                }
        }
        return KP_OK;
}

json_t *web_merge_windows(json_t *const *answers, size_t cnt,
                          const json_t *obj_json, char *errstr,
                          size_t errstr_size) {
        win_list_t l     = {0};
        const char *size = NULL;
        int64_t from = -1, to = 0;
        metrics_objectives_t obj;
        int judge = obj_json && !objectives_of(obj_json, &obj);
        if (windows_collect(answers, cnt, &l, &size, &from, &to, errstr,
                            errstr_size)) {
                win_list_clear(&l);
                return NULL;
        }
        json_t *arr = json_array();
        for (size_t i = 0; i < l.cnt; i++) {
                json_t *wj = metrics_window_to_json(&l.w[i], 0);
                if (judge) {
                        metrics_verdict_t v;
                        metrics_verdict(&l.w[i], -1, &obj, &v);
                        kp_json_set(wj, "sla", metrics_verdict_to_json(&v));
                }
                kp_json_append(arr, wj);
        }
        win_list_clear(&l);
        json_t *o = json_object();
        kp_json_set(o, "size", size ? json_string(size) : json_null());
        kp_json_set(o, "from", json_integer(from < 0 ? 0 : from));
        kp_json_set(o, "to", json_integer(to));
        kp_json_set(o, "windows", arr);
        return o;
}

/* The minute windows of [from, to) merged as one period, and the seconds
 * in which traffic flowed. The list's windows all have start 0 by now (so
 * that they merge as one); @p starts holds their real starts. */
static kp_err_t period_of(const win_list_t *l, const int64_t *starts,
                          int64_t from, int64_t to, metrics_window_t *out,
                          int64_t *trafficp) {
        kp_err_t err = KP_OK;
        metrics_window_init(out, METRICS_1M, 0);
        out->partitions = 0;
        out->final      = 1;
        *trafficp       = 0;
        for (size_t i = 0; !err && i < l->cnt; i++) {
                if (starts[i] < from || starts[i] >= to)
                        continue;
                *trafficp +=
                    __builtin_popcountll((uint64_t)l->w[i].active_mask);
                err = metrics_window_merge(out, &l->w[i]);
        }
        return err;
}

json_t *web_sla_of(const json_t *minutes, const json_t *obj_json,
                   int64_t now_ms, char *errstr, size_t errstr_size) {
        static const int periods[] = {1, 5, 15};
        metrics_objectives_t obj;
        win_list_t l     = {0};
        const char *size = NULL;
        int64_t from = -1, to = 0;
        json_t *one = (json_t *)minutes;
        if (!obj_json || objectives_of(obj_json, &obj)) {
                snprintf(errstr, errstr_size, "no objectives");
                return NULL;
        }
        if (windows_collect(&one, 1, &l, &size, &from, &to, errstr,
                            errstr_size)) {
                win_list_clear(&l);
                return NULL;
        }
        int64_t minute  = metrics_window_start(METRICS_1M, now_ms);
        int64_t *starts = kp_calloc(l.cnt ? l.cnt : 1, sizeof(*starts));
        for (size_t i = 0; i < l.cnt; i++) {
                starts[i]       = l.w[i].start_ms;
                l.w[i].start_ms = 0;
        }
        json_t *p    = json_object();
        kp_err_t err = KP_OK;
        for (int i = 0; !err && i < 3; i++) {
                metrics_window_t w;
                metrics_verdict_t v;
                int64_t traffic;
                err = period_of(&l, starts, minute - periods[i] * 60000, minute,
                                &w, &traffic);
                if (!err) {
                        char name[8];
                        metrics_verdict(&w, traffic, &obj, &v);
                        snprintf(name, sizeof(name), "%dm", periods[i]);
                        kp_json_set(p, name, metrics_verdict_to_json(&v));
                }
                metrics_window_clear(&w);
        }
        metrics_window_t cw;
        metrics_verdict_t cv;
        int64_t traffic = 0;
        if (!err) {
                err = period_of(&l, starts, minute, minute + 60000, &cw,
                                &traffic);
                if (!err)
                        metrics_verdict(&cw, traffic, &obj, &cv);
                metrics_window_clear(&cw);
        }
        win_list_clear(&l);
        kp_free(starts);
        if (err) {
                json_decref(p);
                snprintf(errstr, errstr_size, "the minutes do not merge: %s",
                         kp_err2str(err));
                return NULL;
        }
        json_t *o = json_object();
        kp_json_set(o, "objectives", json_deep_copy(obj_json));
        kp_json_set(o, "now_ms", json_integer(now_ms));
        kp_json_set(o, "periods", p);
        kp_json_set(o, "current_minute", metrics_verdict_to_json(&cv));
        return o;
}

json_t *web_merge_slowest(json_t *const *answers, size_t cnt, size_t max,
                          char *errstr, size_t errstr_size) {
        metrics_slowest_t all = {0};
        int have_minute       = 0;
        for (size_t i = 0; i < cnt; i++) {
                if (!answers[i])
                        continue;
                json_t *m = json_object_get(answers[i], "minute_ms");
                json_t *s = json_pack("{s:O?, s:O?}", "minute_ms", m, "items",
                                      json_object_get(answers[i], "items"));
                char *enc = kp_json_dump(s);
                metrics_slowest_t one = {0};
                char why[200];
                kp_err_t err = metrics_slowest_decode(enc, strlen(enc), &one,
                                                      why, sizeof(why));
                kp_free(enc);
                if (err) {
                        metrics_slowest_clear(&all);
                        snprintf(errstr, errstr_size,
                                 "a slowest list does not parse: %s", why);
                        return NULL;
                }
                if (!have_minute) {
                        all.minute_ms = one.minute_ms;
                        have_minute   = 1;
                }
                metrics_slowest_merge(&all, &one, max);
                metrics_slowest_clear(&one);
        }
        json_t *o = metrics_slowest_to_json(&all);
        metrics_slowest_clear(&all);
        return o;
}

char *web_preview(const void *buf, size_t len, size_t max) {
        const unsigned char *p = buf;
        kp_buf_t b             = {0};
        for (size_t i = 0; i < len; i++) {
                char esc[8];
                unsigned char c = p[i];
                if (c == '\\')
                        snprintf(esc, sizeof(esc), "\\\\");
                else if (c >= 0x20 && c < 0x7f)
                        snprintf(esc, sizeof(esc), "%c", c);
                else
                        snprintf(esc, sizeof(esc), "\\x%02x", c);
                if (b.len + strlen(esc) > max)
                        break;
                kp_buf_puts(&b, esc);
        }
        return kp_buf_take(&b, NULL);
}
