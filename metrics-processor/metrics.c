/* metrics.c: the business logic of kpay-metrics as pure functions
 * (metrics.h, docs/metrics.md). */
#include "metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kpay/kp_buf.h"
#include "kpay/kp_json.h"
#include "kpay/kp_mem.h"

static const kp_topic_id_t metrics_inputs[] = {KP_TOPIC_COMPLETE, KP_TOPIC_DLQ,
                                               KP_TOPIC_NONE};

static const char *const metrics_stores[] = {
    [METRICS_ST_WINDOWS] = "windows",
    [METRICS_ST_SLOWEST] = "slowest",
    NULL,
};

const kp_proc_layout_t metrics_layout = {
    .service = "metrics",
    .inputs  = metrics_inputs,
    .stores  = metrics_stores,
};

static const char *const lat_names[] = {
#define METRICS__LAT_NAME(name, str) str,
    METRICS_LAT_TABLE(METRICS__LAT_NAME)
#undef METRICS__LAT_NAME
};

const char *metrics_lat2str(metrics_lat_t lat) {
        return (int)lat >= 0 && lat < METRICS_LAT__CNT ? lat_names[lat] : "";
}

int64_t metrics_size_ms(metrics_size_t size) {
        return size == METRICS_1M ? 60000 : 1000;
}

const char *metrics_size2str(metrics_size_t size) {
        return size == METRICS_1M ? "1m" : "1s";
}

int metrics_size_parse(const char *s) {
        if (s && !strcmp(s, "1s"))
                return METRICS_1S;
        if (s && !strcmp(s, "1m"))
                return METRICS_1M;
        return -1;
}

/* ------------------------------------------------------------------------
 * Maps
 */

static size_t map_find(const metrics_map_t *m, const char *key, int *found) {
        size_t lo = 0, hi = m->n;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c      = strcmp(m->kv[mid].key, key);
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        *found = lo < m->n && !strcmp(m->kv[lo].key, key);
        return lo;
}

/* Inserts @p key with @p v at @p at (not there yet). */
static void map_insert(metrics_map_t *m, size_t at, const char *key,
                       int64_t v) {
        if (m->n == m->cap) {
                m->cap = m->cap ? m->cap * 2 : 4;
                m->kv  = kp_realloc(m->kv, m->cap * sizeof(*m->kv));
        }
        memmove(&m->kv[at + 1], &m->kv[at], (m->n - at) * sizeof(*m->kv));
        m->kv[at].key = kp_strdup(key);
        m->kv[at].v   = v;
        m->n++;
}

kp_err_t metrics_map_add(metrics_map_t *m, const char *key, int64_t v) {
        int found, ofound;
        size_t at = map_find(m, key, &found);
        if (found)
                return __builtin_add_overflow(m->kv[at].v, v, &m->kv[at].v)
                           ? KP_ERR_OVERFLOW
                           : KP_OK;
        size_t oat  = map_find(m, METRICS_MAP_OTHER, &ofound);
        size_t kept = m->n - (size_t)ofound;
        if (!strcmp(key, METRICS_MAP_OTHER) || kept < METRICS_MAP_MAX_KEYS) {
                map_insert(m, at, key, v);
                return KP_OK;
        }
        /* Full: the largest key other than "other" leaves, or @p key
         * itself when it is the larger. */
        size_t last = m->n - 1;
        if (ofound && last == oat)
                last--;
        int displace  = strcmp(key, m->kv[last].key) < 0;
        int64_t moved = displace ? m->kv[last].v : v, sum;
        if (__builtin_add_overflow(ofound ? m->kv[oat].v : 0, moved, &sum))
                return KP_ERR_OVERFLOW;
        if (displace) {
                kp_free(m->kv[last].key);
                memmove(&m->kv[last], &m->kv[last + 1],
                        (m->n - last - 1) * sizeof(*m->kv));
                m->n--;
                map_insert(m, map_find(m, key, &found), key, v);
        }
        oat = map_find(m, METRICS_MAP_OTHER, &ofound);
        if (ofound)
                m->kv[oat].v = sum;
        else
                map_insert(m, oat, METRICS_MAP_OTHER, sum);
        return KP_OK;
}

int64_t metrics_map_get(const metrics_map_t *m, const char *key) {
        int found;
        size_t at = map_find(m, key, &found);
        return found ? m->kv[at].v : 0;
}

void metrics_map_clear(metrics_map_t *m) {
        for (size_t i = 0; i < m->n; i++)
                kp_free(m->kv[i].key);
        kp_free(m->kv);
        memset(m, 0, sizeof(*m));
}

static kp_err_t map_merge(metrics_map_t *dst, const metrics_map_t *src) {
        kp_err_t err;
        for (size_t i = 0; i < src->n; i++)
                if ((err = metrics_map_add(dst, src->kv[i].key, src->kv[i].v)))
                        return err;
        return KP_OK;
}

