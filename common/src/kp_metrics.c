/* kp_metrics.c: a metrics registry rendered in the Prometheus text format. */
#include "kpay/kp_metrics.h"

#include "kpay/kp_buf.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"

typedef enum kp_metric_type_e {
        KP_METRIC_COUNTER,
        KP_METRIC_GAUGE,
        KP_METRIC_HISTOGRAM,
} kp_metric_type_t;

static const char *type_names[] = {"counter", "gauge", "histogram"};

/* The part every series shares; it is the first member of each series struct
 * so that a family can hold one list of any type. */
typedef struct kp_series_s {
        struct kp_series_s *next;
        char *labels; /* "" for none */
} kp_series_t;

struct kp_counter_s {
        kp_series_t s;
        atomic_int_fast64_t value;
};

/* A double kept as its bit pattern so that it can be updated lock-free. */
struct kp_gauge_s {
        kp_series_t s;
        atomic_uint_fast64_t bits;
};

struct kp_histogram_s {
        kp_series_t s;
        size_t bound_cnt;
        double *bounds;
        /* Per-bucket (not cumulative) counts, bound_cnt + 1 of them: the
         * last is the +Inf bucket. Rendering makes them cumulative. */
        atomic_uint_fast64_t *buckets;
        atomic_uint_fast64_t sum_bits;
};

typedef struct kp_family_s {
        struct kp_family_s *next;
        char *name;
        char *help;
        kp_metric_type_t type;
        kp_series_t *series; /* in registration order */
        kp_series_t **series_tail;
} kp_family_t;

struct kp_metrics_s {
        pthread_mutex_t lock;  /* families, series lists */
        kp_family_t *families; /* in registration order */
        kp_family_t **families_tail;
};

/* Reports a misuse of the API (a bug in the caller) and aborts. */
static void misuse(const char *fmt, ...) __attribute__((format(printf, 1, 2)))
__attribute__((noreturn));

static void misuse(const char *fmt, ...) {
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        KP_FATAL("metrics: %s", msg);
        abort();
}

static uint64_t double_bits(double v) {
        uint64_t b;
        memcpy(&b, &v, sizeof(b));
        return b;
}

static double bits_double(uint64_t b) {
        double v;
        memcpy(&v, &b, sizeof(v));
        return v;
}

/* Adds @p v to a double kept as bits in @p a. */
static void atomic_add_double(atomic_uint_fast64_t *a, double v) {
        uint_fast64_t old = atomic_load_explicit(a, memory_order_relaxed);
        while (!atomic_compare_exchange_weak_explicit(
            a, &old, double_bits(bits_double(old) + v), memory_order_relaxed,
            memory_order_relaxed))
                ;
}

static bool valid_name(const char *name) {
        if (!name || !*name)
                return false;
        for (const char *p = name; *p; p++) {
                char c  = *p;
                bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                          c == '_' || c == ':' ||
                          (p != name && c >= '0' && c <= '9');
                if (!ok)
                        return false;
        }
        return true;
}

kp_metrics_t *kp_metrics_new(void) {
        kp_metrics_t *m = kp_calloc(1, sizeof(*m));
        int r           = pthread_mutex_init(&m->lock, NULL);
        if (r != 0)
                misuse("pthread_mutex_init: %s", strerror(r));
        m->families_tail = &m->families;
        return m;
}

static void series_free(kp_metric_type_t type, kp_series_t *s) {
        if (type == KP_METRIC_HISTOGRAM) {
                kp_histogram_t *h = (kp_histogram_t *)s;
                kp_free(h->bounds);
                kp_free(h->buckets);
        }
        kp_free(s->labels);
        kp_free(s);
}

void kp_metrics_destroy(kp_metrics_t *m) {
        if (!m)
                return;
        kp_family_t *f = m->families;
        while (f) {
                kp_family_t *fnext = f->next;
                kp_series_t *s     = f->series;
                while (s) {
                        kp_series_t *snext = s->next;
                        series_free(f->type, s);
                        s = snext;
                }
                kp_free(f->name);
                kp_free(f->help);
                kp_free(f);
                f = fnext;
        }
        pthread_mutex_destroy(&m->lock);
        kp_free(m);
}

