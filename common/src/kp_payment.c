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

static void kp__pay_set_new(json_t *obj, const char *key, json_t *val) {
        if (!val || json_object_set_new(obj, key, val) == -1)
                kp__pay_oom("object set");
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

/**
 * Copies the string field @p name of @p obj into @p dst (room for
 * limit + 2 bytes). Absent or null: KP_PAY_E_MISSING_FIELD if @p required,
 * else @p dst is left alone. Strings over limit + 1 bytes are cut to
 * limit + 1 bytes so that validation sees them as too long; should the cut
 * fall inside a UTF-8 sequence, the partial sequence is replaced by '?' so
 * that the copy stays valid UTF-8 and keeps its length.
 */
static kp_pay_err_t kp__get_str(json_t *obj, const char *name, char *dst,
                                size_t limit, int required, char *detail,
                                size_t detail_size) {
        json_t *val = json_object_get(obj, name);
        const char *s;
        size_t len, n;
        if (!val || json_is_null(val)) {
                if (!required)
                        return KP_PAY_E_OK;
                kp__detail(detail, detail_size, "missing field '%s'", name);
                return KP_PAY_E_MISSING_FIELD;
        }
        if (!json_is_string(val)) {
                kp__detail(detail, detail_size, "field '%s' must be a string",
                           name);
                return KP_PAY_E_WRONG_TYPE;
        }
        s   = json_string_value(val);
        len = json_string_length(val);
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

/* Reads the integer field @p name; absent or null leaves @p out alone and
 * sets *@p present to 0. */
static kp_pay_err_t kp__get_int(json_t *obj, const char *name, int64_t *out,
                                int *present, char *detail,
                                size_t detail_size) {
        json_t *val = json_object_get(obj, name);
        *present    = 0;
        if (!val || json_is_null(val))
                return KP_PAY_E_OK;
        if (!json_is_integer(val)) {
                kp__detail(detail, detail_size, "field '%s' must be an integer",
                           name);
                return KP_PAY_E_WRONG_TYPE;
        }
        *out     = (int64_t)json_integer_value(val);
        *present = 1;
        return KP_PAY_E_OK;
}

/* Checks v: present, an integer, equal to KP_PAYMENT_VERSION. */
static kp_pay_err_t kp__get_version(json_t *obj, int *v, char *detail,
                                    size_t detail_size) {
        json_t *val = json_object_get(obj, "v");
        json_int_t ver;
        if (!val || json_is_null(val)) {
                kp__detail(detail, detail_size, "missing field 'v'");
                return KP_PAY_E_NO_VERSION;
        }
        if (!json_is_integer(val)) {
                kp__detail(detail, detail_size, "field 'v' must be an integer");
                return KP_PAY_E_NO_VERSION;
        }
        ver = json_integer_value(val);
        if (ver != KP_PAYMENT_VERSION) {
                kp__detail(detail, detail_size,
                           "schema version %lld (this daemon knows %d)",
                           (long long)ver, KP_PAYMENT_VERSION);
                return KP_PAY_E_UNKNOWN_VERSION;
        }
        *v = KP_PAYMENT_VERSION;
        return KP_PAY_E_OK;
}

static int kp__pay_is_known(const char *key) {
        size_t i;
        for (i = 0;
             i < sizeof(kp__pay_known_fields) / sizeof(kp__pay_known_fields[0]);
             i++)
                if (!strcmp(key, kp__pay_known_fields[i]))
                        return 1;
        return 0;
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

/* Fills @p p from the object @p root (p->extra is set only on success). */
static kp_pay_err_t kp__pay_from_json(json_t *root, kp_payment_t *p,
                                      char *detail, size_t detail_size) {
        kp_pay_err_t err;
        json_t *val;
        int present;
        int64_t num;
        const char *key;

        if ((err = kp__get_version(root, &p->v, detail, detail_size)))
                return err;

        if ((err = kp__get_str(root, "id", p->id, KP_PAYMENT_ID_MAX, 1, detail,
                               detail_size)) ||
            (err = kp__get_str(root, "from", p->from, KP_ACCOUNT_FIELD_MAX, 1,
                               detail, detail_size)) ||
            (err = kp__get_str(root, "to", p->to, KP_ACCOUNT_FIELD_MAX, 1,
                               detail, detail_size)))
                return err;

        val = json_object_get(root, "amount");
        if (!val || json_is_null(val)) {
                kp__detail(detail, detail_size, "missing field 'amount'");
                return KP_PAY_E_MISSING_FIELD;
        }
        if (!json_is_integer(val)) {
                kp__detail(detail, detail_size,
                           "field 'amount' must be an integer number of minor "
                           "units (got %s)",
                           json_is_real(val)     ? "a real number"
                           : json_is_string(val) ? "a string"
                                                 : "another JSON type");
                return KP_PAY_E_AMOUNT_NOT_INTEGER;
        }
        p->amount = (int64_t)json_integer_value(val);

        if ((err =
                 kp__get_str(root, "currency", p->currency,
                             KP_PAYMENT_CURRENCY_MAX, 0, detail, detail_size)))
                return err;

        val = json_object_get(root, "state");
        if (!val || json_is_null(val)) {
                kp__detail(detail, detail_size, "missing field 'state'");
                return KP_PAY_E_MISSING_FIELD;
        }
        if (!json_is_string(val)) {
                kp__detail(detail, detail_size,
                           "field 'state' must be a string");
                return KP_PAY_E_WRONG_TYPE;
        } else {
                const char *s = json_string_value(val);
                size_t len    = json_string_length(val);
                size_t i;
                if (memchr(s, '\0', len)) {
                        kp__detail(detail, detail_size,
                                   "field 'state' contains a NUL character");
                        return KP_PAY_E_WRONG_TYPE;
                }
                p->state = KP_PAY_STATE_UNKNOWN;
                for (i = 0; i < KP__PAY_STATE_CNT; i++)
                        if (!strcmp(s, kp__pay_state_names[i]))
                                p->state = (kp_pay_state_t)i;
        }

        if ((err = kp__get_str(root, "reason", p->reason, KP_PAYMENT_REASON_MAX,
                               0, detail, detail_size)))
                return err;

        if ((err = kp__get_int(root, "created_ms", &p->created_ms, &present,
                               detail, detail_size)) ||
            (err = kp__get_int(root, "inflight_ms", &p->inflight_ms, &present,
                               detail, detail_size)) ||
            (err = kp__get_int(root, "complete_ms", &p->complete_ms, &present,
                               detail, detail_size)) ||
            (err = kp__get_int(root, "debit_ms", &p->debit_ms, &present, detail,
                               detail_size)) ||
            (err = kp__get_int(root, "credit_ms", &p->credit_ms, &present,
                               detail, detail_size)))
                return err;

        if ((err = kp__get_int(root, "origin_partition", &num, &present, detail,
                               detail_size)))
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

kp_pay_err_t kp_payment_parse(const void *buf, size_t len, kp_payment_t *p,
                              char *detail, size_t detail_size) {
        kp_pay_err_t err;
        json_t *root;

        kp__pay_init(p);
        kp__detail(detail, detail_size, "%s", "");
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

/* A JSON string for @p s. Strings from kp_payment_parse() are valid UTF-8;
 * for a struct filled by hand that is not, each non-ASCII byte becomes '?'
 * rather than failing the serialization. */
static json_t *kp__jstr(const char *s) {
        json_t *val = json_string(s);
        if (!val) {
                char *copy = kp_strdup(s);
                char *q;
                for (q = copy; *q; q++)
                        if ((unsigned char)*q > 0x7f)
                                *q = '?';
                val = json_string(copy);
                kp_free(copy);
                if (!val)
                        kp__pay_oom("string");
        }
        return val;
}

static json_t *kp__jint_or_null(int64_t v) {
        return v == -1 ? json_null() : json_integer((json_int_t)v);
}

/* Dumps @p root compactly into a kp_malloc()ed string. Takes @p root. */
static char *kp__pay_dump(json_t *root, size_t *lenp) {
        const size_t flags = JSON_COMPACT | JSON_PRESERVE_ORDER;
        size_t size        = json_dumpb(root, NULL, 0, flags);
        char *out;
        if (size == 0)
                kp__pay_oom("dump");
        out = kp_malloc(size + 1);
        if (json_dumpb(root, out, size, flags) != size)
                kp__pay_oom("dump");
        out[size] = '\0';
        json_decref(root);
        if (lenp)
                *lenp = size;
        return out;
}

char *kp_payment_serialize(const kp_payment_t *p, size_t *lenp) {
        json_t *root = json_object();
        const char *key;
        json_t *val;
        if (!root)
                kp__pay_oom("object");
        kp__pay_set_new(root, "v", json_integer(p->v));
        kp__pay_set_new(root, "id", kp__jstr(p->id));
        kp__pay_set_new(root, "from", kp__jstr(p->from));
        kp__pay_set_new(root, "to", kp__jstr(p->to));
        kp__pay_set_new(root, "amount", json_integer((json_int_t)p->amount));
        kp__pay_set_new(root, "currency", kp__jstr(p->currency));
        kp__pay_set_new(root, "state", json_string(kp_pay_state2str(p->state)));
        kp__pay_set_new(root, "reason",
                        p->reason[0] ? kp__jstr(p->reason) : json_null());
        kp__pay_set_new(root, "created_ms",
                        json_integer((json_int_t)p->created_ms));
        kp__pay_set_new(root, "inflight_ms", kp__jint_or_null(p->inflight_ms));
        kp__pay_set_new(root, "complete_ms", kp__jint_or_null(p->complete_ms));
        kp__pay_set_new(root, "origin_partition",
                        kp__jint_or_null(p->origin_partition));
        /* The stage stamps only when set (positive; a payment built by
         * hand with zeros has none), so that a record that never passed
         * kpay-account is written as before they existed. */
        if (p->debit_ms > 0)
                kp__pay_set_new(root, "debit_ms",
                                json_integer((json_int_t)p->debit_ms));
        if (p->credit_ms > 0)
                kp__pay_set_new(root, "credit_ms",
                                json_integer((json_int_t)p->credit_ms));
        if (p->extra && json_is_object(p->extra)) {
                json_object_foreach(p->extra, key, val) {
                        /* A known field cannot be overridden by extra. */
                        if (kp__pay_is_known(key))
                                continue;
                        if (json_object_set(root, key, val) == -1)
                                kp__pay_oom("object set");
                }
        }
        return kp__pay_dump(root, lenp);
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

        if ((err = kp__get_version(root, &cmd->v, detail, detail_size)))
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

        if ((err = kp__get_str(root, "account", cmd->account,
                               KP_ACCOUNT_FIELD_MAX, 1, detail, detail_size)))
                return err;
        if (!kp_account_id_valid(cmd->account)) {
                kp__detail(detail, detail_size, "invalid account id");
                return KP_PAY_E_WRONG_TYPE;
        }

        if ((err = kp__get_str(root, "id", cmd->id, KP_PAYMENT_ID_MAX, 0,
                               detail, detail_size)))
                return err;
        if (cmd->id[0] && !kp_payment_id_valid(cmd->id)) {
                kp__detail(detail, detail_size, "invalid command id");
                return KP_PAY_E_WRONG_TYPE;
        }

        if ((err = kp__get_int(root, "created_ms", &cmd->created_ms, &present,
                               detail, detail_size)))
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
        json_t *root = json_object();
        if (!root)
                kp__pay_oom("object");
        kp__pay_set_new(root, "v", json_integer(cmd->v));
        kp__pay_set_new(
            root, "command",
            json_string(cmd->command == KP_CMD_UNFREEZE ? "UNFREEZE"
                                                        : "FREEZE"));
        kp__pay_set_new(root, "account", kp__jstr(cmd->account));
        kp__pay_set_new(root, "id",
                        cmd->id[0] ? kp__jstr(cmd->id) : json_null());
        kp__pay_set_new(root, "created_ms",
                        json_integer((json_int_t)cmd->created_ms));
        if (cmd->actor[0])
                kp__pay_set_new(root, "actor", kp__jstr(cmd->actor));
        return kp__pay_dump(root, lenp);
}
