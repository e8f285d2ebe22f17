/* gen.c: kpay-gen's logic as pure functions (gen.h). No Kafka, no clock:
 * everything here is a function of its arguments, so the unit tests can
 * check it exactly. */
#include "gen.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "kpay/kp_conf.h"
#include "kpay/kp_hist.h"
#include "kpay/kp_mem.h"

/* ------------------------------------------------------------------------
 * Argument parsing. */

kp_err_t gen_parse_amount_range(const char *s, int64_t *minp, int64_t *maxp,
                                char *errstr, size_t errstr_size) {
        int64_t lo, hi;
        const char *colon;
        char buf[64];

        if (!s || !*s) {
                snprintf(errstr, errstr_size,
                         "--amount expects MIN:MAX in minor units, not an "
                         "empty string");
                return KP_ERR_INVALID_ARG;
        }
        colon = strchr(s, ':');
        if (!colon) {
                if (kp_parse_int64(s, &lo) != KP_OK)
                        goto bad;
                hi = lo;
        } else {
                size_t n = (size_t)(colon - s);
                if (n == 0 || n >= sizeof(buf))
                        goto bad;
                memcpy(buf, s, n);
                buf[n] = '\0';
                if (kp_parse_int64(buf, &lo) != KP_OK ||
                    kp_parse_int64(colon + 1, &hi) != KP_OK)
                        goto bad;
        }
        if (lo < 1) {
                snprintf(errstr, errstr_size,
                         "--amount: MIN must be at least 1 minor unit, not "
                         "%" PRId64,
                         lo);
                return KP_ERR_INVALID_ARG;
        }
        if (lo > hi) {
                snprintf(errstr, errstr_size,
                         "--amount: MIN %" PRId64 " is above MAX %" PRId64, lo,
                         hi);
                return KP_ERR_INVALID_ARG;
        }
        *minp = lo;
        *maxp = hi;
        return KP_OK;
bad:
        snprintf(errstr, errstr_size,
                 "--amount expects MIN:MAX, two integers of minor units "
                 "(int64), not \"%s\"",
                 s);
        return KP_ERR_INVALID_ARG;
}

kp_err_t gen_parse_ratio_ppm(const char *s, uint32_t *ppmp, char *errstr,
                             size_t errstr_size) {
        const char *p  = s;
        uint32_t whole = 0, frac = 0;
        int digits = 0, decimals = 0;

        if (!s)
                goto bad;
        /* The integer part: one or more digits, of value 0 or 1. */
        for (; *p >= '0' && *p <= '9'; p++) {
                whole = whole * 10 + (uint32_t)(*p - '0');
                if (whole > 1)
                        goto range;
                digits++;
        }
        if (digits == 0)
                goto bad;
        if (*p == '.') {
                p++;
                for (; *p >= '0' && *p <= '9'; p++) {
                        if (++decimals > 6) {
                                snprintf(errstr, errstr_size,
                                         "ratio \"%s\" has more than 6 "
                                         "decimals (the resolution is one "
                                         "in a million)",
                                         s);
                                return KP_ERR_INVALID_ARG;
                        }
                        frac = frac * 10 + (uint32_t)(*p - '0');
                }
                if (decimals == 0)
                        goto bad;
        }
        if (*p != '\0')
                goto bad;
        for (int i = decimals; i < 6; i++)
                frac *= 10;
        if (whole == 1 && frac > 0)
                goto range;
        *ppmp = whole * GEN_PPM + frac;
        return KP_OK;
range:
        snprintf(errstr, errstr_size, "ratio \"%s\" is above 1", s);
        return KP_ERR_INVALID_ARG;
bad:
        snprintf(errstr, errstr_size,
                 "ratio \"%s\" is not a decimal between 0 and 1 (such as "
                 "0.05)",
                 s ? s : "(null)");
        return KP_ERR_INVALID_ARG;
}

kp_err_t gen_check_id_prefix(const char *prefix, char *errstr,
                             size_t errstr_size) {
        size_t len = strlen(prefix);
        if (len > GEN_ID_PREFIX_MAX) {
                snprintf(errstr, errstr_size,
                         "--id-prefix is %zu characters long; at most %d fit "
                         "in a payment id",
                         len, GEN_ID_PREFIX_MAX);
                return KP_ERR_INVALID_ARG;
        }
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)prefix[i];
                if (c < 0x20 || c > 0x7e) {
                        snprintf(errstr, errstr_size,
                                 "--id-prefix must be printable ASCII "
                                 "(character %zu is 0x%02x)",
                                 i + 1, c);
                        return KP_ERR_INVALID_ARG;
                }
        }
        return KP_OK;
}

/* ------------------------------------------------------------------------
 * Deterministic randomness. */

#define GEN_GOLDEN UINT64_C(0x9e3779b97f4a7c15)

uint64_t gen_mix64(uint64_t x) {
        x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
        return x ^ (x >> 31);
}

