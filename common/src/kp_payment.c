/**
 * @file kp_payment.c
 * @brief The Payment event and account commands: parse, validate, serialize
 *        (kp_payment.h, docs/events.md).
 *
 * A JSON null is treated everywhere as if the field were absent: a required
 * field that is null is KP_PAY_E_MISSING_FIELD (KP_PAY_E_NO_VERSION for v),
 * an optional one takes its default.
 */
#include "kpay/kp_payment.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kpay/kp_buf.h"
#include "kpay/kp_jscan.h"
#include "kpay/kp_mem.h"

/* jansson flags for every input: duplicate keys are broken input; any JSON
 * value is decoded so that "[1]" is KP_PAY_E_NOT_OBJECT rather than
 * KP_PAY_E_NOT_JSON; NUL characters are decoded so that they can be
 * reported as a wrong type for the field that holds them. */
#define KP__PAY_LOAD_FLAGS                                                     \
        (JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL)

/* A string longer than this many times its limit is KP_PAY_E_TOO_LONG. */
#define KP__PAY_TOO_LONG_FACTOR 4

static const char *const kp__pay_state_names[] = {
    "INCOMING",  "DEBIT",    "CREDIT", "COMPLETE",
    "CONFIRMED", "REJECTED", "REFUND",
};

#define KP__PAY_STATE_CNT                                                      \
        (sizeof(kp__pay_state_names) / sizeof(kp__pay_state_names[0]))

/* The fields of a Payment, in serialization order; any other top-level key
 * is kept in `extra`. */
static const char *const kp__pay_known_fields[] = {
    "v",          "id",          "from",        "to",
    "amount",     "currency",    "state",       "reason",
    "created_ms", "inflight_ms", "complete_ms", "origin_partition",
    "debit_ms",   "credit_ms",
};

/* Their indices. */
enum {
        KP__PF_V,
        KP__PF_ID,
        KP__PF_FROM,
        KP__PF_TO,
        KP__PF_AMOUNT,
        KP__PF_CURRENCY,
        KP__PF_STATE,
        KP__PF_REASON,
        KP__PF_CREATED,
        KP__PF_INFLIGHT,
        KP__PF_COMPLETE,
        KP__PF_ORIGIN,
        KP__PF_DEBIT,
        KP__PF_CREDIT,
        KP__PF_CNT,
};
_Static_assert(sizeof(kp__pay_known_fields) / sizeof(kp__pay_known_fields[0]) ==
                   KP__PF_CNT,
               "a name for every field index");

const char *kp_pay_err2code(kp_pay_err_t err) {
        switch (err) {
#define KP__PAY_CODE(name, code, desc)                                         \
        case KP_PAY_E_##name:                                                  \
                return code;
                KP_PAY_ERR_TABLE(KP__PAY_CODE)
#undef KP__PAY_CODE
        }
        return "unknown";
}

const char *kp_pay_err2str(kp_pay_err_t err) {
        switch (err) {
#define KP__PAY_DESC(name, code, desc)                                         \
        case KP_PAY_E_##name:                                                  \
                return desc;
                KP_PAY_ERR_TABLE(KP__PAY_DESC)
#undef KP__PAY_DESC
        }
        return "unknown error";
}

/* The wire codes of the reasons, indexed by kp_reason_t. */
static const char *const kp__reason_codes[KP_REASON__CNT] = {
    [KP_REASON_NONE] = "",
#define KP__REASON_CODE(name, code, desc) [KP_REASON_##name] = code,
    KP_REASON_TABLE(KP__REASON_CODE)
#undef KP__REASON_CODE
        [KP_REASON_OTHER] = "other",
};

const char *kp_reason2str(kp_reason_t reason) {
        if ((unsigned)reason < KP_REASON__CNT)
                return kp__reason_codes[reason];
        return kp__reason_codes[KP_REASON_OTHER];
}

kp_reason_t kp_reason_from_str(const char *code) {
        if (!code || !code[0])
                return KP_REASON_NONE;
        for (int r = KP_REASON_NONE + 1; r < KP_REASON_OTHER; r++)
                if (!strcmp(code, kp__reason_codes[r]))
                        return (kp_reason_t)r;
        return KP_REASON_OTHER;
}