/* A count map: every count > 0. */
static int map_from_json(const json_t *o, metrics_map_t *m) {
        const char *key;
        json_t *v;
        if (!json_is_object(o))
                return -1;
        json_object_foreach((json_t *)o, key, v) {
                if (!json_is_integer(v) || json_integer_value(v) <= 0 ||
                    metrics_map_add(m, key, (int64_t)json_integer_value(v)))
                        return -1;
        }
        return 0;
}

/* An amount map: decimal strings (kp_money.h), or the JSON integers a
 * window stored before amounts were 128 bits wide; no amount < 0. */
static int money_from_json(const json_t *o, kp_money_t *m) {
        if (kp_money_from_json(o, KP_MONEY_JSON_STRING, m) &&
            kp_money_from_json(o, KP_MONEY_JSON_INT64, m))
                return -1;
        for (size_t i = 0; i < m->cnt; i++)
                if (m->e[i].amount < 0)
                        return -1;
        return 0;
}

/* ------------------------------------------------------------------------
 * Windows, keys
 */

void metrics_window_init(metrics_window_t *w, metrics_size_t size,
                         int64_t start_ms) {
        memset(w, 0, sizeof(*w));
        w->size       = size;
        w->start_ms   = start_ms;
        w->partitions = 1;
}

void metrics_window_clear(metrics_window_t *w) {
        kp_money_clear(&w->complete_amount);
        kp_money_clear(&w->rejected_amount);
        metrics_map_clear(&w->rejected_by_reason);
        metrics_map_clear(&w->invalid_by_cause);
        metrics_map_clear(&w->dlq_by_error);
        metrics_map_clear(&w->dlq_by_service);
        for (int i = 0; i < METRICS_LAT__CNT; i++)
                kp_hist_clear(&w->lat[i]);
}

int64_t metrics_window_start(metrics_size_t size, int64_t t_ms) {
        int64_t len = metrics_size_ms(size);
        return t_ms - t_ms % len;
}

int64_t metrics_window_end(const metrics_window_t *w) {
        return w->start_ms + metrics_size_ms(w->size);
}

static size_t key_fmt(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static size_t key_fmt(char *buf, size_t size, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(buf, size, fmt, ap);
        va_end(ap);
        return n < 0 || (size_t)n >= size ? 0 : (size_t)n;
}

size_t metrics_window_key(char *buf, size_t size, metrics_size_t wsize,
                          int64_t start_ms) {
        return key_fmt(buf, size, "%c:%015" PRId64,
                       wsize == METRICS_1M ? 'm' : 's', start_ms);
}

/* Parses exactly @p digits decimal digits. */
static int parse_digits(const char *s, size_t len, int64_t *out) {
        int64_t v = 0;
        if (len == 0 || len > 18)
                return -1;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -1;
                v = v * 10 + (s[i] - '0');
        }
        *out = v;
        return 0;
}

int metrics_window_key_parse(const char *key, size_t klen,
                             metrics_size_t *wsize, int64_t *start_ms) {
        if (klen != 17 || key[1] != ':' || (key[0] != 's' && key[0] != 'm'))
                return -1;
        if (parse_digits(key + 2, 15, start_ms))
                return -1;
        *wsize = key[0] == 'm' ? METRICS_1M : METRICS_1S;
        return 0;
}

size_t metrics_close_key(char *buf, size_t size, int64_t due_ms,
                         const char *wkey) {
        return key_fmt(buf, size, METRICS_CLOSE_PREFIX "%015" PRId64 ":%s",
                       due_ms < 0 ? 0 : due_ms, wkey);
}

int metrics_close_key_parse(const char *key, size_t klen, int64_t *due_ms,
                            const char **wkey, size_t *wklen) {
        if (klen < 2 || memcmp(key, METRICS_CLOSE_PREFIX, 2))
                return 0;
        if (klen != 2 + 15 + 1 + 17 || key[17] != ':' ||
            parse_digits(key + 2, 15, due_ms))
                return -1;
        *wkey  = key + 18;
        *wklen = 17;
        return 1;
}

size_t metrics_topic_key(char *buf, size_t size, const metrics_window_t *w,
                         int32_t partition) {
        return key_fmt(buf, size, "%s/%" PRId64 "/%d",
                       metrics_size2str(w->size), w->start_ms, (int)partition);
}

/* ------------------------------------------------------------------------
 * Classifying
 */

static void event_init(metrics_event_t *ev, metrics_kind_t kind,
                       int64_t event_ms) {
        memset(ev, 0, sizeof(*ev));
        ev->kind     = kind;
        ev->event_ms = event_ms;
        for (int i = 0; i < METRICS_LAT__CNT; i++)
                ev->lat[i] = -1;
}

void metrics_event_make_invalid(metrics_event_t *ev, const char *cause) {
        int64_t t = ev->event_ms;
        event_init(ev, METRICS_INVALID, t);
        ev->cause = cause;
}

/* A duration from @p from to @p to when both stamps are set; -1 when one
 * is missing; -2 when negative. */