/* Finds or creates the family @p name of @p type. @locks m->lock held */
static kp_family_t *family_get(kp_metrics_t *m, const char *name,
                               const char *help, kp_metric_type_t type) {
        kp_family_t *f;
        for (f = m->families; f; f = f->next) {
                if (strcmp(f->name, name))
                        continue;
                if (f->type != type)
                        misuse("metric \"%s\" registered as a %s and as a %s",
                               name, type_names[f->type], type_names[type]);
                return f;
        }
        if (!valid_name(name))
                misuse("invalid metric name \"%s\"", name ? name : "(null)");
        f                 = kp_calloc(1, sizeof(*f));
        f->name           = kp_strdup(name);
        f->help           = kp_strdup(help ? help : "");
        f->type           = type;
        f->series_tail    = &f->series;
        *m->families_tail = f;
        m->families_tail  = &f->next;
        return f;
}

static kp_series_t *series_find(kp_family_t *f, const char *labels) {
        for (kp_series_t *s = f->series; s; s = s->next)
                if (!strcmp(s->labels, labels))
                        return s;
        return NULL;
}

static void series_append(kp_family_t *f, kp_series_t *s, const char *labels) {
        s->labels       = kp_strdup(labels);
        *f->series_tail = s;
        f->series_tail  = &s->next;
}

kp_counter_t *kp_metrics_counter(kp_metrics_t *m, const char *name,
                                 const char *help, const char *labels) {
        kp_counter_t *c;
        if (!labels)
                labels = "";
        pthread_mutex_lock(&m->lock);
        kp_family_t *f = family_get(m, name, help, KP_METRIC_COUNTER);
        c              = (kp_counter_t *)series_find(f, labels);
        if (!c) {
                c = kp_calloc(1, sizeof(*c));
                atomic_init(&c->value, 0);
                series_append(f, &c->s, labels);
        }
        pthread_mutex_unlock(&m->lock);
        return c;
}

void kp_counter_add(kp_counter_t *c, int64_t v) {
        /* A counter only goes up; a negative increment is a caller bug that
         * would make rate() see a reset, so it is ignored. */
        if (v <= 0)
                return;
        atomic_fetch_add_explicit(&c->value, v, memory_order_relaxed);
}

int64_t kp_counter_get(const kp_counter_t *c) {
        return (int64_t)atomic_load_explicit(&((kp_counter_t *)c)->value,
                                             memory_order_relaxed);
}

kp_gauge_t *kp_metrics_gauge(kp_metrics_t *m, const char *name,
                             const char *help, const char *labels) {
        kp_gauge_t *g;
        if (!labels)
                labels = "";
        pthread_mutex_lock(&m->lock);
        kp_family_t *f = family_get(m, name, help, KP_METRIC_GAUGE);
        g              = (kp_gauge_t *)series_find(f, labels);
        if (!g) {
                g = kp_calloc(1, sizeof(*g));
                atomic_init(&g->bits, double_bits(0.0));
                series_append(f, &g->s, labels);
        }
        pthread_mutex_unlock(&m->lock);
        return g;
}

void kp_gauge_set(kp_gauge_t *g, double v) {
        atomic_store_explicit(&g->bits, double_bits(v), memory_order_relaxed);
}

void kp_gauge_add(kp_gauge_t *g, double v) {
        atomic_add_double(&g->bits, v);
}

double kp_gauge_get(const kp_gauge_t *g) {
        return bits_double(atomic_load_explicit(&((kp_gauge_t *)g)->bits,
                                                memory_order_relaxed));
}

void kp_metrics_remove_gauge(kp_metrics_t *m, kp_gauge_t *g) {
        if (!m || !g)
                return;
        pthread_mutex_lock(&m->lock);
        for (kp_family_t *f = m->families; f; f = f->next) {
                if (f->type != KP_METRIC_GAUGE)
                        continue;
                for (kp_series_t **sp = &f->series; *sp; sp = &(*sp)->next) {
                        if (*sp != &g->s)
                                continue;
                        *sp = g->s.next;
                        if (f->series_tail == &g->s.next)
                                f->series_tail = sp;
                        series_free(KP_METRIC_GAUGE, &g->s);
                        pthread_mutex_unlock(&m->lock);
                        return;
                }
        }
        pthread_mutex_unlock(&m->lock);
        /* Removing twice is a caller bug, but not one worth a crash. */
        KP_ERROR(
            "metrics: kp_metrics_remove_gauge: not a gauge of this "
            "registry (removed twice?)");
}

