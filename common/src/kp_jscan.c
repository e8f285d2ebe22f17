/**
 * @file kp_jscan.c
 * @brief The hot path's simple-object reader (kp_jscan.h). Every rule
 *        here is jansson's, narrowed: a byte this reader is unsure of
 *        ends in KP_JSCAN_FALLBACK, never in a different reading.
 */
#include "kpay/kp_jscan.h"

#include <string.h>

/* At most this many digits: 18 always fit an int64_t, so no overflow
 * check is needed (jansson refuses what does not fit; we fall back). */
#define KP__JSCAN_DIGITS_MAX 18

static void kp__jscan_ws(kp_jscan_t *js) {
        while (js->p < js->end && (*js->p == ' ' || *js->p == '\t' ||
                                   *js->p == '\n' || *js->p == '\r'))
                js->p++;
}

/* A string at js->p (its opening quote): printable ASCII other than '"'
 * and '\\' up to the closing quote. */
static int kp__jscan_str(kp_jscan_t *js, const char **sp, size_t *lenp) {
        const char *s = ++js->p;
        while (js->p < js->end) {
                unsigned char c = (unsigned char)*js->p;
                if (c == '"') {
                        *sp   = s;
                        *lenp = (size_t)(js->p - s);
                        js->p++;
                        return 0;
                }
                if (c < 0x20 || c > 0x7e || c == '\\')
                        return -1;
                js->p++;
        }
        return -1;
}

/* An integer at js->p: -?(0|[1-9][0-9]*), no fraction or exponent. */
static int kp__jscan_int(kp_jscan_t *js, int64_t *out) {
        int neg   = 0;
        int64_t v = 0;
        int n     = 0;
        if (*js->p == '-') {
                neg = 1;
                js->p++;
        }
        if (js->p >= js->end || *js->p < '0' || *js->p > '9')
                return -1;
        if (*js->p == '0') {
                js->p++;
        } else {
                while (js->p < js->end && *js->p >= '0' && *js->p <= '9') {
                        if (++n > KP__JSCAN_DIGITS_MAX)
                                return -1;
                        v = v * 10 + (*js->p - '0');
                        js->p++;
                }
        }
        if (js->p < js->end &&
            (*js->p == '.' || *js->p == 'e' || *js->p == 'E' ||
             (*js->p >= '0' && *js->p <= '9')))
                return -1;
        *out = neg ? -v : v;
        return 0;
}

static int kp__jscan_lit(kp_jscan_t *js, const char *lit, size_t n) {
        if ((size_t)(js->end - js->p) < n || memcmp(js->p, lit, n))
                return -1;
        js->p += n;
        return 0;
}

int kp_jscan_begin(kp_jscan_t *js, const void *buf, size_t len) {
        memset(js, 0, sizeof(*js));
        if (!buf)
                return KP_JSCAN_FALLBACK;
        js->p   = (const char *)buf;
        js->end = js->p + len;
        kp__jscan_ws(js);
        if (js->p >= js->end || *js->p != '{')
                return KP_JSCAN_FALLBACK;
        js->p++;
        js->depth = 1;
        js->first = 1;
        return 0;
}

kp_jscan_res_t kp_jscan_next(kp_jscan_t *js, kp_jscan_member_t *m) {
        if (js->depth == 0)
                return KP_JSCAN_END;
        kp__jscan_ws(js);
        if (js->p >= js->end)
                return KP_JSCAN_FALLBACK;
        if (*js->p == '}') {
                js->p++;
                js->first = 0;
                if (--js->depth == 0) {
                        kp__jscan_ws(js);
                        if (js->p != js->end)
                                return KP_JSCAN_FALLBACK;
                }
                return KP_JSCAN_END;
        }
        if (!js->first) {
                if (*js->p != ',')
                        return KP_JSCAN_FALLBACK;
                js->p++;
                kp__jscan_ws(js);
                if (js->p >= js->end)
                        return KP_JSCAN_FALLBACK;
        }
        if (*js->p != '"' || kp__jscan_str(js, &m->key, &m->klen))
                return KP_JSCAN_FALLBACK;
        kp__jscan_ws(js);
        if (js->p >= js->end || *js->p != ':')
                return KP_JSCAN_FALLBACK;
        js->p++;
        kp__jscan_ws(js);
        if (js->p >= js->end)
                return KP_JSCAN_FALLBACK;
        m->depth = js->depth;
        m->s     = NULL;
        m->len   = 0;
        m->i     = 0;
        switch (*js->p) {
        case '"':
                m->type = KP_JSCAN_STRING;
                if (kp__jscan_str(js, &m->s, &m->len))
                        return KP_JSCAN_FALLBACK;
                break;
        case 'n':
                m->type = KP_JSCAN_NULL;
                if (kp__jscan_lit(js, "null", 4))
                        return KP_JSCAN_FALLBACK;
                break;
        case 't':
                m->type = KP_JSCAN_TRUE;
                if (kp__jscan_lit(js, "true", 4))
                        return KP_JSCAN_FALLBACK;
                break;
        case 'f':
                m->type = KP_JSCAN_FALSE;
                if (kp__jscan_lit(js, "false", 5))
                        return KP_JSCAN_FALLBACK;
                break;
        case '{':
                if (js->depth >= KP_JSCAN_DEPTH_MAX)
                        return KP_JSCAN_FALLBACK;
                m->type = KP_JSCAN_OBJECT;
                js->p++;
                js->depth++;
                js->first = 1;
                return KP_JSCAN_MEMBER;
        default:
                m->type = KP_JSCAN_INT;
                if (kp__jscan_int(js, &m->i))
                        return KP_JSCAN_FALLBACK;
                break;
        }
        js->first = 0;
        return KP_JSCAN_MEMBER;
}

int kp_jscan_key_is(const kp_jscan_member_t *m, const char *name) {
        size_t n = strlen(name);
        return m->klen == n && !memcmp(m->key, name, n);
}