const char *kp_pay_state2str(kp_pay_state_t state) {
        if ((unsigned)state < KP__PAY_STATE_CNT)
                return kp__pay_state_names[state];
        return "UNKNOWN";
}

/* jansson reports out-of-memory as a NULL or -1 return; like kp_malloc(),
 * kpay aborts then rather than carrying OOM branches. */
static void kp__pay_oom(const char *what) {
        fprintf(stderr, "kpay: out of memory (jansson %s)\n", what);
        abort();
}

static void kp__detail(char *detail, size_t detail_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void kp__detail(char *detail, size_t detail_size, const char *fmt, ...) {
        va_list ap;
        if (!detail || detail_size == 0)
                return;
        va_start(ap, fmt);
        vsnprintf(detail, detail_size, fmt, ap);
        va_end(ap);
}

/* Loads @p buf as any JSON value; on failure fills @p detail with jansson's
 * message. */
static json_t *kp__pay_load(const void *buf, size_t len, char *detail,
                            size_t detail_size) {
        json_error_t jerr;
        json_t *root;
        if (!buf) {
                kp__detail(detail, detail_size, "no input");
                return NULL;
        }
        root = json_loadb((const char *)buf, len, KP__PAY_LOAD_FLAGS, &jerr);
        if (!root)
                kp__detail(detail, detail_size, "%s (byte %d)", jerr.text,
                           jerr.position);
        return root;
}

/* A field's value as the parse found it: from jansson or from kp_jscan. */
typedef enum kp__fvt_e {
        KP__FV_ABSENT,
        KP__FV_NULL,
        KP__FV_STRING, /* s, len (may hold NUL bytes from jansson) */
        KP__FV_INT,    /* i */
        KP__FV_REAL,
        KP__FV_OTHER, /* true, false, an array or an object */
} kp__fvt_t;

typedef struct kp__fv_s {
        kp__fvt_t t;
        const char *s;
        size_t len;
        int64_t i;
} kp__fv_t;

/* The member @p name of the jansson object @p obj as a kp__fv_t (its string
 * lives as long as @p obj). */
static kp__fv_t kp__jfv(json_t *obj, const char *name) {
        json_t *val = json_object_get(obj, name);
        kp__fv_t fv = {KP__FV_ABSENT, NULL, 0, 0};
        if (!val)
                return fv;
        if (json_is_null(val)) {
                fv.t = KP__FV_NULL;
        } else if (json_is_string(val)) {
                fv.t   = KP__FV_STRING;
                fv.s   = json_string_value(val);
                fv.len = json_string_length(val);
        } else if (json_is_integer(val)) {
                fv.t = KP__FV_INT;
                fv.i = (int64_t)json_integer_value(val);
        } else if (json_is_real(val)) {
                fv.t = KP__FV_REAL;
        } else {
                fv.t = KP__FV_OTHER;
        }
        return fv;
}

/**
 * Copies the string field @p v (named @p name) into @p dst (room for
 * limit + 2 bytes). Absent or null: KP_PAY_E_MISSING_FIELD if @p required,
 * else @p dst is left alone. Strings over limit + 1 bytes are cut to
 * limit + 1 bytes so that validation sees them as too long; should the cut
 * fall inside a UTF-8 sequence, the partial sequence is replaced by '?' so
 * that the copy stays valid UTF-8 and keeps its length.
 */
static kp_pay_err_t kp__get_str(kp__fv_t v, const char *name, char *dst,
                                size_t limit, int required, char *detail,
                                size_t detail_size) {
        const char *s;
        size_t len, n;
        if (v.t == KP__FV_ABSENT || v.t == KP__FV_NULL) {
                if (!required)
                        return KP_PAY_E_OK;
                kp__detail(detail, detail_size, "missing field '%s'", name);
                return KP_PAY_E_MISSING_FIELD;
        }
        if (v.t != KP__FV_STRING) {
                kp__detail(detail, detail_size, "field '%s' must be a string",
                           name);
                return KP_PAY_E_WRONG_TYPE;
        }
        s   = v.s;
        len = v.len;
        if (memchr(s, '\0', len)) {
                kp__detail(detail, detail_size,
                           "field '%s' contains a NUL character", name);
                return KP_PAY_E_WRONG_TYPE;
        }
        if (len > KP__PAY_TOO_LONG_FACTOR * limit) {
                kp__detail(detail, detail_size,
                           "field '%s' is %zu bytes long (limit %zu)", name,
                           len, limit);
                return KP_PAY_E_TOO_LONG;
        }
        n = len;
        if (n > limit + 1) {
                size_t keep = limit + 1;
                /* Back off to the start of a UTF-8 sequence cut in two. */
                while (keep > 0 && ((unsigned char)s[keep] & 0xc0) == 0x80)
                        keep--;
                memcpy(dst, s, keep);
                memset(dst + keep, '?', limit + 1 - keep);
                n = limit + 1;
        } else {
                memcpy(dst, s, n);
        }
        dst[n] = '\0';
        return KP_PAY_E_OK;
}

/* Reads the integer field @p v (named @p name); absent or null leaves
 * @p out alone and sets *@p present to 0. */
static kp_pay_err_t kp__get_int(kp__fv_t v, const char *name, int64_t *out,
                                int *present, char *detail,
                                size_t detail_size) {
        *present = 0;
        if (v.t == KP__FV_ABSENT || v.t == KP__FV_NULL)
                return KP_PAY_E_OK;
        if (v.t != KP__FV_INT) {
                kp__detail(detail, detail_size, "field '%s' must be an integer",
                           name);
                return KP_PAY_E_WRONG_TYPE;
        }
        *out     = v.i;
        *present = 1;
        return KP_PAY_E_OK;
}

/* Checks v: present, an integer, equal to KP_PAYMENT_VERSION. */
static kp_pay_err_t kp__get_version(kp__fv_t v, int *vp, char *detail,
                                    size_t detail_size) {
        if (v.t == KP__FV_ABSENT || v.t == KP__FV_NULL) {
                kp__detail(detail, detail_size, "missing field 'v'");
                return KP_PAY_E_NO_VERSION;
        }
        if (v.t != KP__FV_INT) {
                kp__detail(detail, detail_size, "field 'v' must be an integer");
                return KP_PAY_E_NO_VERSION;
        }
        if (v.i != KP_PAYMENT_VERSION) {
                kp__detail(detail, detail_size,
                           "schema version %lld (this daemon knows %d)",
                           (long long)v.i, KP_PAYMENT_VERSION);
                return KP_PAY_E_UNKNOWN_VERSION;
        }
        *vp = KP_PAYMENT_VERSION;
        return KP_PAY_E_OK;
}

/* The index of @p key (@p klen bytes) in kp__pay_known_fields, or -1. */
static int kp__pay_field_idx(const char *key, size_t klen) {
        for (int i = 0; i < KP__PF_CNT; i++) {
                const char *name = kp__pay_known_fields[i];
                if (key[0] == name[0] && strlen(name) == klen &&
                    !memcmp(key, name, klen))
                        return i;
        }
        return -1;
}

static int kp__pay_is_known(const char *key) {
        return kp__pay_field_idx(key, strlen(key)) >= 0;
}

static void kp__pay_init(kp_payment_t *p) {
        memset(p, 0, sizeof(*p));
        p->v = KP_PAYMENT_VERSION;
        memcpy(p->currency, "USD", 4);
        p->state            = KP_PAY_STATE_UNKNOWN;
        p->created_ms       = 0;
        p->inflight_ms      = -1;
        p->complete_ms      = -1;
        p->origin_partition = -1;
        p->debit_ms         = -1;
        p->credit_ms        = -1;
        p->extra            = NULL;
}

/* Fills @p p from the known fields @p f (indexed by kp__pay_known_fields),
 * whichever parse found them. */
static kp_pay_err_t kp__pay_from_fields(const kp__fv_t *f, kp_payment_t *p,
                                        char *detail, size_t detail_size) {
        kp_pay_err_t err;
        int present;
        int64_t num;

        if ((err = kp__get_version(f[KP__PF_V], &p->v, detail, detail_size)))
                return err;

        if ((err = kp__get_str(f[KP__PF_ID], "id", p->id, KP_PAYMENT_ID_MAX, 1,
                               detail, detail_size)) ||
            (err = kp__get_str(f[KP__PF_FROM], "from", p->from,
                               KP_ACCOUNT_FIELD_MAX, 1, detail, detail_size)) ||
            (err = kp__get_str(f[KP__PF_TO], "to", p->to, KP_ACCOUNT_FIELD_MAX,
                               1, detail, detail_size)))
                return err;

        switch (f[KP__PF_AMOUNT].t) {
        case KP__FV_ABSENT:
        case KP__FV_NULL:
                kp__detail(detail, detail_size, "missing field 'amount'");
                return KP_PAY_E_MISSING_FIELD;
        case KP__FV_INT:
                p->amount = f[KP__PF_AMOUNT].i;
                break;
        default:
                kp__detail(detail, detail_size,
                           "field 'amount' must be an integer number of minor "
                           "units (got %s)",
                           f[KP__PF_AMOUNT].t == KP__FV_REAL ? "a real number"
                           : f[KP__PF_AMOUNT].t == KP__FV_STRING
                               ? "a string"
                               : "another JSON type");
                return KP_PAY_E_AMOUNT_NOT_INTEGER;
        }

        if ((err =
                 kp__get_str(f[KP__PF_CURRENCY], "currency", p->currency,
                             KP_PAYMENT_CURRENCY_MAX, 0, detail, detail_size)))
                return err;

        switch (f[KP__PF_STATE].t) {
        case KP__FV_ABSENT:
        case KP__FV_NULL:
                kp__detail(detail, detail_size, "missing field 'state'");
                return KP_PAY_E_MISSING_FIELD;
        case KP__FV_STRING: {
                const char *s = f[KP__PF_STATE].s;
                size_t len    = f[KP__PF_STATE].len;
                if (memchr(s, '\0', len)) {
                        kp__detail(detail, detail_size,
                                   "field 'state' contains a NUL character");
                        return KP_PAY_E_WRONG_TYPE;
                }
                p->state = KP_PAY_STATE_UNKNOWN;
                for (size_t i = 0; i < KP__PAY_STATE_CNT; i++)
                        if (strlen(kp__pay_state_names[i]) == len &&
                            !memcmp(s, kp__pay_state_names[i], len))
                                p->state = (kp_pay_state_t)i;
                break;
        }
        default:
                kp__detail(detail, detail_size,
                           "field 'state' must be a string");
                return KP_PAY_E_WRONG_TYPE;
        }

        if ((err = kp__get_str(f[KP__PF_REASON], "reason", p->reason,
                               KP_PAYMENT_REASON_MAX, 0, detail, detail_size)))
                return err;

        if ((err = kp__get_int(f[KP__PF_CREATED], "created_ms", &p->created_ms,
                               &present, detail, detail_size)) ||
            (err =
                 kp__get_int(f[KP__PF_INFLIGHT], "inflight_ms", &p->inflight_ms,
                             &present, detail, detail_size)) ||
            (err =
                 kp__get_int(f[KP__PF_COMPLETE], "complete_ms", &p->complete_ms,
                             &present, detail, detail_size)) ||
            (err = kp__get_int(f[KP__PF_DEBIT], "debit_ms", &p->debit_ms,
                               &present, detail, detail_size)) ||
            (err = kp__get_int(f[KP__PF_CREDIT], "credit_ms", &p->credit_ms,
                               &present, detail, detail_size)))
                return err;

        if ((err = kp__get_int(f[KP__PF_ORIGIN], "origin_partition", &num,
                               &present, detail, detail_size)))
                return err;
        if (present) {
                if (num < 0 || num > INT32_MAX) {
                        kp__detail(detail, detail_size,
                                   "field 'origin_partition' out of range "
                                   "(%lld)",
                                   (long long)num);
                        return KP_PAY_E_WRONG_TYPE;
                }
                p->origin_partition = (int32_t)num;
        }
        return KP_PAY_E_OK;
}

/* Fills @p p from the object @p root (p->extra is set only on success). */
static kp_pay_err_t kp__pay_from_json(json_t *root, kp_payment_t *p,
                                      char *detail, size_t detail_size) {
        kp__fv_t f[KP__PF_CNT];
        kp_pay_err_t err;
        const char *key;
        json_t *val;

        for (int i = 0; i < KP__PF_CNT; i++)
                f[i] = kp__jfv(root, kp__pay_known_fields[i]);
        if ((err = kp__pay_from_fields(f, p, detail, detail_size)))
                return err;
        json_object_foreach(root, key, val) {
                if (kp__pay_is_known(key))
                        continue;
                if (!p->extra && !(p->extra = json_object()))
                        kp__pay_oom("object");
                if (json_object_set(p->extra, key, val) == -1)
                        kp__pay_oom("object set");
        }
        return KP_PAY_E_OK;
}

/* The fast path: reads the known fields of a simple record (kp_jscan.h)
 * into @p f. 0, or -1 when the record needs jansson: it is not simple,
 * repeats a key, or has a key kpay does not know (kept in `extra`). */
static int kp__pay_scan(const void *buf, size_t len, kp__fv_t *f) {
        kp_jscan_t js;
        kp_jscan_member_t m;
        kp_jscan_res_t res;
        for (int i = 0; i < KP__PF_CNT; i++)
                f[i] = (kp__fv_t){KP__FV_ABSENT, NULL, 0, 0};
        if (kp_jscan_begin(&js, buf, len))
                return -1;
        while ((res = kp_jscan_next(&js, &m)) == KP_JSCAN_MEMBER) {
                int idx = kp__pay_field_idx(m.key, m.klen);
                if (idx < 0 || f[idx].t != KP__FV_ABSENT)
                        return -1;
                switch (m.type) {
                case KP_JSCAN_NULL:
                        f[idx].t = KP__FV_NULL;
                        break;
                case KP_JSCAN_TRUE:
                case KP_JSCAN_FALSE:
                        f[idx].t = KP__FV_OTHER;
                        break;
                case KP_JSCAN_STRING:
                        f[idx] = (kp__fv_t){KP__FV_STRING, m.s, m.len, 0};
                        break;
                case KP_JSCAN_INT:
                        f[idx] = (kp__fv_t){KP__FV_INT, NULL, 0, m.i};
                        break;
                case KP_JSCAN_OBJECT:
                        return -1;
                }
        }
        return res == KP_JSCAN_END ? 0 : -1;
}

kp_pay_err_t kp_payment_parse(const void *buf, size_t len, kp_payment_t *p,
                              char *detail, size_t detail_size) {
        kp__fv_t f[KP__PF_CNT];
        kp_pay_err_t err;
        json_t *root;

        kp__pay_init(p);
        kp__detail(detail, detail_size, "%s", "");
        if (kp__pay_scan(buf, len, f) == 0)
                return kp__pay_from_fields(f, p, detail, detail_size);
        if (!(root = kp__pay_load(buf, len, detail, detail_size)))
                return KP_PAY_E_NOT_JSON;
        if (!json_is_object(root)) {
                kp__detail(detail, detail_size, "the record is not an object");
                json_decref(root);
                return KP_PAY_E_NOT_OBJECT;
        }
        err = kp__pay_from_json(root, p, detail, detail_size);
        json_decref(root);
        if (err) {
                json_decref(p->extra);
                p->extra = NULL;
        }
        return err;
}

/* 1 if @p s is 1..KP_ACCOUNT_ID_MAX of [A-Za-z0-9._:-]. */
static int kp__account_chars_valid(const char *s) {
        size_t n = 0;
        for (; *s; s++, n++) {
                char c = *s;
                if (n >= KP_ACCOUNT_ID_MAX)
                        return 0;
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                      c == ':' || c == '-'))
                        return 0;
        }
        return n > 0;
}