uint64_t gen_draw(uint64_t seed, uint64_t index, uint32_t stream) {
        /* Each (seed, stream) pair keys its own splitmix64 sequence, and
         * draw `index` is that sequence's element index + 1. */
        uint64_t key = gen_mix64(seed ^ gen_mix64((uint64_t)stream + 1));
        return gen_mix64(key + (index + 1) * GEN_GOLDEN);
}

/* The independent draws of one record. */
enum {
        DRAW_KIND,
        DRAW_INVALID,
        DRAW_DUP,
        DRAW_FROM,
        DRAW_TO,
        DRAW_AMOUNT,
};

/* How far back a duplicate looks for a valid record before giving up (and
 * being a new payment instead); only reached when nearly every record is
 * broken or a duplicate. */
#define GEN_DUP_WALK_MAX 1024

/* ------------------------------------------------------------------------
 * The stream. */

static const char *const invalid_names[GEN_INV__CNT] = {
    "not_json",        "float_amount",  "string_amount",
    "unknown_version", "missing_field", "truncated",
};

const char *gen_invalid_name(gen_invalid_t kind) {
        if ((unsigned)kind >= GEN_INV__CNT)
                return "unknown";
        return invalid_names[kind];
}

kp_err_t gen_params_check(const gen_params_t *gp, char *errstr,
                          size_t errstr_size) {
        if (gp->accounts < 2) {
                snprintf(errstr, errstr_size,
                         "--accounts must be at least 2 (a payment needs two "
                         "different accounts), not %" PRId64,
                         gp->accounts);
                return KP_ERR_INVALID_ARG;
        }
        if (gp->amount_min < 1 || gp->amount_min > gp->amount_max) {
                snprintf(errstr, errstr_size,
                         "--amount: need 1 <= MIN <= MAX, not %" PRId64
                         ":%" PRId64,
                         gp->amount_min, gp->amount_max);
                return KP_ERR_INVALID_ARG;
        }
        if (gp->invalid_ppm > GEN_PPM || gp->duplicate_ppm > GEN_PPM ||
            gp->invalid_ppm + gp->duplicate_ppm > GEN_PPM) {
                snprintf(errstr, errstr_size,
                         "--invalid-ratio plus --duplicate-ratio must not "
                         "exceed 1");
                return KP_ERR_INVALID_ARG;
        }
        return KP_OK;
}

/* The kind the draws give record @p k, before a duplicate looks for the
 * record it repeats. Record 0 has nothing before it: never a duplicate. */
static gen_kind_t base_kind(const gen_params_t *gp, uint64_t k) {
        uint64_t u = gen_draw(gp->seed, k, DRAW_KIND) % GEN_PPM;
        if (u < gp->invalid_ppm)
                return GEN_INVALID;
        if (u < (uint64_t)gp->invalid_ppm + gp->duplicate_ppm && k > 0)
                return GEN_DUPLICATE;
        return GEN_VALID;
}

/* The accounts and amount of new payment @p k. */
static void fill_payment(const gen_params_t *gp, uint64_t k,
                         gen_record_t *rec) {
        uint64_t n    = (uint64_t)gp->accounts;
        uint64_t span = (uint64_t)gp->amount_max - (uint64_t)gp->amount_min + 1;
        rec->payment  = k;
        rec->from     = (int64_t)(gen_draw(gp->seed, k, DRAW_FROM) % n);
        rec->to       = (int64_t)(((uint64_t)rec->from + 1 +
                             gen_draw(gp->seed, k, DRAW_TO) % (n - 1)) %
                            n);
        rec->amount   = gp->amount_min +
                      (int64_t)(gen_draw(gp->seed, k, DRAW_AMOUNT) % span);
}

void gen_record(const gen_params_t *gp, uint64_t index, gen_record_t *rec) {
        memset(rec, 0, sizeof(*rec));
        rec->index = index;
        rec->kind  = base_kind(gp, index);
        if (rec->kind == GEN_INVALID)
                rec->invalid =
                    (gen_invalid_t)(gen_draw(gp->seed, index, DRAW_INVALID) %
                                    GEN_INV__CNT);
        if (rec->kind == GEN_DUPLICATE) {
                uint64_t j = gen_draw(gp->seed, index, DRAW_DUP) % index;
                for (int steps = 0; steps < GEN_DUP_WALK_MAX; steps++) {
                        if (base_kind(gp, j) == GEN_VALID) {
                                fill_payment(gp, j, rec);
                                return;
                        }
                        if (j == 0)
                                break;
                        j--;
                }
                /* No valid record to repeat: a new payment. */
                rec->kind = GEN_VALID;
        }
        fill_payment(gp, index, rec);
}

char *gen_account_id(char *buf, size_t size, int64_t n) {
        snprintf(buf, size, "acc-%" PRId64, n);
        return buf;
}