kp_histogram_t *kp_metrics_histogram(kp_metrics_t *m, const char *name,
                                     const char *help, const char *labels,
                                     const double *bounds, size_t bound_cnt) {
        kp_histogram_t *h;
        if (!labels)
                labels = "";
        /* +Inf is implicit; tolerate callers that list it anyway. */
        if (bound_cnt > 0 && isinf(bounds[bound_cnt - 1]) &&
            bounds[bound_cnt - 1] > 0)
                bound_cnt--;
        for (size_t i = 0; i < bound_cnt; i++) {
                if (!isfinite(bounds[i]) ||
                    (i > 0 && bounds[i] <= bounds[i - 1]))
                        misuse(
                            "histogram \"%s\": bounds must be finite and "
                            "strictly ascending",
                            name ? name : "(null)");
        }
        pthread_mutex_lock(&m->lock);
        kp_family_t *f = family_get(m, name, help, KP_METRIC_HISTOGRAM);
        h              = (kp_histogram_t *)series_find(f, labels);
        if (h) {
                if (h->bound_cnt != bound_cnt ||
                    (bound_cnt > 0 &&
                     memcmp(h->bounds, bounds, bound_cnt * sizeof(*bounds))))
                        misuse(
                            "histogram \"%s\"{%s} registered twice with "
                            "different bounds",
                            name, labels);
        } else {
                h            = kp_calloc(1, sizeof(*h));
                h->bound_cnt = bound_cnt;
                h->bounds =
                    kp_calloc(bound_cnt ? bound_cnt : 1, sizeof(*h->bounds));
                if (bound_cnt > 0)
                        memcpy(h->bounds, bounds, bound_cnt * sizeof(*bounds));
                h->buckets = kp_calloc(bound_cnt + 1, sizeof(*h->buckets));
                for (size_t i = 0; i <= bound_cnt; i++)
                        atomic_init(&h->buckets[i], 0);
                atomic_init(&h->sum_bits, double_bits(0.0));
                series_append(f, &h->s, labels);
        }
        pthread_mutex_unlock(&m->lock);
        return h;
}

void kp_histogram_observe(kp_histogram_t *h, double v) {
        /* The first bucket whose upper bound is >= v (binary search); NaN
         * lands in +Inf. */
        size_t lo = 0, hi = h->bound_cnt;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (v <= h->bounds[mid])
                        hi = mid;
                else
                        lo = mid + 1;
        }
        if (isnan(v))
                lo = h->bound_cnt;
        atomic_add_double(&h->sum_bits, v);
        atomic_fetch_add_explicit(&h->buckets[lo], 1, memory_order_relaxed);
}

uint64_t kp_histogram_count(const kp_histogram_t *h) {
        uint64_t n = 0;
        for (size_t i = 0; i <= h->bound_cnt; i++)
                n += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        return n;
}

char *kp_metrics_escape_label(char *buf, size_t size, const char *value) {
        size_t of = 0;
        if (size == 0)
                return buf;
        if (!value)
                value = "";
        for (; *value; value++) {
                char c         = *value;
                const char *es = c == '\\'   ? "\\\\"
                                 : c == '"'  ? "\\\""
                                 : c == '\n' ? "\\n"
                                             : NULL;
                size_t n       = es ? 2 : 1;
                /* Never split an escape sequence when truncating. */
                if (of + n >= size)
                        break;
                if (es) {
                        buf[of++] = es[0];
                        buf[of++] = es[1];
                } else {
                        buf[of++] = c;
                }
        }
        buf[of] = '\0';
        return buf;
}