int kp_account_id_valid(const char *account) {
        if (!account)
                return 0;
        if (account[0] == '@')
                account++;
        return kp__account_chars_valid(account);
}

int kp_account_is_system(const char *account) {
        return account && account[0] == '@';
}

int kp_payment_id_valid(const char *id) {
        size_t n = 0;
        if (!id)
                return 0;
        for (; id[n]; n++) {
                unsigned char c = (unsigned char)id[n];
                if (n >= KP_PAYMENT_ID_MAX || c < 0x20 || c > 0x7e)
                        return 0;
        }
        return n > 0;
}

kp_reason_t kp_payment_validate(const kp_payment_t *p) {
        const char *c = p->currency;
        if (!kp_payment_id_valid(p->id))
                return KP_REASON_INVALID_ID;
        if (!kp_account_id_valid(p->from) || !kp_account_id_valid(p->to))
                return KP_REASON_INVALID_ACCOUNT;
        if (!strcmp(p->from, p->to))
                return KP_REASON_SAME_ACCOUNT;
        if (p->amount <= 0)
                return KP_REASON_INVALID_AMOUNT;
        if (strlen(c) != 3 || c[0] < 'A' || c[0] > 'Z' || c[1] < 'A' ||
            c[1] > 'Z' || c[2] < 'A' || c[2] > 'Z')
                return KP_REASON_INVALID_CURRENCY;
        return KP_REASON_NONE;
}

