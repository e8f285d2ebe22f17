/* kp_json.c: JSON records of int64 fields. */
#include "kpay/kp_json.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"

kp_err_t kp_json_get_int64s(const json_t *obj, const kp_json_field_t *fields,
                            size_t cnt, void *out, size_t struct_size) {
        kp_err_t err = KP_OK;
        if (!json_is_object(obj) || !out)
                return KP_ERR_PARSE;
        char *tmp = kp_malloc(struct_size);
        memcpy(tmp, out, struct_size);
        for (size_t i = 0; i < cnt && !err; i++) {
                json_t *v = json_object_get(obj, fields[i].name);
                if (!json_is_integer(v))
                        err = KP_ERR_PARSE;
                else
                        *(int64_t *)(void *)(tmp + fields[i].offset) =
                            json_integer_value(v);
        }
        if (!err)
                memcpy(out, tmp, struct_size);
        kp_free(tmp);
        return err;
}

kp_err_t kp_json_decode_int64s(const void *buf, size_t len,
                               const kp_json_field_t *fields, size_t cnt,
                               void *out, size_t struct_size) {
        json_error_t jerr;
        if (!buf || !out)
                return KP_ERR_PARSE;
        json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                return KP_ERR_PARSE;
        kp_err_t err = kp_json_get_int64s(root, fields, cnt, out, struct_size);
        json_decref(root);
        return err;
}

void kp_json_set_int64s(json_t *obj, const kp_json_field_t *fields, size_t cnt,
                        const void *in) {
        for (size_t i = 0; i < cnt; i++) {
                int64_t v = *(const int64_t *)(const void *)((const char *)in +
                                                             fields[i].offset);
                if (json_object_set_new(obj, fields[i].name,
                                        json_integer((json_int_t)v))) {
                        KP_FATAL("out of memory building JSON");
                        abort();
                }
        }
}

char *kp_json_encode_int64s(const kp_json_field_t *fields, size_t cnt,
                            const void *in, size_t *lenp) {
        size_t size = 2, of = 0;
        for (size_t i = 0; i < cnt; i++)
                size += strlen(fields[i].name) + 4 + 21;
        char *s = kp_malloc(size + 1);
        s[of++] = '{';
        for (size_t i = 0; i < cnt; i++) {
                int64_t v = *(const int64_t *)(const void *)((const char *)in +
                                                             fields[i].offset);
                int n     = snprintf(s + of, size + 1 - of, "%s\"%s\":%" PRId64,
                                 i ? "," : "", fields[i].name, v);
                of += (size_t)n;
        }
        s[of++] = '}';
        s[of]   = '\0';
        if (lenp)
                *lenp = of;
        return s;
}

char *kp_json_dump(json_t *v) {
        char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        json_decref(v);
        if (!s) {
                KP_FATAL("out of memory building JSON");
                abort();
        }
        char *out = kp_strdup(s);
        free(s);
        return out;
}

void kp_json_set(json_t *obj, const char *key, json_t *val) {
        if (!val || json_object_set_new(obj, key, val) == -1) {
                KP_FATAL("out of memory building JSON");
                abort();
        }
}

void kp_json_append(json_t *arr, json_t *val) {
        if (!val || json_array_append_new(arr, val) == -1) {
                KP_FATAL("out of memory building JSON");
                abort();
        }
}