/* Formats @p v as Prometheus expects: NaN, +Inf, -Inf, otherwise the
 * shortest decimal that reads back as the same double ("0.1", not
 * "0.10000000000000001"; "3", not "3.0000000000000000"). */
static void format_double(char *buf, size_t size, double v) {
        if (isnan(v)) {
                snprintf(buf, size, "NaN");
                return;
        }
        if (isinf(v)) {
                snprintf(buf, size, v > 0 ? "+Inf" : "-Inf");
                return;
        }
        for (int prec = 15; prec <= 17; prec++) {
                snprintf(buf, size, "%.*g", prec, v);
                if (strtod(buf, NULL) == v)
                        return;
        }
}

/* Writes the HELP text, escaping backslash and newline. */
static void sbuf_help(kp_buf_t *b, const char *help) {
        for (const char *p = help; *p; p++) {
                if (*p == '\\')
                        kp_buf_add(b, "\\\\", 2);
                else if (*p == '\n')
                        kp_buf_add(b, "\\n", 2);
                else
                        kp_buf_add(b, p, 1);
        }
}

/* Writes "name{labels}" or "name" when there are no labels. */
static void sbuf_series_name(kp_buf_t *b, const char *name, const char *suffix,
                             const char *labels) {
        kp_buf_puts(b, name);
        kp_buf_puts(b, suffix);
        if (*labels)
                kp_buf_printf(b, "{%s}", labels);
}

static void render_histogram(kp_buf_t *b, const char *name,
                             const kp_histogram_t *h) {
        char num[64];
        const char *sep = *h->s.labels ? "," : "";
        uint64_t cum    = 0;
        for (size_t i = 0; i <= h->bound_cnt; i++) {
                cum +=
                    atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
                if (i < h->bound_cnt)
                        format_double(num, sizeof(num), h->bounds[i]);
                else
                        snprintf(num, sizeof(num), "+Inf");
                kp_buf_printf(b, "%s_bucket{%s%sle=\"%s\"} %" PRIu64 "\n", name,
                              h->s.labels, sep, num, cum);
        }
        format_double(
            num, sizeof(num),
            bits_double(atomic_load_explicit(&((kp_histogram_t *)h)->sum_bits,
                                             memory_order_relaxed)));
        sbuf_series_name(b, name, "_sum", h->s.labels);
        kp_buf_printf(b, " %s\n", num);
        /* _count is the +Inf bucket as read above, so that the two always
         * agree even while observations race with rendering. */
        sbuf_series_name(b, name, "_count", h->s.labels);
        kp_buf_printf(b, " %" PRIu64 "\n", cum);
}

char *kp_metrics_render(kp_metrics_t *m, size_t *lenp) {
        kp_buf_t b = {NULL, 0, 0};
        char num[64];
        kp_buf_reserve(&b, 0);
        b.p[0] = '\0';
        pthread_mutex_lock(&m->lock);
        for (const kp_family_t *f = m->families; f; f = f->next) {
                if (!f->series)
                        continue; /* every gauge of it was removed */
                kp_buf_printf(&b, "# HELP %s ", f->name);
                sbuf_help(&b, f->help);
                kp_buf_printf(&b, "\n# TYPE %s %s\n", f->name,
                              type_names[f->type]);
                for (const kp_series_t *s = f->series; s; s = s->next) {
                        switch (f->type) {
                        case KP_METRIC_COUNTER:
                                sbuf_series_name(&b, f->name, "", s->labels);
                                kp_buf_printf(
                                    &b, " %" PRId64 "\n",
                                    kp_counter_get((const kp_counter_t *)s));
                                break;
                        case KP_METRIC_GAUGE:
                                format_double(
                                    num, sizeof(num),
                                    kp_gauge_get((const kp_gauge_t *)s));
                                sbuf_series_name(&b, f->name, "", s->labels);
                                kp_buf_printf(&b, " %s\n", num);
                                break;
                        case KP_METRIC_HISTOGRAM:
                                render_histogram(&b, f->name,
                                                 (const kp_histogram_t *)s);
                                break;
                        }
                }
        }
        pthread_mutex_unlock(&m->lock);
        if (lenp)
                *lenp = b.len;
        return b.p;
}