/* 1 if @p s is valid UTF-8 as jansson checks it (no overlong forms, no
 * surrogates, nothing above U+10FFFF). */
static int kp__utf8_valid(const unsigned char *s) {
        while (*s) {
                unsigned c = *s++;
                int n;
                uint32_t cp, min;
                if (c < 0x80)
                        continue;
                if (c >= 0xc2 && c <= 0xdf) {
                        n = 1, cp = c & 0x1f, min = 0x80;
                } else if (c >= 0xe0 && c <= 0xef) {
                        n = 2, cp = c & 0x0f, min = 0x800;
                } else if (c >= 0xf0 && c <= 0xf4) {
                        n = 3, cp = c & 0x07, min = 0x10000;
                } else {
                        return 0;
                }
                while (n-- > 0) {
                        if ((*s & 0xc0) != 0x80)
                                return 0; /* also the NUL at the end */
                        cp = (cp << 6) | (*s++ & 0x3f);
                }
                if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                        return 0;
        }
        return 1;
}

/* Appends @p name (a JSON key with its colon, as a literal) and @p s as a
 * JSON string. Strings from kp_payment_parse() are valid UTF-8; for a
 * struct filled by hand that is not, each non-ASCII byte becomes '?'
 * rather than failing the serialization. */
static void kp__w_str(kp_buf_t *b, const char *name, const char *s) {
        const unsigned char *q;
        kp_buf_puts(b, name);
        for (q = (const unsigned char *)s; *q && *q < 0x80; q++)
                ;
        if (!*q || kp__utf8_valid(q)) {
                kp_buf_json_str(b, s);
        } else {
                char *copy = kp_strdup(s);
                for (char *c = copy; *c; c++)
                        if ((unsigned char)*c > 0x7f)
                                *c = '?';
                kp_buf_json_str(b, copy);
                kp_free(copy);
        }
}