static int64_t span(int64_t from, int64_t to) {
        if (from <= 0 || to <= 0)
                return -1;
        return to >= from ? to - from : -2;
}

void metrics_classify_payment(const kp_payment_t *p, kp_pay_err_t perr,
                              int64_t now_ms, const metrics_conf_t *conf,
                              metrics_event_t *ev) {
        event_init(ev, METRICS_INVALID, now_ms);
        if (perr != KP_PAY_E_OK || !p) {
                ev->cause = kp_pay_err2code(perr);
                return;
        }
        if (p->state != KP_PAY_COMPLETE && p->state != KP_PAY_REJECTED) {
                ev->cause = "wrong_state";
                return;
        }
        if (p->created_ms == 0 || p->complete_ms == -1) {
                ev->cause = "missing_time";
                return;
        }
        if (p->created_ms < 0 || p->complete_ms < 0) {
                ev->cause = "negative_time";
                return;
        }
        if (p->complete_ms > now_ms + conf->max_future_ms ||
            p->created_ms > now_ms + conf->max_future_ms) {
                ev->cause = "future_time";
                return;
        }
        if (p->complete_ms < p->created_ms) {
                ev->cause = "negative_latency";
                return;
        }
        if (p->amount <= 0) {
                ev->cause = "invalid_amount";
                return;
        }
        if (!kp_currency_valid(p->currency)) {
                ev->cause = "invalid_currency";
                return;
        }
        event_init(ev, METRICS_OUTCOME, p->complete_ms);
        ev->complete = p->state == KP_PAY_COMPLETE;
        snprintf(ev->id, sizeof(ev->id), "%s", p->id);
        snprintf(ev->currency, sizeof(ev->currency), "%s", p->currency);
        ev->amount     = p->amount;
        ev->created_ms = p->created_ms;
        if (!ev->complete)
                snprintf(ev->reason, sizeof(ev->reason), "%s",
                         p->reason[0] ? p->reason : "other");
        ev->lat[METRICS_LAT_E2E] = p->complete_ms - p->created_ms;
        /* The stages, each when both of its stamps are set. */
        const int64_t spans[][2] = {
            [METRICS_LAT_GATEWAY] = {p->inflight_ms, p->complete_ms},
            [METRICS_LAT_INTAKE]  = {p->created_ms, p->inflight_ms},
            [METRICS_LAT_DEBIT]   = {p->inflight_ms, p->debit_ms},
            [METRICS_LAT_CREDIT]  = {p->debit_ms, p->credit_ms},
        };
        for (int i = METRICS_LAT_GATEWAY; i < METRICS_LAT__CNT; i++) {
                int64_t d = span(spans[i][0], spans[i][1]);
                if (d == -2)
                        ev->skewed++;
                else
                        ev->lat[i] = d;
        }
}

static void copy_header(char *dst, size_t size, const char *v, size_t len) {
        if (!v || len == 0) {
                snprintf(dst, size, "unknown");
                return;
        }
        if (len >= size)
                len = size - 1;
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)v[i];
                dst[i]          = c >= 0x20 && c < 0x7f ? (char)c : '?';
        }
        dst[len] = '\0';
}

void metrics_classify_dead_letter(const char *error, size_t error_len,
                                  const char *service, size_t service_len,
                                  int64_t timestamp_ms, int64_t now_ms,
                                  const metrics_conf_t *conf,
                                  metrics_event_t *ev) {
        int64_t t = timestamp_ms;
        if (t <= 0 || t > now_ms + conf->max_future_ms)
                t = now_ms;
        event_init(ev, METRICS_DEAD_LETTER, t);
        copy_header(ev->error, sizeof(ev->error), error, error_len);
        copy_header(ev->service, sizeof(ev->service), service, service_len);
}

int metrics_event_expired(const metrics_event_t *ev, metrics_size_t size,
                          int64_t now_ms, const metrics_conf_t *conf) {
        int64_t end =
            metrics_window_start(size, ev->event_ms) + metrics_size_ms(size);
        return end <= now_ms - conf->retention_ms[size];
}

/* ------------------------------------------------------------------------
 * Counting, closing, merging
 */

static kp_err_t inc(int64_t *v, int64_t by) {
        return __builtin_add_overflow(*v, by, v) ? KP_ERR_OVERFLOW : KP_OK;
}