char *gen_payment_id(char *buf, size_t size, const char *prefix, uint64_t n) {
        snprintf(buf, size, "%s%" PRIu64, prefix, n);
        return buf;
}

char *gen_fund_id(char *buf, size_t size, const char *prefix, int64_t i) {
        snprintf(buf, size, "%s" GEN_FUND_TAG "%" PRId64, prefix, i);
        return buf;
}

/* A new INCOMING payment with every optional field unset. */
static void payment_init(kp_payment_t *p, int64_t created_ms) {
        memset(p, 0, sizeof(*p));
        p->v                = KP_PAYMENT_VERSION;
        p->state            = KP_PAY_INCOMING;
        p->created_ms       = created_ms;
        p->inflight_ms      = -1;
        p->complete_ms      = -1;
        p->origin_partition = -1;
        memcpy(p->currency, "USD", 4);
}

void gen_payment(const char *prefix, const gen_record_t *rec,
                 int64_t created_ms, kp_payment_t *p) {
        payment_init(p, created_ms);
        gen_payment_id(p->id, sizeof(p->id), prefix, rec->payment);
        gen_account_id(p->from, sizeof(p->from), rec->from);
        gen_account_id(p->to, sizeof(p->to), rec->to);
        p->amount = rec->amount;
}

void gen_fund_payment(const char *prefix, int64_t i, int64_t amount,
                      int64_t created_ms, kp_payment_t *p) {
        payment_init(p, created_ms);
        gen_fund_id(p->id, sizeof(p->id), prefix, i);
        snprintf(p->from, sizeof(p->from), "%s", GEN_FUND_ACCOUNT);
        gen_account_id(p->to, sizeof(p->to), i);
        p->amount = amount;
}

/* A copy of @p s (@p len bytes) with @p del bytes at @p pos replaced by
 * @p ins; NUL-terminated. */
static char *splice(const char *s, size_t len, size_t pos, size_t del,
                    const char *ins, size_t *lenp) {
        size_t ilen = strlen(ins);
        size_t n    = len - del + ilen;
        char *out   = kp_malloc(n + 1);
        memcpy(out, s, pos);
        memcpy(out + pos, ins, ilen);
        memcpy(out + pos + ilen, s + pos + del, len - pos - del);
        out[n] = '\0';
        *lenp  = n;
        return out;
}

/* The offset just past the JSON string that starts (after its opening
 * quote) at @p pos, i.e. past its closing quote; @p len when unterminated. */
static size_t json_string_end(const char *s, size_t len, size_t pos) {
        while (pos < len) {
                if (s[pos] == '\\')
                        pos += 2;
                else if (s[pos] == '"')
                        return pos + 1;
                else
                        pos++;
        }
        return len;
}

char *gen_body(const kp_payment_t *p, gen_kind_t kind, gen_invalid_t invalid,
               size_t *lenp) {
        size_t len, pos, end;
        char *json = kp_payment_serialize(p, &len), *out, *at;

        if (kind != GEN_INVALID) {
                *lenp = len;
                return json;
        }
        /* kp_payment_serialize() writes the known fields first, in a fixed
         * order, as compact JSON; a quote inside a string is always
         * escaped, so the markers below can only match the real fields. */
        switch (invalid) {
        case GEN_INV_NOT_JSON:
                out = kp_asprintf("kpay-gen broken record %s: not JSON", p->id);
                *lenp = strlen(out);
                break;
        case GEN_INV_FLOAT_AMOUNT:
        case GEN_INV_STRING_AMOUNT:
                at  = strstr(json, ",\"amount\":");
                pos = (size_t)(at - json) + strlen(",\"amount\":");
                end = pos + strspn(json + pos, "-0123456789");
                if (invalid == GEN_INV_FLOAT_AMOUNT) {
                        out = splice(json, len, end, 0, ".5", lenp);
                } else {
                        size_t l1;
                        char *tmp = splice(json, len, pos, 0, "\"", &l1);
                        out       = splice(tmp, l1, end + 1, 0, "\"", lenp);
                        kp_free(tmp);
                }
                break;
        case GEN_INV_UNKNOWN_VERSION:
                out = splice(json, len, strlen("{\"v\":"), 1, "2", lenp);
                break;
        case GEN_INV_MISSING_FIELD:
                at  = strstr(json, ",\"from\":\"");
                pos = (size_t)(at - json);
                end = json_string_end(json, len, pos + strlen(",\"from\":\""));
                out = splice(json, len, pos, end - pos, "", lenp);
                break;
        case GEN_INV_TRUNCATED:
        default:
                out = splice(json, len, len / 2, len - len / 2, "", lenp);
                break;
        }
        kp_free(json);
        return out;
}

/* ------------------------------------------------------------------------
 * The schedule. */

#define NS_PER_S INT64_C(1000000000)