/* Appends @p name and @p v, or null for -1. */
static void kp__w_int_or_null(kp_buf_t *b, const char *name, int64_t v) {
        kp_buf_puts(b, name);
        if (v == -1)
                kp_buf_add(b, "null", 4);
        else
                kp_buf_int(b, v);
}

/* Appends the members of the unknown fields @p extra (known names
 * skipped: extra cannot override them), as jansson writes them. */
static void kp__w_extra(kp_buf_t *b, json_t *extra) {
        const size_t flags = JSON_COMPACT | JSON_ENCODE_ANY;
        const char *key;
        json_t *val;
        json_object_foreach(extra, key, val) {
                size_t n;
                if (kp__pay_is_known(key))
                        continue;
                kp_buf_add(b, ",", 1);
                kp_buf_json_str(b, key);
                kp_buf_add(b, ":", 1);
                if ((n = json_dumpb(val, NULL, 0, flags)) == 0)
                        kp__pay_oom("dump");
                kp_buf_reserve(b, n);
                if (json_dumpb(val, b->p + b->len, n, flags) != n)
                        kp__pay_oom("dump");
                b->len += n;
        }
}

/* Every payment is written here, on the hot path: straight into one
 * buffer, with no JSON tree and no printf. */
char *kp_payment_serialize(const kp_payment_t *p, size_t *lenp) {
        kp_buf_t b = {0};
        kp_buf_add(&b, "{\"v\":", 5);
        kp_buf_int(&b, p->v);
        kp__w_str(&b, ",\"id\":", p->id);
        kp__w_str(&b, ",\"from\":", p->from);
        kp__w_str(&b, ",\"to\":", p->to);
        kp_buf_puts(&b, ",\"amount\":");
        kp_buf_int(&b, p->amount);
        kp__w_str(&b, ",\"currency\":", p->currency);
        kp_buf_puts(&b, ",\"state\":\"");
        kp_buf_puts(&b, kp_pay_state2str(p->state));
        kp_buf_puts(&b, "\"");
        if (p->reason[0])
                kp__w_str(&b, ",\"reason\":", p->reason);
        else
                kp_buf_puts(&b, ",\"reason\":null");
        kp_buf_puts(&b, ",\"created_ms\":");
        kp_buf_int(&b, p->created_ms);
        kp__w_int_or_null(&b, ",\"inflight_ms\":", p->inflight_ms);
        kp__w_int_or_null(&b, ",\"complete_ms\":", p->complete_ms);
        kp__w_int_or_null(&b, ",\"origin_partition\":", p->origin_partition);
        /* The stage stamps only when set (positive; a payment built by
         * hand with zeros has none), so that a record that never passed
         * kpay-account is written as before they existed. */
        if (p->debit_ms > 0) {
                kp_buf_puts(&b, ",\"debit_ms\":");
                kp_buf_int(&b, p->debit_ms);
        }
        if (p->credit_ms > 0) {
                kp_buf_puts(&b, ",\"credit_ms\":");
                kp_buf_int(&b, p->credit_ms);
        }
        if (p->extra && json_is_object(p->extra))
                kp__w_extra(&b, p->extra);
        kp_buf_add(&b, "}", 1);
        return kp_buf_take(&b, lenp);
}