kp_err_t metrics_window_add(metrics_window_t *w, const metrics_event_t *ev,
                            int64_t now_ms, int64_t grace_ms) {
        kp_err_t err = KP_OK;
        switch (ev->kind) {
        case METRICS_OUTCOME:
                if (ev->complete)
                        err = inc(&w->complete_count, 1);
                if (ev->complete && !err)
                        err = kp_money_add(&w->complete_amount, ev->currency,
                                           ev->amount);
                if (!ev->complete)
                        err = inc(&w->rejected_count, 1);
                if (!ev->complete && !err)
                        err = kp_money_add(&w->rejected_amount, ev->currency,
                                           ev->amount);
                if (!ev->complete && !err)
                        err = metrics_map_add(&w->rejected_by_reason,
                                              ev->reason, 1);
                for (int i = 0; !err && i < METRICS_LAT__CNT; i++)
                        if (ev->lat[i] >= 0)
                                err = kp_hist_record(&w->lat[i], ev->lat[i]);
                if (!err && ev->skewed)
                        err = inc(&w->skewed, ev->skewed);
                if (!err)
                        w->active_mask |=
                            INT64_C(1) << ((ev->event_ms - w->start_ms) / 1000);
                break;
        case METRICS_INVALID:
                if (!(err = inc(&w->invalid_count, 1)))
                        err =
                            metrics_map_add(&w->invalid_by_cause, ev->cause, 1);
                break;
        case METRICS_DEAD_LETTER:
                if (!(err = inc(&w->dlq_count, 1)) &&
                    !(err = metrics_map_add(&w->dlq_by_error, ev->error, 1)))
                        err =
                            metrics_map_add(&w->dlq_by_service, ev->service, 1);
                break;
        }
        if (!err && now_ms >= metrics_window_end(w) + grace_ms)
                err = inc(&w->late, 1);
        if (!err)
                err = inc(&w->rev, 1);
        return err;
}

metrics_close_t metrics_window_due(const metrics_window_t *w, int64_t now_ms,
                                   int64_t grace_ms) {
        if (!w->final)
                return now_ms >= metrics_window_end(w) + grace_ms
                           ? METRICS_CLOSE_FINAL
                           : METRICS_CLOSE_NOTHING;
        return w->rev > w->emitted_rev ? METRICS_CLOSE_AMEND
                                       : METRICS_CLOSE_NOTHING;
}

int64_t metrics_window_next_due(const metrics_window_t *w, int64_t now_ms,
                                int64_t grace_ms) {
        if (!w->final)
                return metrics_window_end(w) + grace_ms;
        return w->rev > w->emitted_rev ? now_ms : -1;
}

void metrics_window_emitted(metrics_window_t *w, int64_t now_ms) {
        if (!w->final) {
                w->final     = 1;
                w->closed_ms = now_ms;
        }
        w->emitted_rev = w->rev;
}

kp_err_t metrics_window_merge(metrics_window_t *dst,
                              const metrics_window_t *src) {
        kp_err_t err;
        if (dst->size != src->size || dst->start_ms != src->start_ms)
                return KP_ERR_INVALID_ARG;
        if ((err = inc(&dst->complete_count, src->complete_count)) ||
            (err = kp_money_add_all(&dst->complete_amount,
                                    &src->complete_amount)) ||
            (err = inc(&dst->rejected_count, src->rejected_count)) ||
            (err = kp_money_add_all(&dst->rejected_amount,
                                    &src->rejected_amount)) ||
            (err = map_merge(&dst->rejected_by_reason,
                             &src->rejected_by_reason)) ||
            (err = inc(&dst->invalid_count, src->invalid_count)) ||
            (err = map_merge(&dst->invalid_by_cause, &src->invalid_by_cause)) ||
            (err = inc(&dst->dlq_count, src->dlq_count)) ||
            (err = map_merge(&dst->dlq_by_error, &src->dlq_by_error)) ||
            (err = map_merge(&dst->dlq_by_service, &src->dlq_by_service)) ||
            (err = inc(&dst->late, src->late)) ||
            (err = inc(&dst->skewed, src->skewed)) ||
            (err = inc(&dst->rev, src->rev)) ||
            (err = inc(&dst->emitted_rev, src->emitted_rev)) ||
            (err = inc(&dst->partitions, src->partitions)))
                return err;
        for (int i = 0; i < METRICS_LAT__CNT; i++)
                if ((err = kp_hist_merge(&dst->lat[i], &src->lat[i])))
                        return err;
        dst->active_mask |= src->active_mask;
        dst->final = dst->final && src->final;
        if (src->closed_ms > dst->closed_ms)
                dst->closed_ms = src->closed_ms;
        return KP_OK;
}

/* ------------------------------------------------------------------------
 * JSON
 */

static json_t *obj(void) {
        json_t *o = json_object();
        if (!o)
                kp_json_dump(NULL); /* aborts: out of memory */
        return o;
}

/* The window is written by hand rather than through jansson: kpay-metrics
 * stores it after every record, and building a tree of a few thousand
 * nodes each time cost more than the rest of the processing. Readers parse
 * it with jansson (metrics_window_from_json()). */

static void buf_key(kp_buf_t *b, const char *k) {
        kp_buf_add(b, "\"", 1);
        kp_buf_puts(b, k);
        kp_buf_add(b, "\":", 2);
}

static void buf_kint(kp_buf_t *b, const char *k, int64_t v) {
        buf_key(b, k);
        kp_buf_int(b, v);
        kp_buf_add(b, ",", 1);
}