int64_t gen_due_ns(int64_t start_ns, uint64_t k, int64_t rate) {
        if (rate <= 0)
                return start_ns;
        uint64_t sec = k / (uint64_t)rate;
        uint64_t rem = k % (uint64_t)rate;
        if (sec >= (uint64_t)(INT64_MAX / NS_PER_S))
                return INT64_MAX;
        /* rem < rate, so rem * 1e9 fits for any rate below 1.8e10 / s, and
         * the offset is below INT64_MAX by the check above. */
        int64_t off = (int64_t)sec * NS_PER_S +
                      (int64_t)(rem * (uint64_t)NS_PER_S / (uint64_t)rate);
        if (start_ns > 0 && off > INT64_MAX - start_ns)
                return INT64_MAX;
        return start_ns + off;
}

/* ------------------------------------------------------------------------
 * Percentiles. */

static int cmp_i64(const void *a, const void *b) {
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
        return (x > y) - (x < y);
}

void gen_sort_i64(int64_t *v, size_t n) {
        if (n > 1)
                qsort(v, n, sizeof(*v), cmp_i64);
}

int64_t gen_percentile(const int64_t *v, size_t n, unsigned pct) {
        if (n == 0)
                return 0;
        if (pct == 0)
                pct = 1;
        if (pct > 100)
                pct = 100;
        /* Nearest rank: ceil(pct * n / 100), 1-based. */
        size_t rank = (size_t)(((uint64_t)pct * n + 99) / 100);
        if (rank == 0)
                rank = 1;
        return v[rank - 1];
}

/* ------------------------------------------------------------------------
 * Outcome tracking. */

/* Per payment: flags, one byte each. */
#define ST_EXPECTED 0x1 /* sent, an outcome is expected */
#define ST_FAILED   0x2 /* not delivered: no longer expected */
#define ST_OUTCOME  0x4 /* has an outcome */
#define ST_MULTIPLE 0x8 /* has more than one */

struct gen_tracker_s {
        char *prefix;
        size_t prefix_len;
        uint8_t *st; /* payments 0 .. st_cnt-1 */
        size_t st_cnt, st_cap;
        uint8_t *fund; /* funding payments 0 .. fund_cnt-1 */
        int64_t fund_cnt;
        int64_t pending, pending_fund, expected, undelivered;
        int64_t outcomes, complete, rejected;
        int64_t multiple, unexpected;
        char **reasons;
        int64_t *reason_counts;
        size_t reason_cnt;
        int64_t *lat; /* latencies of first outcomes, ms */
        size_t lat_cnt, lat_cap;
};

gen_tracker_t *gen_tracker_new(const char *prefix, int64_t fund_cnt) {
        gen_tracker_t *t = kp_calloc(1, sizeof(*t));
        t->prefix        = kp_strdup(prefix);
        t->prefix_len    = strlen(prefix);
        t->fund_cnt      = fund_cnt > 0 ? fund_cnt : 0;
        if (t->fund_cnt)
                t->fund = kp_calloc((size_t)t->fund_cnt, 1);
        return t;
}

void gen_tracker_destroy(gen_tracker_t *t) {
        if (!t)
                return;
        for (size_t i = 0; i < t->reason_cnt; i++)
                kp_free(t->reasons[i]);
        kp_free(t->reasons);
        kp_free(t->reason_counts);
        kp_free(t->lat);
        kp_free(t->st);
        kp_free(t->fund);
        kp_free(t->prefix);
        kp_free(t);
}

/* The flags of payment @p n, growing the array to hold it. */
static uint8_t *slot(gen_tracker_t *t, uint64_t n) {
        if (n >= t->st_cnt) {
                if (n >= t->st_cap) {
                        size_t cap = t->st_cap ? t->st_cap : 1024;
                        while (cap <= n)
                                cap *= 2;
                        t->st = kp_realloc(t->st, cap);
                        memset(t->st + t->st_cap, 0, cap - t->st_cap);
                        t->st_cap = cap;
                }
                t->st_cnt = (size_t)n + 1;
        }
        return &t->st[n];
}

static void expect(gen_tracker_t *t, uint8_t *s, int64_t *pending) {
        if (*s & ST_EXPECTED)
                return;
        *s |= ST_EXPECTED;
        t->expected++;
        if (!(*s & ST_OUTCOME))
                (*pending)++;
}

void gen_tracker_expect(gen_tracker_t *t, uint64_t n) {
        expect(t, slot(t, n), &t->pending);
}

void gen_tracker_expect_fund(gen_tracker_t *t, int64_t i) {
        if (i >= 0 && i < t->fund_cnt)
                expect(t, &t->fund[i], &t->pending_fund);
}

void gen_tracker_failed(gen_tracker_t *t, int fund, uint64_t n) {
        uint8_t *s;
        int64_t *pending = fund ? &t->pending_fund : &t->pending;
        if (fund) {
                if (n >= (uint64_t)t->fund_cnt)
                        return;
                s = &t->fund[n];
        } else {
                if (n >= t->st_cnt)
                        return;
                s = &t->st[n];
        }
        if ((*s & ST_EXPECTED) && !(*s & ST_FAILED)) {
                t->undelivered++;
                if (!(*s & ST_OUTCOME))
                        (*pending)--;
        }
        *s |= ST_FAILED;
}

