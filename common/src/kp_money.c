/* kp_money.c: amounts per currency and exact 128-bit sums (kp_money.h). */
#include "kpay/kp_money.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"

size_t kp_i128_format(kp_i128_t v, char *buf) {
        char tmp[KP_I128_DEC_SIZE];
        size_t n = 0, len = 0;
        /* Digits of the magnitude, unsigned: -INT128_MIN does not exist. */
        unsigned __int128 u = v < 0
                                  ? (unsigned __int128)0 - (unsigned __int128)v
                                  : (unsigned __int128)v;
        do {
                tmp[n++] = (char)('0' + (int)(u % 10));
                u /= 10;
        } while (u);
        if (v < 0)
                buf[len++] = '-';
        while (n)
                buf[len++] = tmp[--n];
        buf[len] = '\0';
        return len;
}

kp_err_t kp_i128_parse(const char *s, size_t len, kp_i128_t *out) {
        size_t i = 0;
        int neg  = 0;
        /* The magnitude limit: 2^127 - 1, or 2^127 for a negative. */
        const unsigned __int128 max = ((unsigned __int128)1 << 127) - 1;
        unsigned __int128 u         = 0;
        if (!s || len == 0)
                return KP_ERR_PARSE;
        if (s[0] == '-') {
                neg = 1;
                i   = 1;
        }
        if (i == len || (s[i] == '0' && (len - i > 1 || neg)))
                return KP_ERR_PARSE;
        for (; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return KP_ERR_PARSE;
                unsigned d = (unsigned)(s[i] - '0');
                if (u > (max + (unsigned)neg - d) / 10)
                        return KP_ERR_PARSE;
                u = u * 10 + d;
        }
        *out = neg ? (kp_i128_t)((unsigned __int128)0 - u) : (kp_i128_t)u;
        return KP_OK;
}

int kp_currency_valid(const char *s) {
        if (!s)
                return 0;
        for (int i = 0; i < 3; i++)
                if (s[i] < 'A' || s[i] > 'Z')
                        return 0;
        return s[3] == '\0';
}

void kp_money_init(kp_money_t *m) {
        memset(m, 0, sizeof(*m));
}

void kp_money_clear(kp_money_t *m) {
        if (!m)
                return;
        kp_free(m->e);
        kp_money_init(m);
}

void kp_money_copy(kp_money_t *dst, const kp_money_t *src) {
        if (dst == src)
                return;
        kp_money_clear(dst);
        if (!src->cnt)
                return;
        dst->e = kp_malloc(src->cnt * sizeof(*dst->e));
        memcpy(dst->e, src->e, src->cnt * sizeof(*dst->e));
        dst->cnt = dst->cap = src->cnt;
}

/* The index of @p currency in @p m, or where it would go (*foundp = 0). */
static size_t find(const kp_money_t *m, const char *currency, int *foundp) {
        size_t lo = 0, hi = m->cnt;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c      = strcmp(m->e[mid].currency, currency);
                if (c == 0) {
                        *foundp = 1;
                        return mid;
                }
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        *foundp = 0;
        return lo;
}

kp_i128_t kp_money_get(const kp_money_t *m, const char *currency) {
        int found;
        size_t i = find(m, currency, &found);
        return found ? m->e[i].amount : 0;
}

int kp_money_has(const kp_money_t *m, const char *currency) {
        int found;
        (void)find(m, currency, &found);
        return found;
}

/* The entry of @p currency, added (at 0) when missing. */
static kp_money_entry_t *entry(kp_money_t *m, const char *currency) {
        int found;
        size_t i = find(m, currency, &found);
        if (found)
                return &m->e[i];
        if (m->cnt == m->cap) {
                m->cap = m->cap ? m->cap * 2 : 2;
                m->e   = kp_realloc(m->e, m->cap * sizeof(*m->e));
        }
        memmove(&m->e[i + 1], &m->e[i], (m->cnt - i) * sizeof(*m->e));
        m->cnt++;
        memset(&m->e[i], 0, sizeof(m->e[i]));
        memcpy(m->e[i].currency, currency, KP_CURRENCY_SIZE);
        return &m->e[i];
}

kp_err_t kp_money_set(kp_money_t *m, const char *currency, kp_i128_t amount) {
        if (!kp_currency_valid(currency))
                return KP_ERR_INVALID_ARG;
        entry(m, currency)->amount = amount;
        return KP_OK;
}