/* Member @p i of an object: its key (a comma before all but the first). */
static void buf_member(kp_buf_t *b, size_t i, const char *key) {
        if (i)
                kp_buf_add(b, ",", 1);
        kp_buf_json_str(b, key);
        kp_buf_add(b, ":", 1);
}

static void buf_map(kp_buf_t *b, const char *k, const metrics_map_t *m,
                    const char *after) {
        buf_key(b, k);
        kp_buf_add(b, "{", 1);
        for (size_t i = 0; i < m->n; i++) {
                buf_member(b, i, m->kv[i].key);
                kp_buf_int(b, m->kv[i].v);
        }
        kp_buf_add(b, "}", 1);
        kp_buf_puts(b, after);
}

/* Amounts per currency as decimal strings (docs/metrics.md). */
static void buf_money(kp_buf_t *b, const char *k, const kp_money_t *m,
                      const char *after) {
        char dec[KP_I128_DEC_SIZE + 2] = "\"";
        buf_key(b, k);
        kp_buf_add(b, "{", 1);
        for (size_t i = 0; i < m->cnt; i++) {
                size_t n = 1 + kp_i128_format(m->e[i].amount, dec + 1);
                dec[n++] = '"';
                buf_member(b, i, m->e[i].currency);
                kp_buf_add(b, dec, n);
        }
        kp_buf_add(b, "}", 1);
        kp_buf_puts(b, after);
}

/* A latency: its summary and its mergeable histogram. */
static void buf_lat(kp_buf_t *b, const char *k, const kp_hist_t *h) {
        static const struct {
                const char *name;
                double q;
        } qs[] = {{"p50", 0.5}, {"p95", 0.95}, {"p99", 0.99}, {"p999", 0.999}};
        buf_key(b, k);
        kp_buf_add(b, "{", 1);
        buf_kint(b, "count", h->count);
        kp_buf_printf(b, "\"mean\":%.17g,", kp_hist_mean(h));
        for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]) + 2; i++) {
                const char *name = i == 0   ? "min"
                                   : i <= 4 ? qs[i - 1].name
                                            : "max";
                buf_key(b, name);
                if (!h->count)
                        kp_buf_puts(b, "null");
                else
                        kp_buf_int(b, i == 0 ? h->min
                                      : i <= 4
                                          ? kp_hist_quantile(h, qs[i - 1].q)
                                          : h->max);
                kp_buf_add(b, ",", 1);
        }
        buf_key(b, "histogram");
        kp_buf_add(b, "{", 1);
        buf_kint(b, "count", h->count);
        buf_kint(b, "sum", h->sum);
        buf_kint(b, "min", h->min);
        buf_kint(b, "max", h->max);
        buf_key(b, "buckets");
        kp_buf_add(b, "[", 1);
        for (size_t i = 0; i < h->nbuckets; i++) {
                if (i)
                        kp_buf_add(b, ",", 1);
                kp_buf_int(b, h->buckets[i].index);
                kp_buf_add(b, ",", 1);
                kp_buf_int(b, h->buckets[i].count);
        }
        kp_buf_add(b, "]}}", 3);
}

char *metrics_window_encode(const metrics_window_t *w, int flags,
                            size_t *lenp) {
        kp_buf_t b = {0};
        kp_buf_reserve(&b, 4096);
        kp_buf_puts(&b, "{\"size\":");
        kp_buf_json_str(&b, metrics_size2str(w->size));
        kp_buf_add(&b, ",", 1);
        buf_kint(&b, "start_ms", w->start_ms);
        buf_kint(&b, "end_ms", metrics_window_end(w));
        kp_buf_puts(&b, "\"complete\":{");
        buf_kint(&b, "count", w->complete_count);
        buf_money(&b, "amount", &w->complete_amount, "},");
        kp_buf_puts(&b, "\"rejected\":{");
        buf_kint(&b, "count", w->rejected_count);
        buf_money(&b, "amount", &w->rejected_amount, ",");
        buf_map(&b, "by_reason", &w->rejected_by_reason, "},");
        kp_buf_puts(&b, "\"invalid\":{");
        buf_kint(&b, "count", w->invalid_count);
        buf_map(&b, "by_cause", &w->invalid_by_cause, "},");
        kp_buf_puts(&b, "\"dead_letters\":{");
        buf_kint(&b, "count", w->dlq_count);
        buf_map(&b, "by_error", &w->dlq_by_error, ",");
        buf_map(&b, "by_service", &w->dlq_by_service, "},");
        buf_kint(&b, "late", w->late);
        buf_kint(&b, "skewed", w->skewed);
        buf_kint(&b, "active_mask", w->active_mask);
        kp_buf_puts(&b, "\"latency_ms\":{");
        for (int i = 0; i < METRICS_LAT_FIRST_STAGE; i++) {
                buf_lat(&b, lat_names[i], &w->lat[i]);
                kp_buf_add(&b, ",", 1);
        }
        kp_buf_puts(&b, "\"stages\":{");
        for (int i = METRICS_LAT_FIRST_STAGE; i < METRICS_LAT__CNT; i++) {
                if (i > METRICS_LAT_FIRST_STAGE)
                        kp_buf_add(&b, ",", 1);
                buf_lat(&b, lat_names[i], &w->lat[i]);
        }
        kp_buf_puts(&b, "}},\"final\":");
        kp_buf_puts(&b, w->final ? "true," : "false,");
        buf_key(&b, "closed_ms");
        if (w->closed_ms)
                kp_buf_int(&b, w->closed_ms);
        else
                kp_buf_puts(&b, "null");
        kp_buf_add(&b, ",", 1);
        buf_key(&b, "partitions");
        kp_buf_int(&b, w->partitions);
        if (flags & METRICS_JSON_STORE) {
                kp_buf_add(&b, ",", 1);
                buf_kint(&b, "rev", w->rev);
                buf_key(&b, "emitted_rev");
                kp_buf_int(&b, w->emitted_rev);
        }
        kp_buf_add(&b, "}", 1);
        return kp_buf_take(&b, lenp);
}