void kp_payment_copy(kp_payment_t *dst, const kp_payment_t *src) {
        if (dst == src)
                return;
        memcpy(dst, src, sizeof(*dst));
        if (src->extra && !(dst->extra = json_deep_copy(src->extra)))
                kp__pay_oom("deep copy");
}

void kp_payment_clear(kp_payment_t *p) {
        if (!p)
                return;
        json_decref(p->extra);
        p->extra = NULL;
}

/* 1 if @p needle (nlen bytes) occurs in @p hay (memmem() is a GNU
 * extension). */
static int kp__contains(const char *hay, size_t len, const char *needle,
                        size_t nlen) {
        const char *end = hay + len;
        const char *s   = hay;
        while ((size_t)(end - s) >= nlen &&
               (s = memchr(s, needle[0], (size_t)(end - s) - nlen + 1))) {
                if (!memcmp(s, needle, nlen))
                        return 1;
                s++;
        }
        return 0;
}

int kp_is_account_cmd(const void *buf, size_t len) {
        json_t *root, *val;
        int is_cmd;
        if (!buf || len == 0)
                return 0;
        /* Payments, the hot path, skip the parse: a "command" key is either
         * spelled out or written with escapes (which need a backslash). */
        if (!kp__contains(buf, len, "command", 7) && !memchr(buf, '\\', len))
                return 0;
        if (!(root = kp__pay_load(buf, len, NULL, 0)))
                return 0;
        val    = json_is_object(root) ? json_object_get(root, "command") : NULL;
        is_cmd = val && !json_is_null(val);
        json_decref(root);
        return is_cmd;
}