kp_err_t kp_money_add(kp_money_t *m, const char *currency, kp_i128_t delta) {
        kp_i128_t sum;
        if (!kp_currency_valid(currency))
                return KP_ERR_INVALID_ARG;
        if (__builtin_add_overflow(kp_money_get(m, currency), delta, &sum))
                return KP_ERR_OVERFLOW;
        entry(m, currency)->amount = sum;
        return KP_OK;
}

kp_err_t kp_money_add_all(kp_money_t *dst, const kp_money_t *src) {
        kp_i128_t sum;
        /* Check every sum first, so that a failure changes nothing. */
        for (size_t i = 0; i < src->cnt; i++)
                if (__builtin_add_overflow(
                        kp_money_get(dst, src->e[i].currency), src->e[i].amount,
                        &sum))
                        return KP_ERR_OVERFLOW;
        for (size_t i = 0; i < src->cnt; i++)
                entry(dst, src->e[i].currency)->amount += src->e[i].amount;
        return KP_OK;
}

int kp_money_is_zero(const kp_money_t *m) {
        for (size_t i = 0; i < m->cnt; i++)
                if (m->e[i].amount != 0)
                        return 0;
        return 1;
}

/* 1 if every non-zero entry of @p a is in @p b with the same amount. */
static int covered(const kp_money_t *a, const kp_money_t *b) {
        for (size_t i = 0; i < a->cnt; i++)
                if (a->e[i].amount != kp_money_get(b, a->e[i].currency))
                        return 0;
        return 1;
}

int kp_money_equal(const kp_money_t *a, const kp_money_t *b) {
        return covered(a, b) && covered(b, a);
}

json_t *kp_money_to_json(const kp_money_t *m, kp_money_json_t how) {
        json_t *o = json_object();
        char buf[KP_I128_DEC_SIZE];
        if (!o)
                goto oom;
        for (size_t i = 0; i < m->cnt; i++) {
                kp_i128_t v = m->e[i].amount;
                json_t *jv;
                if (how == KP_MONEY_JSON_INT64) {
                        if (v < INT64_MIN || v > INT64_MAX) {
                                KP_FATAL("%s amount outside int64",
                                         m->e[i].currency);
                                abort();
                        }
                        jv = json_integer((json_int_t)v);
                } else {
                        size_t n = kp_i128_format(v, buf);
                        jv       = json_stringn(buf, n);
                }
                if (!jv || json_object_set_new(o, m->e[i].currency, jv))
                        goto oom;
        }
        return o;
oom:
        KP_FATAL("out of memory building JSON");
        abort();
}

kp_err_t kp_money_from_json(const json_t *o, kp_money_json_t how,
                            kp_money_t *m) {
        kp_money_t n;
        const char *k;
        json_t *v;
        kp_i128_t amount;
        if (!json_is_object(o))
                return KP_ERR_PARSE;
        kp_money_init(&n);
        json_object_foreach((json_t *)o, k, v) {
                if (!kp_currency_valid(k))
                        goto bad;
                if (how == KP_MONEY_JSON_INT64) {
                        if (!json_is_integer(v))
                                goto bad;
                        amount = json_integer_value(v);
                } else if (!json_is_string(v) ||
                           kp_i128_parse(json_string_value(v),
                                         json_string_length(v), &amount)) {
                        goto bad;
                }
                entry(&n, k)->amount = amount;
        }
        kp_money_clear(m);
        *m = n;
        return KP_OK;
bad:
        kp_money_clear(&n);
        return KP_ERR_PARSE;
}

kp_err_t kp_money_from_json_field(const json_t *root, const char *name,
                                  const char *legacy_name, kp_money_t *m) {
        const json_t *v = json_object_get(root, name);
        if (v)
                return kp_money_from_json(v, KP_MONEY_JSON_STRING, m);
        v = json_object_get(root, legacy_name);
        if (!json_is_integer(v))
                return KP_ERR_PARSE;
        kp_money_clear(m);
        if (json_integer_value(v) != 0)
                (void)kp_money_set(m, KP_MONEY_LEGACY_CURRENCY,
                                   json_integer_value(v));
        return KP_OK;
}