json_t *metrics_window_to_json(const metrics_window_t *w, int flags) {
        size_t len;
        json_error_t jerr;
        char *s   = metrics_window_encode(w, flags, &len);
        json_t *j = json_loadb(s, len, 0, &jerr);
        kp_free(s);
        if (!j) {
                /* Our own encoder wrote something jansson cannot read. */
                fprintf(stderr, "kpay-metrics: window JSON: %s\n", jerr.text);
                abort();
        }
        return j;
}

static kp_err_t bad(char *errstr, size_t size, const char *what) {
        if (errstr && size)
                snprintf(errstr, size, "window: %s", what);
        return KP_ERR_PARSE;
}

static int get_int(const json_t *o, const char *k, int64_t *v, int64_t min) {
        const json_t *x = json_object_get(o, k);
        if (!json_is_integer(x) || json_integer_value(x) < min)
                return -1;
        *v = (int64_t)json_integer_value(x);
        return 0;
}

static kp_err_t lat_from_json(const json_t *o, kp_hist_t *h, char *errstr,
                              size_t errstr_size) {
        if (!json_is_object(o))
                return bad(errstr, errstr_size, "a latency is not an object");
        return kp_hist_from_json(json_object_get(o, "histogram"), h, errstr,
                                 errstr_size);
}

kp_err_t metrics_window_from_json(const json_t *j, metrics_window_t *w,
                                  char *errstr, size_t errstr_size) {
        const json_t *c, *r, *inv, *d, *lat, *st, *x;
        int64_t start;
        kp_err_t err;
        if (!json_is_object(j))
                return bad(errstr, errstr_size, "not an object");
        x        = json_object_get(j, "size");
        int size = metrics_size_parse(json_string_value(x));
        if (size < 0 || get_int(j, "start_ms", &start, 0) ||
            start % metrics_size_ms((metrics_size_t)size))
                return bad(errstr, errstr_size, "bad size or start_ms");
        metrics_window_init(w, (metrics_size_t)size, start);
        c   = json_object_get(j, "complete");
        r   = json_object_get(j, "rejected");
        inv = json_object_get(j, "invalid");
        d   = json_object_get(j, "dead_letters");
        lat = json_object_get(j, "latency_ms");
        st  = json_object_get(lat, "stages");
        x   = json_object_get(j, "closed_ms");
        if (get_int(c, "count", &w->complete_count, 0) ||
            money_from_json(json_object_get(c, "amount"),
                            &w->complete_amount) ||
            get_int(r, "count", &w->rejected_count, 0) ||
            money_from_json(json_object_get(r, "amount"),
                            &w->rejected_amount) ||
            map_from_json(json_object_get(r, "by_reason"),
                          &w->rejected_by_reason) ||
            get_int(inv, "count", &w->invalid_count, 0) ||
            map_from_json(json_object_get(inv, "by_cause"),
                          &w->invalid_by_cause) ||
            get_int(d, "count", &w->dlq_count, 0) ||
            map_from_json(json_object_get(d, "by_error"), &w->dlq_by_error) ||
            map_from_json(json_object_get(d, "by_service"),
                          &w->dlq_by_service) ||
            get_int(j, "late", &w->late, 0) ||
            get_int(j, "skewed", &w->skewed, 0) ||
            get_int(j, "active_mask", &w->active_mask, 0) ||
            w->active_mask >> (metrics_size_ms(w->size) / 1000) ||
            get_int(j, "partitions", &w->partitions, 1) ||
            !json_is_boolean(json_object_get(j, "final")) ||
            !(json_is_null(x) || json_is_integer(x)) || !json_is_object(st)) {
                metrics_window_clear(w);
                return bad(errstr, errstr_size,
                           "a count, map, flag or section is missing or "
                           "malformed");
        }
        w->final     = json_is_true(json_object_get(j, "final"));
        w->closed_ms = json_is_integer(x) ? (int64_t)json_integer_value(x) : 0;
        /* The store's fields are optional (the API and the topic omit
         * them). */
        if (json_object_get(j, "rev") &&
            (get_int(j, "rev", &w->rev, 0) ||
             get_int(j, "emitted_rev", &w->emitted_rev, 0))) {
                metrics_window_clear(w);
                return bad(errstr, errstr_size, "bad rev or emitted_rev");
        }
        for (int i = 0; i < METRICS_LAT__CNT; i++) {
                const json_t *h = json_object_get(
                    i >= METRICS_LAT_FIRST_STAGE ? st : lat, lat_names[i]);
                if ((err = lat_from_json(h, &w->lat[i], errstr, errstr_size))) {
                        metrics_window_clear(w);
                        return err;
                }
        }
        return KP_OK;
}