/* Parses the canonical decimal "0" or "[1-9][0-9]*" (no sign, no leading
 * zero, so that every number has exactly one id). @returns 1 if valid. */
static int parse_index(const char *s, uint64_t *np) {
        uint64_t n = 0;
        if (!*s || (s[0] == '0' && s[1]))
                return 0;
        for (; *s; s++) {
                if (*s < '0' || *s > '9')
                        return 0;
                if (n > (UINT64_MAX - 9) / 10)
                        return 0;
                n = n * 10 + (uint64_t)(*s - '0');
        }
        *np = n;
        return 1;
}

static void count_reason(gen_tracker_t *t, const char *reason) {
        if (!*reason)
                reason = "unknown";
        for (size_t i = 0; i < t->reason_cnt; i++) {
                if (!strcmp(t->reasons[i], reason)) {
                        t->reason_counts[i]++;
                        return;
                }
        }
        t->reasons =
            kp_realloc(t->reasons, (t->reason_cnt + 1) * sizeof(*t->reasons));
        t->reason_counts = kp_realloc(
            t->reason_counts, (t->reason_cnt + 1) * sizeof(*t->reason_counts));
        t->reasons[t->reason_cnt]       = kp_strdup(reason);
        t->reason_counts[t->reason_cnt] = 1;
        t->reason_cnt++;
}

int gen_tracker_outcome(gen_tracker_t *t, const kp_payment_t *p) {
        uint64_t n;
        uint8_t *s = NULL;
        int64_t *pending;
        const char *rest;

        if (p->state != KP_PAY_COMPLETE && p->state != KP_PAY_REJECTED)
                return 0;
        if (strncmp(p->id, t->prefix, t->prefix_len))
                return 0;
        rest = p->id + t->prefix_len;
        if (!strncmp(rest, GEN_FUND_TAG, strlen(GEN_FUND_TAG)) &&
            parse_index(rest + strlen(GEN_FUND_TAG), &n)) {
                pending = &t->pending_fund;
                if (n < (uint64_t)t->fund_cnt)
                        s = &t->fund[n];
        } else if (parse_index(rest, &n)) {
                pending = &t->pending;
                if (n < t->st_cnt)
                        s = &t->st[n];
        } else {
                return 0;
        }
        if (!s || !(*s & ST_EXPECTED)) {
                t->unexpected++;
                return 1;
        }
        if (*s & ST_OUTCOME) {
                if (!(*s & ST_MULTIPLE))
                        t->multiple++;
                *s |= ST_MULTIPLE;
                return 1;
        }
        *s |= ST_OUTCOME;
        if (!(*s & ST_FAILED))
                (*pending)--;
        t->outcomes++;
        if (p->state == KP_PAY_COMPLETE) {
                t->complete++;
        } else {
                t->rejected++;
                count_reason(t, p->reason);
        }
        /* Latency is the workload's: funding payments are setup, sent in a
         * burst before it, and would only blur the figures. */
        if (pending == &t->pending && p->complete_ms >= 0 &&
            p->created_ms > 0 && p->complete_ms >= p->created_ms) {
                if (t->lat_cnt == t->lat_cap) {
                        t->lat_cap = t->lat_cap ? t->lat_cap * 2 : 1024;
                        t->lat =
                            kp_realloc(t->lat, t->lat_cap * sizeof(*t->lat));
                }
                t->lat[t->lat_cnt++] = p->complete_ms - p->created_ms;
        }
        return 1;
}

int64_t gen_tracker_pending(const gen_tracker_t *t) {
        return t->pending + t->pending_fund;
}

int64_t gen_tracker_pending_fund(const gen_tracker_t *t) {
        return t->pending_fund;
}

int64_t gen_tracker_expected(const gen_tracker_t *t) {
        return t->expected;
}

int64_t gen_tracker_awaited(const gen_tracker_t *t) {
        return t->outcomes + t->pending + t->pending_fund;
}

void gen_tracker_outcomes(gen_tracker_t *t, gen_outcomes_t *out) {
        memset(out, 0, sizeof(*out));
        gen_sort_i64(t->lat, t->lat_cnt);
        out->expected          = t->expected;
        out->undelivered       = t->undelivered;
        out->outcomes          = t->outcomes;
        out->complete          = t->complete;
        out->rejected          = t->rejected;
        out->reason_cnt        = t->reason_cnt;
        out->reasons           = (const char *const *)t->reasons;
        out->reason_counts     = t->reason_counts;
        out->missing           = t->pending + t->pending_fund;
        out->multiple_outcomes = t->multiple;
        out->unexpected        = t->unexpected;
        out->latency_cnt       = (int64_t)t->lat_cnt;
        out->p50_ms            = gen_percentile(t->lat, t->lat_cnt, 50);
        out->p95_ms            = gen_percentile(t->lat, t->lat_cnt, 95);
        out->p99_ms            = gen_percentile(t->lat, t->lat_cnt, 99);
        out->max_ms            = gen_percentile(t->lat, t->lat_cnt, 100);
}

