/* ops.c: kpay-admin's operational commands, the pure part (ops.h). */
#define _GNU_SOURCE /* memmem() */
#include "ops.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const char *const dlq_headers[] = {"kpay-error",
                                          "kpay-error-detail",
                                          "kpay-source-topic",
                                          "kpay-source-partition",
                                          "kpay-source-offset",
                                          "kpay-service",
                                          NULL};

int ops_is_dlq_header(const char *name) {
        for (const char *const *h = dlq_headers; *h; h++)
                if (!strcmp(*h, name))
                        return 1;
        return 0;
}

rd_kafka_headers_t *ops_replay_headers(const rd_kafka_headers_t *letter,
                                       int32_t dlq_partition,
                                       int64_t dlq_offset) {
        rd_kafka_headers_t *out = rd_kafka_headers_new(8);
        const char *name;
        const void *val;
        size_t len;
        char of[48];
        for (size_t i = 0;
             letter && !rd_kafka_header_get_all(letter, i, &name, &val, &len);
             i++) {
                if (ops_is_dlq_header(name) || !strcmp(name, "kpay-hop") ||
                    !strcmp(name, OPS_REPLAY_HEADER))
                        continue;
                rd_kafka_header_add(out, name, -1, val, (ssize_t)len);
        }
        rd_kafka_header_add(out, "kpay-hop", -1, "admin", -1);
        snprintf(of, sizeof(of), "%" PRId32 ":%" PRId64, dlq_partition,
                 dlq_offset);
        rd_kafka_header_add(out, OPS_REPLAY_HEADER, -1, of, -1);
        return out;
}

char *ops_header(const rd_kafka_headers_t *hdrs, const char *name, char *buf,
                 size_t size) {
        const void *val = NULL;
        size_t len      = 0;
        if (size)
                buf[0] = '\0';
        if (hdrs && !rd_kafka_header_get_last(hdrs, name, &val, &len) && val)
                snprintf(buf, size, "%.*s", (int)len, (const char *)val);
        return buf;
}

static json_t *load_object(const void *val, size_t len) {
        json_error_t jerr;
        if (!val || !len)
                return NULL;
        json_t *j = json_loadb(val, len, JSON_REJECT_DUPLICATES, &jerr);
        if (j && !json_is_object(j)) {
                json_decref(j);
                return NULL;
        }
        return j;
}

int ops_value_id(const void *val, size_t len, char *buf, size_t size) {
        json_t *j      = load_object(val, len);
        const char *id = json_string_value(json_object_get(j, "id"));
        int found      = id != NULL;
        snprintf(buf, size, "%s", id ? id : "");
        json_decref(j);
        return found;
}

int ops_record_of(const char *id, const void *key, size_t klen, const void *val,
                  size_t vlen) {
        size_t idlen = strlen(id);
        if (key && klen == idlen && !memcmp(key, id, idlen))
                return 1;
        /* Cheap first: the id must appear in the bytes at all. */
        if (!val || vlen < idlen || !memmem(val, vlen, id, idlen))
                return 0;
        json_t *j     = load_object(val, vlen);
        const char *v = json_string_value(json_object_get(j, "id"));
        const char *p = json_string_value(json_object_get(j, "payment"));
        int match     = (v && !strcmp(v, id)) || (p && !strcmp(p, id));
        json_decref(j);
        return match;
}

char *ops_letter_key(char *buf, size_t size, int32_t partition,
                     int64_t offset) {
        snprintf(buf, size, "%" PRId32 ":%" PRId64, partition, offset);
        return buf;
}

int ops_replay_marker(const void *val, size_t len, char *buf, size_t size) {
        json_t *j          = load_object(val, len);
        const char *action = json_string_value(json_object_get(j, "action"));
        json_t *dlq        = json_object_get(j, "dlq");
        json_t *p          = json_object_get(dlq, "partition"),
               *o          = json_object_get(dlq, "offset");
        int is             = action && !strcmp(action, OPS_REPLAY_ACTION) &&
                 json_is_integer(p) && json_is_integer(o);
        if (is)
                ops_letter_key(buf, size, (int32_t)json_integer_value(p),
                               (int64_t)json_integer_value(o));
        else if (size)
                buf[0] = '\0';
        json_decref(j);
        return is;
}

char *ops_summary(const void *val, size_t len, const rd_kafka_headers_t *hdrs,
                  char *buf, size_t size) {
        char err[64], detail[200], replay[48], rerouted[48];
        ops_header(hdrs, "kpay-error", err, sizeof(err));
        ops_header(hdrs, "kpay-error-detail", detail, sizeof(detail));
        ops_header(hdrs, OPS_REPLAY_HEADER, replay, sizeof(replay));
        ops_header(hdrs, "kpay-rerouted-from", rerouted, sizeof(rerouted));
        json_t *j = load_object(val, len);
#define S(k) json_string_value(json_object_get(j, k))
        size_t of = 0;
        if (err[0])
                of += (size_t)snprintf(buf + of, size - of,
                                       "DEAD LETTER error=%s detail=\"%s\" ",
                                       err, detail);
        if (of >= size)
                of = size - 1;
        if (!j)
                of += (size_t)snprintf(buf + of, size - of,
                                       "(%zu bytes, not a JSON object) ", len);
        else if (S("action"))
                of += (size_t)snprintf(buf + of, size - of,
                                       "AUDIT %s by %s target=%s ", S("action"),
                                       S("actor") ? S("actor") : "?",
                                       S("target") ? S("target") : "?");
        else if (S("command"))
                of += (size_t)snprintf(buf + of, size - of, "%s %s ",
                                       S("command"),
                                       S("account") ? S("account") : "?");
        else if (S("state"))
                of += (size_t)snprintf(
                    buf + of, size - of, "%s%s%s %s -> %s ", S("state"),
                    S("reason") ? " reason=" : "",
                    S("reason") ? S("reason") : "", S("from") ? S("from") : "?",
                    S("to") ? S("to") : "?");
#undef S
        if (of >= size)
                of = size - 1;
        if (replay[0])
                of += (size_t)snprintf(buf + of, size - of, "replay-of=%s ",
                                       replay);
        if (of >= size)
                of = size - 1;
        if (rerouted[0])
                of += (size_t)snprintf(buf + of, size - of, "rerouted-from=%s ",
                                       rerouted);
        if (of >= size)
                of = size - 1;
        /* No trailing blank. */
        while (of > 0 && buf[of - 1] == ' ')
                of--;
        if (size)
                buf[of] = '\0';
        json_decref(j);
        return buf;
}