kp_err_t metrics_window_decode(const void *buf, size_t len, metrics_window_t *w,
                               char *errstr, size_t errstr_size) {
        json_error_t jerr;
        json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!j)
                return bad(errstr, errstr_size, "not JSON");
        kp_err_t err = metrics_window_from_json(j, w, errstr, errstr_size);
        json_decref(j);
        return err;
}

/* ------------------------------------------------------------------------
 * The slowest payments
 */

void metrics_slowest_clear(metrics_slowest_t *s) {
        kp_free(s->items);
        memset(s, 0, sizeof(*s));
}

/* 1 if @p a ranks before @p b: slower, or as slow with a smaller id. */
static int slow_before(const metrics_slow_t *a, const metrics_slow_t *b) {
        if (a->latency_ms != b->latency_ms)
                return a->latency_ms > b->latency_ms;
        return strcmp(a->id, b->id) < 0;
}

int metrics_slowest_offer(metrics_slowest_t *s, const metrics_slow_t *item,
                          size_t max) {
        size_t at = 0;
        if (max == 0)
                return 0;
        while (at < s->n && slow_before(&s->items[at], item))
                at++;
        if (at < s->n && !slow_before(item, &s->items[at]))
                return 0; /* the same payment again (same id, latency) */
        if (at >= max)
                return 0;
        if (s->cap < max) {
                s->items = kp_realloc(s->items, max * sizeof(*s->items));
                s->cap   = max;
        }
        size_t keep = s->n < max ? s->n : max - 1;
        memmove(&s->items[at + 1], &s->items[at],
                (keep - at) * sizeof(*s->items));
        s->items[at] = *item;
        s->n         = keep + 1;
        return 1;
}

void metrics_slowest_merge(metrics_slowest_t *dst, const metrics_slowest_t *src,
                           size_t max) {
        for (size_t i = 0; i < src->n; i++)
                metrics_slowest_offer(dst, &src->items[i], max);
}

void metrics_slow_of(const metrics_event_t *ev, int32_t partition,
                     metrics_slow_t *item) {
        memset(item, 0, sizeof(*item));
        snprintf(item->id, sizeof(item->id), "%s", ev->id);
        item->latency_ms = ev->lat[METRICS_LAT_E2E];
        item->created_ms = ev->created_ms;
        for (int i = 0; i < METRICS_LAT__CNT; i++)
                item->stage[i] = ev->lat[i];
        item->partition = partition;
}

size_t metrics_slowest_key(char *buf, size_t size, int64_t minute_ms) {
        return key_fmt(buf, size, "%015" PRId64, minute_ms);
}

json_t *metrics_slowest_to_json(const metrics_slowest_t *s) {
        json_t *o = obj(), *a = json_array();
        if (!a)
                kp_json_dump(NULL); /* aborts: out of memory */
        kp_json_set(o, "minute_ms", json_integer(s->minute_ms));
        for (size_t i = 0; i < s->n; i++) {
                const metrics_slow_t *it = &s->items[i];
                json_t *e = obj(), *st = obj();
                kp_json_set(e, "id", json_string(it->id));
                kp_json_set(e, "latency_ms", json_integer(it->latency_ms));
                kp_json_set(e, "created_ms", json_integer(it->created_ms));
                for (int k = METRICS_LAT_GATEWAY; k < METRICS_LAT__CNT; k++)
                        kp_json_set(st, lat_names[k],
                                    it->stage[k] >= 0
                                        ? json_integer(it->stage[k])
                                        : json_null());
                kp_json_set(e, "stages_ms", st);
                kp_json_set(e, "partition", json_integer(it->partition));
                kp_json_append(a, e);
        }
        kp_json_set(o, "items", a);
        return o;
}