/* ------------------------------------------------------------------------
 * Progress and summary. */

char *gen_progress_line(char *buf, size_t size, int64_t sent, int64_t total,
                        int64_t acked, int64_t rate_x10, int64_t eta_s) {
        char of[32] = "", eta[48] = "";
        if (total >= 0)
                snprintf(of, sizeof(of), "/%" PRId64, total);
        if (eta_s >= 3600)
                snprintf(eta, sizeof(eta),
                         " ETA %" PRId64 ":%02" PRId64 ":%02" PRId64,
                         eta_s / 3600, eta_s / 60 % 60, eta_s % 60);
        else if (eta_s >= 0)
                snprintf(eta, sizeof(eta), " ETA %" PRId64 ":%02" PRId64,
                         eta_s / 60, eta_s % 60);
        snprintf(buf, size,
                 "sent %" PRId64 "%s  acked %" PRId64 "  %" PRId64 ".%" PRId64
                 "/s%s",
                 sent, of, acked, rate_x10 / 10, rate_x10 % 10, eta);
        return buf;
}

int64_t gen_rate_x10(int64_t records, int64_t elapsed_ms) {
        if (elapsed_ms <= 0 || records <= 0)
                return 0;
        return records * 10000 / elapsed_ms;
}

/* json_object_set_new() that aborts on failure, like kp_malloc(). */
static void jset(json_t *obj, const char *key, json_t *val) {
        if (!val || json_object_set_new(obj, key, val) == -1) {
                fprintf(stderr, "kpay-gen: out of memory building JSON\n");
                abort();
        }
}

/* ------------------------------------------------------------------------
 * The books. */

void gen_books_init(gen_books_t *b) {
        memset(b, 0, sizeof(*b));
        kp_money_init(&b->sums);
}

void gen_books_clear(gen_books_t *b) {
        if (!b)
                return;
        kp_money_clear(&b->sums);
        gen_books_init(b);
}

void gen_books_add(gen_books_t *b, const char *account, size_t account_len,
                   const void *val, size_t len) {
        acct_record_t r;
        char errstr[256];
        acct_record_init(&r);
        b->accounts++;
        /* The 128-bit sums cannot overflow from int64-sized balances. */
        if (acct_decode(val, len, &r, errstr, sizeof(errstr)) ||
            kp_money_add_all(&b->sums, &r.balances)) {
                b->corrupt++;
                acct_record_clear(&r);
                return;
        }
        int regular = !(account_len > 0 && account[0] == '@');
        for (size_t i = 0; regular && i < r.balances.cnt; i++) {
                if (r.balances.e[i].amount < 0) {
                        b->overdrawn++;
                        break;
                }
        }
        acct_record_clear(&r);
}

int gen_books_balanced(const gen_books_t *b) {
        return !b->corrupt && !b->overdrawn && kp_money_is_zero(&b->sums);
}