static kp_pay_err_t kp__cmd_from_json(json_t *root, kp_account_cmd_t *cmd,
                                      char *detail, size_t detail_size) {
        kp_pay_err_t err;
        json_t *val;
        const char *s;
        int present;

        if ((err = kp__get_version(kp__jfv(root, "v"), &cmd->v, detail,
                                   detail_size)))
                return err;

        val = json_object_get(root, "command");
        if (!val || json_is_null(val)) {
                kp__detail(detail, detail_size, "missing field 'command'");
                return KP_PAY_E_MISSING_FIELD;
        }
        if (!json_is_string(val)) {
                kp__detail(detail, detail_size,
                           "field 'command' must be a string");
                return KP_PAY_E_WRONG_TYPE;
        }
        s = json_string_value(val);
        if (json_string_length(val) == 6 && !strcmp(s, "FREEZE")) {
                cmd->command = KP_CMD_FREEZE;
        } else if (json_string_length(val) == 8 && !strcmp(s, "UNFREEZE")) {
                cmd->command = KP_CMD_UNFREEZE;
        } else {
                kp__detail(detail, detail_size,
                           "unknown command (FREEZE or UNFREEZE expected)");
                return KP_PAY_E_WRONG_TYPE;
        }

        if ((err =
                 kp__get_str(kp__jfv(root, "account"), "account", cmd->account,
                             KP_ACCOUNT_FIELD_MAX, 1, detail, detail_size)))
                return err;
        if (!kp_account_id_valid(cmd->account)) {
                kp__detail(detail, detail_size, "invalid account id");
                return KP_PAY_E_WRONG_TYPE;
        }

        if ((err = kp__get_str(kp__jfv(root, "id"), "id", cmd->id,
                               KP_PAYMENT_ID_MAX, 0, detail, detail_size)))
                return err;
        if (cmd->id[0] && !kp_payment_id_valid(cmd->id)) {
                kp__detail(detail, detail_size, "invalid command id");
                return KP_PAY_E_WRONG_TYPE;
        }

        if ((err =
                 kp__get_int(kp__jfv(root, "created_ms"), "created_ms",
                             &cmd->created_ms, &present, detail, detail_size)))
                return err;

        /* The actor labels the audit record: an odd one is cleaned, not a
         * reason to lose the command; only a wrong JSON type is refused. */
        val = json_object_get(root, "actor");
        if (val && !json_is_null(val)) {
                if (!json_is_string(val)) {
                        kp__detail(detail, detail_size,
                                   "field 'actor' must be a string");
                        return KP_PAY_E_WRONG_TYPE;
                }
                kp_audit_actor(cmd->actor, sizeof(cmd->actor),
                               json_string_value(val), "");
        }
        return KP_PAY_E_OK;
}