kp_err_t metrics_slowest_decode(const void *buf, size_t len,
                                metrics_slowest_t *s, char *errstr,
                                size_t errstr_size) {
        json_error_t jerr;
        metrics_slowest_t n = {0};
        json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
        const json_t *items = json_object_get(j, "items");
        size_t i;
        if (!j || get_int(j, "minute_ms", &n.minute_ms, 0) ||
            !json_is_array(items))
                goto fail;
        n.cap   = json_array_size(items);
        n.items = n.cap ? kp_calloc(n.cap, sizeof(*n.items)) : NULL;
        for (i = 0; i < n.cap; i++) {
                const json_t *e  = json_array_get(items, i);
                const json_t *st = json_object_get(e, "stages_ms");
                const char *id   = json_string_value(json_object_get(e, "id"));
                metrics_slow_t *it = &n.items[i];
                int64_t part;
                if (!id || strlen(id) > KP_PAYMENT_ID_MAX ||
                    get_int(e, "latency_ms", &it->latency_ms, 0) ||
                    get_int(e, "created_ms", &it->created_ms, 0) ||
                    get_int(e, "partition", &part, 0) || part > INT32_MAX ||
                    !json_is_object(st))
                        goto fail;
                snprintf(it->id, sizeof(it->id), "%s", id);
                it->partition              = (int32_t)part;
                it->stage[METRICS_LAT_E2E] = it->latency_ms;
                for (int k = METRICS_LAT_GATEWAY; k < METRICS_LAT__CNT; k++) {
                        const json_t *v = json_object_get(st, lat_names[k]);
                        if (json_is_integer(v) && json_integer_value(v) >= 0)
                                it->stage[k] = (int64_t)json_integer_value(v);
                        else if (json_is_null(v))
                                it->stage[k] = -1;
                        else
                                goto fail;
                }
                n.n++;
        }
        json_decref(j);
        metrics_slowest_clear(s);
        *s = n;
        return KP_OK;
fail:
        json_decref(j);
        kp_free(n.items);
        if (errstr && errstr_size)
                snprintf(errstr, errstr_size, "slowest: malformed list");
        return KP_ERR_PARSE;
}

/* ------------------------------------------------------------------------
 * SLA
 */

void metrics_verdict(const metrics_window_t *w, int64_t traffic_seconds,
                     const metrics_objectives_t *obj, metrics_verdict_t *v) {
        const kp_hist_t *e2e = &w->lat[METRICS_LAT_E2E];
        memset(v, 0, sizeof(*v));
        if (traffic_seconds < 0)
                traffic_seconds =
                    __builtin_popcountll((uint64_t)w->active_mask);
        v->outcomes        = w->complete_count + w->rejected_count;
        v->traffic_seconds = traffic_seconds;
        v->p99_ms          = kp_hist_quantile(e2e, 0.99);
        if (v->outcomes > 0 && traffic_seconds > 0)
                v->throughput = (double)v->outcomes / (double)traffic_seconds;
        if (v->outcomes > 0)
                v->rejection_rate =
                    (double)w->rejected_count / (double)v->outcomes;
        v->latency_ok = e2e->count == 0 || v->p99_ms < obj->p99_ms;
        v->throughput_ok =
            v->outcomes == 0 || v->throughput >= (double)obj->min_throughput;
        v->rejection_ok = v->outcomes == 0 || v->rejection_rate * 10000.0 <
                                                  (double)obj->max_rejection_bp;
        v->ok = v->latency_ok && v->throughput_ok && v->rejection_ok;
        if (e2e->count > 0) {
                /* Outcomes at or above the objective: the p99 objective
                 * allows 1 % of them. */
                int64_t fast = kp_hist_count_le(e2e, obj->p99_ms - 1);
                v->latency_burn =
                    (double)(e2e->count - fast) / (double)e2e->count / 0.01;
        }
        if (obj->max_rejection_bp > 0)
                v->rejection_burn =
                    v->rejection_rate * 10000.0 / (double)obj->max_rejection_bp;
        v->burn_rate = v->latency_burn > v->rejection_burn ? v->latency_burn
                                                           : v->rejection_burn;
}

json_t *metrics_verdict_to_json(const metrics_verdict_t *v) {
        json_t *o = obj();
        kp_json_set(o, "ok", json_boolean(v->ok));
        kp_json_set(o, "latency_ok", json_boolean(v->latency_ok));
        kp_json_set(o, "throughput_ok", json_boolean(v->throughput_ok));
        kp_json_set(o, "rejection_ok", json_boolean(v->rejection_ok));
        kp_json_set(o, "outcomes", json_integer(v->outcomes));
        kp_json_set(o, "traffic_seconds", json_integer(v->traffic_seconds));
        kp_json_set(o, "throughput", json_real(v->throughput));
        kp_json_set(o, "p99_ms",
                    v->p99_ms >= 0 ? json_integer(v->p99_ms) : json_null());
        kp_json_set(o, "rejection_rate", json_real(v->rejection_rate));
        kp_json_set(o, "latency_burn", json_real(v->latency_burn));
        kp_json_set(o, "rejection_burn", json_real(v->rejection_burn));
        kp_json_set(o, "burn_rate", json_real(v->burn_rate));
        return o;
}