char *gen_summary_json(const gen_summary_t *s) {
        json_t *root = json_object();
        int64_t rate = gen_rate_x10(s->sent - s->funded, s->elapsed_ms);
        if (!root) {
                fprintf(stderr, "kpay-gen: out of memory building JSON\n");
                abort();
        }
        jset(root, "topic", json_string(s->topic ? s->topic : ""));
        jset(root, "id_prefix", json_string(s->id_prefix ? s->id_prefix : ""));
        jset(root, "seed", json_integer((json_int_t)(s->seed & INT64_MAX)));
        jset(root, "sent", json_integer(s->sent));
        jset(root, "acked", json_integer(s->acked));
        jset(root, "failed", json_integer(s->failed));
        jset(root, "duplicates_sent", json_integer(s->duplicates_sent));
        jset(root, "invalid_sent", json_integer(s->invalid_sent));
        jset(root, "funded", json_integer(s->funded));
        jset(root, "elapsed_s", json_real((double)s->elapsed_ms / 1000.0));
        jset(root, "rate", json_real((double)rate / 10.0));
        jset(root, "interrupted", json_boolean(s->interrupted));
        if (s->waited) {
                const gen_outcomes_t *o = &s->outcomes;
                json_t *oc = json_object(), *by = json_object();
                json_t *lat = json_object();
                if (!oc || !by || !lat) {
                        fprintf(stderr,
                                "kpay-gen: out of memory building JSON\n");
                        abort();
                }
                for (size_t i = 0; i < o->reason_cnt; i++)
                        jset(by, o->reasons[i],
                             json_integer(o->reason_counts[i]));
                jset(oc, "complete", json_integer(o->complete));
                jset(oc, "rejected", json_integer(o->rejected));
                jset(oc, "rejected_by_reason", by);
                jset(root, "outcomes", oc);
                jset(lat, "p50", json_integer(o->p50_ms));
                jset(lat, "p95", json_integer(o->p95_ms));
                jset(lat, "p99", json_integer(o->p99_ms));
                jset(lat, "max", json_integer(o->max_ms));
                jset(root, "latency_ms", lat);
                jset(root, "expected", json_integer(o->expected));
                jset(root, "undelivered", json_integer(o->undelivered));
                jset(root, "missing", json_integer(o->missing));
                jset(root, "multiple_outcomes",
                     json_integer(o->multiple_outcomes));
                jset(root, "unexpected", json_integer(o->unexpected));
                jset(root, "wait_s", json_real((double)s->wait_ms / 1000.0));
                jset(root, "timed_out", json_boolean(s->timed_out));
        }
        if (s->books) {
                json_t *bk = json_object();
                if (!bk) {
                        fprintf(stderr,
                                "kpay-gen: out of memory building JSON\n");
                        abort();
                }
                jset(bk, "balanced",
                     json_boolean(gen_books_balanced(s->books)));
                jset(bk, "accounts", json_integer(s->books->accounts));
                jset(bk, "overdrawn", json_integer(s->books->overdrawn));
                jset(bk, "corrupt", json_integer(s->books->corrupt));
                jset(bk, "sums",
                     kp_money_to_json(&s->books->sums, KP_MONEY_JSON_STRING));
                jset(root, "books", bk);
        }
        if (s->server) {
                const gen_server_t *v = s->server;
                json_t *o = json_object(), *lat = json_object();
                if (!o || !lat) {
                        fprintf(stderr,
                                "kpay-gen: out of memory building JSON\n");
                        abort();
                }
                jset(o, "url", json_string(v->url ? v->url : ""));
                jset(o, "fetched", json_boolean(v->fetched));
                if (!v->fetched) {
                        jset(o, "error", json_string(v->error));
                        json_decref(lat);
                } else {
                        jset(o, "from_ms", json_integer(v->from_ms));
                        jset(o, "windows", json_integer(v->windows));
                        jset(o, "all_final", json_boolean(v->all_final));
                        jset(o, "complete", json_integer(v->complete));
                        jset(o, "rejected", json_integer(v->rejected));
                        jset(o, "invalid", json_integer(v->invalid));
                        jset(o, "late", json_integer(v->late));
                        jset(lat, "p50", json_integer(v->p50_ms));
                        jset(lat, "p95", json_integer(v->p95_ms));
                        jset(lat, "p99", json_integer(v->p99_ms));
                        jset(lat, "max", json_integer(v->max_ms));
                        jset(o, "latency_ms", lat);
                }
                jset(root, "server", o);
        }
        /* 15 significant digits print a value of whole milliseconds (or
         * tenths) as the short decimal it is: 1.234, not 1.23399999. */
        char *dump = json_dumps(
            root, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
        json_decref(root);
        if (!dump) {
                fprintf(stderr, "kpay-gen: out of memory building JSON\n");
                abort();
        }
        char *out = kp_strdup(dump);
        free(dump); /* jansson's allocator is the default malloc */
        return out;
}

void gen_summary_print(const gen_summary_t *s, FILE *fp) {
        int64_t rate = gen_rate_x10(s->sent - s->funded, s->elapsed_ms);
        fprintf(fp,
                "sent      %" PRId64 " records to %s (%" PRId64
                " funding, %" PRId64 " duplicates, %" PRId64 " invalid)%s\n",
                s->sent, s->topic ? s->topic : "", s->funded,
                s->duplicates_sent, s->invalid_sent,
                s->interrupted ? ", interrupted" : "");
        fprintf(fp, "delivered %" PRId64 " acknowledged, %" PRId64 " failed\n",
                s->acked, s->failed);
        fprintf(fp,
                "stream    %" PRId64 " records in %" PRId64 ".%03" PRId64
                " s: %" PRId64 ".%" PRId64 "/s (seed %" PRIu64
                ", id prefix %s)\n",
                s->sent - s->funded, s->elapsed_ms / 1000, s->elapsed_ms % 1000,
                rate / 10, rate % 10, s->seed & INT64_MAX,
                s->id_prefix ? s->id_prefix : "");
        if (!s->waited)
                return;
        const gen_outcomes_t *o = &s->outcomes;
        fprintf(fp,
                "outcomes  %" PRId64 " of %" PRId64 " payments in %" PRId64
                ".%03" PRId64 " s: %" PRId64 " COMPLETE, %" PRId64 " REJECTED",
                o->outcomes, o->expected, s->wait_ms / 1000, s->wait_ms % 1000,
                o->complete, o->rejected);
        for (size_t i = 0; i < o->reason_cnt; i++)
                fprintf(fp, "%s%s %" PRId64, i ? ", " : " (", o->reasons[i],
                        o->reason_counts[i]);
        fprintf(fp, "%s\n", o->reason_cnt ? ")" : "");
        fprintf(fp,
                "          missing %" PRId64 ", multiple outcomes %" PRId64
                ", unexpected %" PRId64 "%s\n",
                o->missing, o->multiple_outcomes, o->unexpected,
                s->timed_out ? " (timed out)" : "");
        fprintf(fp,
                "latency   p50 %" PRId64 " ms, p95 %" PRId64 " ms, p99 %" PRId64
                " ms, max %" PRId64 " ms (%" PRId64
                " payments, created to "
                "complete)\n",
                o->p50_ms, o->p95_ms, o->p99_ms, o->max_ms, o->latency_cnt);
        const gen_books_t *b = s->books;
        if (b) {
                fprintf(fp, "books     %s:",
                        gen_books_balanced(b) ? "balance" : "DO NOT balance");
                for (size_t i = 0; i < b->sums.cnt; i++) {
                        char buf[KP_I128_DEC_SIZE];
                        kp_i128_format(b->sums.e[i].amount, buf);
                        fprintf(fp, "%s %s %s", i ? "," : "",
                                b->sums.e[i].currency, buf);
                }
                fprintf(fp,
                        "%s (sum of every balance per currency; %" PRId64
                        " accounts, %" PRId64 " overdrawn, %" PRId64
                        " unreadable)\n",
                        b->sums.cnt ? "" : " no balances", b->accounts,
                        b->overdrawn, b->corrupt);
        }
        const gen_server_t *v = s->server;
        if (!v)
                return;
        if (!v->fetched) {
                fprintf(fp, "server    kpay-metrics at %s: unavailable (%s)\n",
                        v->url ? v->url : "", v->error);
                return;
        }
        fprintf(fp,
                "server    kpay-metrics at %s: %" PRId64 " COMPLETE, %" PRId64
                " REJECTED, %" PRId64 " invalid, %" PRId64 " late in %" PRId64
                " windows since %" PRId64 "%s\n",
                v->url ? v->url : "", v->complete, v->rejected, v->invalid,
                v->late, v->windows, v->from_ms,
                v->all_final ? "" : " (not all final yet)");
        fprintf(fp,
                "          p50 %" PRId64 " ms, p95 %" PRId64 " ms, p99 %" PRId64
                " ms, max %" PRId64 " ms (%" PRId64
                " outcomes, created to complete)\n",
                v->p50_ms, v->p95_ms, v->p99_ms, v->max_ms, v->latency_cnt);
}

kp_err_t gen_server_view(const char *json, size_t len, gen_server_t *v) {
        json_error_t jerr;
        kp_hist_t all, one;
        size_t i;
        json_t *w;
        kp_err_t err = KP_OK;
        json_t *root = json_loadb(json, len, 0, &jerr);
        json_t *arr  = json_object_get(root, "windows");
        v->fetched   = 0;
        if (!json_is_array(arr)) {
                snprintf(v->error, sizeof(v->error),
                         "not a /v1/metrics/windows answer");
                json_decref(root);
                return KP_ERR_PARSE;
        }
        kp_hist_init(&all);
        v->windows   = 0;
        v->all_final = 1;
        v->complete = v->rejected = v->invalid = v->late = 0;
        json_array_foreach(arr, i, w) {
                json_t *h = json_object_get(
                    json_object_get(json_object_get(w, "latency_ms"), "e2e"),
                    "histogram");
                kp_hist_init(&one);
                if (kp_hist_from_json(h, &one, v->error, sizeof(v->error)) ||
                    kp_hist_merge(&all, &one)) {
                        kp_hist_clear(&one);
                        err = KP_ERR_PARSE;
                        break;
                }
                kp_hist_clear(&one);
                v->windows++;
                v->all_final &= json_is_true(json_object_get(w, "final"));
                v->complete += json_integer_value(
                    json_object_get(json_object_get(w, "complete"), "count"));
                v->rejected += json_integer_value(
                    json_object_get(json_object_get(w, "rejected"), "count"));
                v->invalid += json_integer_value(
                    json_object_get(json_object_get(w, "invalid"), "count"));
                v->late += json_integer_value(json_object_get(w, "late"));
        }
        json_decref(root);
        if (!err) {
                v->fetched     = 1;
                v->latency_cnt = all.count;
                v->p50_ms      = all.count ? kp_hist_quantile(&all, 0.5) : 0;
                v->p95_ms      = all.count ? kp_hist_quantile(&all, 0.95) : 0;
                v->p99_ms      = all.count ? kp_hist_quantile(&all, 0.99) : 0;
                v->max_ms      = all.max;
        }
        kp_hist_clear(&all);
        return err;
}