kp_pay_err_t kp_account_cmd_parse(const void *buf, size_t len,
                                  kp_account_cmd_t *cmd, char *detail,
                                  size_t detail_size) {
        kp_pay_err_t err;
        json_t *root;

        memset(cmd, 0, sizeof(*cmd));
        cmd->v = KP_PAYMENT_VERSION;
        kp__detail(detail, detail_size, "%s", "");
        if (!(root = kp__pay_load(buf, len, detail, detail_size)))
                return KP_PAY_E_NOT_JSON;
        if (!json_is_object(root)) {
                kp__detail(detail, detail_size, "the record is not an object");
                json_decref(root);
                return KP_PAY_E_NOT_OBJECT;
        }
        err = kp__cmd_from_json(root, cmd, detail, detail_size);
        json_decref(root);
        return err;
}

char *kp_account_cmd_serialize(const kp_account_cmd_t *cmd, size_t *lenp) {
        kp_buf_t b = {0};
        kp_buf_add(&b, "{\"v\":", 5);
        kp_buf_int(&b, cmd->v);
        kp_buf_puts(&b, cmd->command == KP_CMD_UNFREEZE
                            ? ",\"command\":\"UNFREEZE\""
                            : ",\"command\":\"FREEZE\"");
        kp__w_str(&b, ",\"account\":", cmd->account);
        if (cmd->id[0])
                kp__w_str(&b, ",\"id\":", cmd->id);
        else
                kp_buf_puts(&b, ",\"id\":null");
        kp_buf_puts(&b, ",\"created_ms\":");
        kp_buf_int(&b, cmd->created_ms);
        if (cmd->actor[0])
                kp__w_str(&b, ",\"actor\":", cmd->actor);
        kp_buf_add(&b, "}", 1);
        return kp_buf_take(&b, lenp);
}
