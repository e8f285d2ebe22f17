/* kp_discovery.c: key partitioning, InstanceInfo records on kpay.metadata and
 * a follower that keeps the live instances in memory (DESIGN.md §5). */
#include "kpay/kp_discovery.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kpay/kp_follower.h"
#include "kpay/kp_json.h"
#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_time.h"
#include "kpay/kp_topics.h"

/* ------------------------------------------------------------------------
 * Partitioning
 */

uint32_t kp_murmur2(const void *key, size_t len) {
        const unsigned char *data = key;
        const uint32_t seed       = 0x9747b28c;
        const uint32_t m          = 0x5bd1e995;
        const int r               = 24;
        /* Java hashes an int length; the seed mixes in its low 32 bits. */
        uint32_t h     = seed ^ (uint32_t)len;
        size_t length4 = len / 4;

        for (size_t i = 0; i < length4; i++) {
                const unsigned char *p = data + i * 4;
                uint32_t k             = (uint32_t)p[0] | (uint32_t)p[1] << 8 |
                             (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
                k *= m;
                k ^= k >> r;
                k *= m;
                h *= m;
                h ^= k;
        }

        /* The tail, exactly as Java's switch with its fallthrough. */
        const unsigned char *tail = data + (len & ~(size_t)3);
        switch (len % 4) {
        case 3:
                h ^= (uint32_t)tail[2] << 16;
                /* fall through */
        case 2:
                h ^= (uint32_t)tail[1] << 8;
                /* fall through */
        case 1:
                h ^= (uint32_t)tail[0];
                h *= m;
        }

        h ^= h >> 13;
        h *= m;
        h ^= h >> 15;
        return h;
}

int32_t kp_partition_for_key(const void *key, size_t len,
                             int32_t partition_cnt) {
        if (partition_cnt <= 0)
                return -1;
        return (int32_t)((kp_murmur2(key, len) & 0x7fffffff) %
                         (uint32_t)partition_cnt);
}

/* ------------------------------------------------------------------------
 * InstanceInfo
 */

static void json_oom(void) {
        KP_FATAL("out of memory building JSON");
        abort();
}

/* A jansson value that must exist: NULL only happens on out-of-memory. */
static json_t *json_must(json_t *v) {
        if (!v)
                json_oom();
        return v;
}

static void json_set(json_t *obj, const char *key, json_t *v) {
        if (json_object_set_new(obj, key, json_must(v)) == -1)
                json_oom();
}

static void json_append(json_t *arr, json_t *v) {
        if (json_array_append_new(arr, json_must(v)) == -1)
                json_oom();
}

/* Length of the valid UTF-8 sequence at @p s (as jansson checks it: no
 * overlong forms, no surrogates, nothing above U+10FFFF), or 0. */
static size_t utf8_seq_len(const unsigned char *s) {
        unsigned char c = s[0];
        if (c < 0x80)
                return 1;
        if (c >= 0xc2 && c <= 0xdf)
                return (s[1] & 0xc0) == 0x80 ? 2 : 0;
        if (c >= 0xe0 && c <= 0xef) {
                unsigned char lo = c == 0xe0 ? 0xa0 : 0x80;
                unsigned char hi = c == 0xed ? 0x9f : 0xbf;
                return s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80 ? 3
                                                                         : 0;
        }
        if (c >= 0xf0 && c <= 0xf4) {
                unsigned char lo = c == 0xf0 ? 0x90 : 0x80;
                unsigned char hi = c == 0xf4 ? 0x8f : 0xbf;
                return s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80 &&
                               (s[3] & 0xc0) == 0x80
                           ? 4
                           : 0;
        }
        return 0;
}

/* A JSON string for @p s, or null for NULL. JSON strings are UTF-8, so a
 * byte that is not part of a valid sequence is written as '?' rather than
 * failing the whole record. */
static json_t *json_str(const char *s) {
        if (!s)
                return json_must(json_null());
        json_t *v = json_string(s);
        if (v)
                return v;
        size_t len  = strlen(s);
        char *fixed = kp_malloc(len + 1);
        size_t i    = 0;
        while (i < len) {
                size_t n = utf8_seq_len((const unsigned char *)s + i);
                if (n == 0) {
                        fixed[i++] = '?';
                        continue;
                }
                memcpy(fixed + i, s + i, n);
                i += n;
        }
        fixed[len] = '\0';
        v          = json_string(fixed);
        kp_free(fixed);
        return json_must(v);
}

char *kp_instance_info_to_json(const kp_instance_info_t *info) {
        if (!info)
                return NULL;
        json_t *obj = json_must(json_object());
        json_set(obj, "service", json_str(info->service));
        json_set(obj, "instance", json_str(info->instance));
        json_set(obj, "endpoint", json_str(info->endpoint));
        json_set(obj, "state", json_str(info->state));
        json_t *stores = json_must(json_array());
        for (size_t i = 0; i < info->store_cnt; i++)
                json_append(stores, json_str(info->stores[i]));
        json_set(obj, "stores", stores);
        json_t *parts = json_must(json_array());
        for (size_t i = 0; i < info->partition_cnt; i++)
                json_append(parts, json_integer(info->partitions[i]));
        json_set(obj, "partitions", parts);
        json_t *restoring = json_must(json_array());
        for (size_t i = 0; i < info->restoring_cnt; i++)
                json_append(restoring, json_integer(info->restoring[i]));
        json_set(obj, "restoring", restoring);
        json_set(obj, "partition_count", json_integer(info->partition_count));
        json_set(obj, "ts", json_integer(info->ts));
        if (info->status) {
                json_error_t jerr;
                json_t *st = json_loads(info->status, 0, &jerr);
                if (json_is_object(st))
                        json_set(obj, "status", st);
                else
                        json_decref(st);
        }

        return kp_json_dump(obj);
}

/* Reads optional string field @p name of @p obj into *dst (NULL when it is
 * absent or null). */
static kp_err_t parse_opt_string(json_t *obj, const char *name, char **dst,
                                 char *errstr, size_t errstr_size) {
        json_t *v = json_object_get(obj, name);
        if (!v || json_is_null(v))
                return KP_OK;
        if (!json_is_string(v)) {
                snprintf(errstr, errstr_size,
                         "InstanceInfo: field \"%s\" must be a string", name);
                return KP_ERR_PARSE;
        }
        *dst = kp_strndup(json_string_value(v), json_string_length(v));
        return KP_OK;
}

/* Reads required non-empty string field @p name of @p obj into *dst. */
static kp_err_t parse_req_string(json_t *obj, const char *name, char **dst,
                                 char *errstr, size_t errstr_size) {
        json_t *v = json_object_get(obj, name);
        if (!v || !json_is_string(v) || json_string_length(v) == 0) {
                snprintf(errstr, errstr_size,
                         "InstanceInfo: field \"%s\" must be a non-empty "
                         "string",
                         name);
                return KP_ERR_PARSE;
        }
        *dst = kp_strndup(json_string_value(v), json_string_length(v));
        return KP_OK;
}

/* Reads optional integer field @p name in [lo, hi] (0 when absent). */
static kp_err_t parse_opt_int(json_t *obj, const char *name, json_int_t lo,
                              json_int_t hi, json_int_t *dst, char *errstr,
                              size_t errstr_size) {
        json_t *v = json_object_get(obj, name);
        *dst      = 0;
        if (!v || json_is_null(v))
                return KP_OK;
        if (!json_is_integer(v) || json_integer_value(v) < lo ||
            json_integer_value(v) > hi) {
                snprintf(errstr, errstr_size,
                         "InstanceInfo: field \"%s\" must be an integer in "
                         "%lld..%lld",
                         name, (long long)lo, (long long)hi);
                return KP_ERR_PARSE;
        }
        *dst = json_integer_value(v);
        return KP_OK;
}

static int cmp_int32(const void *a, const void *b) {
        int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
        return (x > y) - (x < y);
}

/* The optional "stores" array of strings. */
static kp_err_t parse_stores(json_t *obj, kp_instance_info_t *out, char *errstr,
                             size_t errstr_size) {
        json_t *arr = json_object_get(obj, "stores");
        if (!arr || json_is_null(arr))
                return KP_OK;
        if (!json_is_array(arr)) {
                snprintf(errstr, errstr_size,
                         "InstanceInfo: field \"stores\" must be an "
                         "array of strings");
                return KP_ERR_PARSE;
        }
        size_t cnt = json_array_size(arr);
        if (cnt)
                out->stores = kp_calloc(cnt, sizeof(*out->stores));
        for (size_t i = 0; i < cnt; i++) {
                json_t *v = json_array_get(arr, i);
                if (!json_is_string(v)) {
                        snprintf(errstr, errstr_size,
                                 "InstanceInfo: field \"stores\"[%zu] "
                                 "must be a string",
                                 i);
                        return KP_ERR_PARSE;
                }
                out->stores[i] =
                    kp_strndup(json_string_value(v), json_string_length(v));
                out->store_cnt++;
        }
        return KP_OK;
}

/* An optional array of partitions below @p partition_count, kept
 * ascending and without duplicates. */
static kp_err_t parse_partitions(json_t *obj, const char *field,
                                 int32_t partition_count, int32_t **partsp,
                                 size_t *cntp, char *errstr,
                                 size_t errstr_size) {
        json_t *arr    = json_object_get(obj, field);
        int32_t *parts = NULL;
        size_t cnt_out = 0;
        if (arr && !json_is_null(arr)) {
                if (!json_is_array(arr)) {
                        snprintf(errstr, errstr_size,
                                 "InstanceInfo: field \"%s\" must be "
                                 "an array of integers",
                                 field);
                        return KP_ERR_PARSE;
                }
                size_t cnt = json_array_size(arr);
                /* Owned by the caller's info at once: an error below
                 * leaves it to kp_instance_info_clear(). */
                if (cnt)
                        parts = *partsp = kp_calloc(cnt, sizeof(*parts));
                for (size_t i = 0; i < cnt; i++) {
                        json_t *v = json_array_get(arr, i);
                        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                            json_integer_value(v) > INT32_MAX) {
                                snprintf(errstr, errstr_size,
                                         "InstanceInfo: field "
                                         "\"%s\"[%zu] must be an "
                                         "integer in 0..%" PRId32,
                                         field, i, INT32_MAX);
                                return KP_ERR_PARSE;
                        }
                        if (json_integer_value(v) >= partition_count) {
                                snprintf(errstr, errstr_size,
                                         "InstanceInfo: field "
                                         "\"%s\"[%zu] = %lld is not "
                                         "below \"partition_count\" %" PRId32,
                                         field, i,
                                         (long long)json_integer_value(v),
                                         partition_count);
                                return KP_ERR_PARSE;
                        }
                        parts[i] = (int32_t)json_integer_value(v);
                        cnt_out++;
                }
                /* The header promises ascending partitions, without
                 * duplicates, whatever order the publisher used. */
                if (cnt_out > 1)
                        qsort(parts, cnt_out, sizeof(*parts), cmp_int32);
                size_t w = 0;
                for (size_t i = 0; i < cnt_out; i++)
                        if (w == 0 || parts[w - 1] != parts[i])
                                parts[w++] = parts[i];
                cnt_out = w;
        }
        *partsp = parts;
        *cntp   = cnt_out;
        return KP_OK;
}

static kp_err_t parse_info(json_t *obj, kp_instance_info_t *out, char *errstr,
                           size_t errstr_size) {
        json_int_t n;
        kp_err_t err;

        if (!json_is_object(obj)) {
                snprintf(errstr, errstr_size,
                         "InstanceInfo: expected a JSON object");
                return KP_ERR_PARSE;
        }
        if ((err = parse_req_string(obj, "service", &out->service, errstr,
                                    errstr_size)) ||
            (err = parse_req_string(obj, "instance", &out->instance, errstr,
                                    errstr_size)) ||
            (err = parse_opt_string(obj, "endpoint", &out->endpoint, errstr,
                                    errstr_size)) ||
            (err = parse_opt_string(obj, "state", &out->state, errstr,
                                    errstr_size)))
                return err;

        if ((err = parse_stores(obj, out, errstr, errstr_size)))
                return err;

        if ((err = parse_opt_int(obj, "partition_count", 0, INT32_MAX, &n,
                                 errstr, errstr_size)))
                return err;
        out->partition_count = (int32_t)n;

        if ((err = parse_partitions(obj, "partitions", out->partition_count,
                                    &out->partitions, &out->partition_cnt,
                                    errstr, errstr_size)) ||
            (err = parse_partitions(obj, "restoring", out->partition_count,
                                    &out->restoring, &out->restoring_cnt,
                                    errstr, errstr_size)))
                return err;

        if ((err = parse_opt_int(obj, "ts", INT64_MIN, INT64_MAX, &n, errstr,
                                 errstr_size)))
                return err;
        out->ts = (int64_t)n;
        return KP_OK;
}

/* The optional "status" object, kept as compact JSON text. A status that
 * is not an object is dropped, not the instance: readers then see an
 * instance with no report, which is what it is. */
static kp_err_t parse_status(json_t *obj, kp_instance_info_t *out, char *errstr,
                             size_t errstr_size) {
        json_t *st = json_object_get(obj, "status");
        (void)errstr;
        (void)errstr_size;
        if (!st || !json_is_object(st))
                return KP_OK;
        out->status = kp_json_dump(json_incref(st));
        return KP_OK;
}

kp_err_t kp_instance_info_from_json(const char *json, size_t len,
                                    kp_instance_info_t *out, char *errstr,
                                    size_t errstr_size) {
        json_error_t jerr;
        memset(out, 0, sizeof(*out));
        if (!json) {
                snprintf(errstr, errstr_size, "InstanceInfo: no data");
                return KP_ERR_PARSE;
        }
        json_t *root = json_loadb(
            json, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
        if (!root) {
                snprintf(errstr, errstr_size,
                         "InstanceInfo: not valid JSON: %s (at byte %d)",
                         jerr.text, jerr.position);
                return KP_ERR_PARSE;
        }
        kp_err_t err = parse_info(root, out, errstr, errstr_size);
        if (!err)
                err = parse_status(root, out, errstr, errstr_size);
        json_decref(root);
        if (err)
                kp_instance_info_clear(out);
        return err;
}

void kp_instance_info_copy(kp_instance_info_t *dst,
                           const kp_instance_info_t *src) {
        if (dst == src)
                return;
        memset(dst, 0, sizeof(*dst));
        dst->service  = kp_strdup(src->service);
        dst->instance = kp_strdup(src->instance);
        dst->endpoint = kp_strdup(src->endpoint);
        dst->state    = kp_strdup(src->state);
        if (src->store_cnt) {
                dst->stores = kp_calloc(src->store_cnt, sizeof(*dst->stores));
                for (size_t i = 0; i < src->store_cnt; i++)
                        dst->stores[i] = kp_strdup(src->stores[i]);
                dst->store_cnt = src->store_cnt;
        }
        if (src->partition_cnt) {
                dst->partitions =
                    kp_calloc(src->partition_cnt, sizeof(*dst->partitions));
                memcpy(dst->partitions, src->partitions,
                       src->partition_cnt * sizeof(*dst->partitions));
                dst->partition_cnt = src->partition_cnt;
        }
        if (src->restoring_cnt) {
                dst->restoring =
                    kp_calloc(src->restoring_cnt, sizeof(*dst->restoring));
                memcpy(dst->restoring, src->restoring,
                       src->restoring_cnt * sizeof(*dst->restoring));
                dst->restoring_cnt = src->restoring_cnt;
        }
        dst->partition_count = src->partition_count;
        dst->ts              = src->ts;
        dst->status          = kp_strdup(src->status);
}

void kp_instance_info_clear(kp_instance_info_t *info) {
        if (!info)
                return;
        kp_free(info->service);
        kp_free(info->instance);
        kp_free(info->endpoint);
        kp_free(info->state);
        for (size_t i = 0; i < info->store_cnt; i++)
                kp_free(info->stores[i]);
        kp_free(info->stores);
        kp_free(info->partitions);
        kp_free(info->restoring);
        kp_free(info->status);
        memset(info, 0, sizeof(*info));
}

void kp_instance_info_list_free(kp_instance_info_t *list, size_t cnt) {
        if (!list)
                return;
        for (size_t i = 0; i < cnt; i++)
                kp_instance_info_clear(&list[i]);
        kp_free(list);
}

int kp_instance_info_owns(const kp_instance_info_t *info, int32_t partition) {
        for (size_t i = 0; i < info->partition_cnt; i++)
                if (info->partitions[i] == partition)
                        return 1;
        return 0;
}

static int info_has_store(const kp_instance_info_t *info, const char *store) {
        for (size_t i = 0; i < info->store_cnt; i++)
                if (info->stores[i] && !strcmp(info->stores[i], store))
                        return 1;
        return 0;
}

/* ------------------------------------------------------------------------
 * Following kpay.metadata: a threaded kp_follower whose table holds the
 * decoded InstanceInfo of every key.
 */

struct kp_discovery_s {
        kp_follower_t *f; /**< threaded, table of decoded InstanceInfos */
        int64_t dead_after_ms;
};

/* The follower's decode hook: an InstanceInfo whose service and instance
 * match the record key, dated by its own "ts".
 * @locality follower thread */
static void *disc_decode(const kp_follower_record_t *rec, int64_t *tsp,
                         void *opaque, char *errstr, size_t errstr_size) {
        kp_instance_info_t *info = kp_calloc(1, sizeof(*info));
        (void)opaque;
        if (kp_instance_info_from_json(rec->value, rec->value_len, info, errstr,
                                       errstr_size)) {
                kp_instance_info_clear(info);
                kp_free(info);
                return NULL;
        }
        char *want = kp_asprintf("%s/%s", info->service, info->instance);
        int match  = strlen(want) == rec->key_len &&
                    !memcmp(want, rec->key, rec->key_len);
        kp_free(want);
        if (!match) {
                snprintf(errstr, errstr_size,
                         "it does not match service \"%s\" instance \"%s\"",
                         info->service, info->instance);
                kp_instance_info_clear(info);
                kp_free(info);
                return NULL;
        }
        *tsp = info->ts;
        return info;
}

/* The follower's free hook. */
static void disc_free(void *decoded, void *opaque) {
        (void)opaque;
        kp_instance_info_clear(decoded);
        kp_free(decoded);
}

/* @locality follower thread */
static void disc_on_record(const kp_follower_record_t *rec, void *opaque) {
        (void)opaque;
        if (!rec->value)
                KP_DEBUG("discovery: %.*s left", (int)rec->key_len,
                         (const char *)rec->key);
}

kp_discovery_t *kp_discovery_new(const kp_app_conf_t *c, int64_t dead_after_ms,
                                 char *errstr, size_t errstr_size) {
        char topic[256];

        if (dead_after_ms <= 0) {
                snprintf(errstr, errstr_size,
                         "discovery: dead_after_ms must be positive, not "
                         "%" PRId64,
                         dead_after_ms);
                return NULL;
        }
        kp_topic_name(topic, sizeof(topic), c ? c->topic_prefix : NULL,
                      KP_TOPIC_METADATA);
        const kp_follower_conf_t fc = {
            .topic          = topic,
            .client_id      = "kpay-discovery",
            .log_name       = "discovery",
            .keep_table     = 1,
            .threaded       = 1,
            .on_record      = disc_on_record,
            .decode         = disc_decode,
            .free_decoded   = disc_free,
            .stale_after_ms = dead_after_ms,
        };
        kp_follower_t *f = kp_follower_new(c, &fc, errstr, errstr_size);
        if (!f)
                return NULL;
        kp_discovery_t *d = kp_calloc(1, sizeof(*d));
        d->f              = f;
        d->dead_after_ms  = dead_after_ms;
        return d;
}

kp_err_t kp_discovery_sync(kp_discovery_t *d, int timeout_ms) {
        if (!d)
                return KP_ERR_INVALID_ARG;
        return kp_follower_sync(d->f, timeout_ms);
}

static int cmp_by_instance(const void *a, const void *b) {
        const kp_instance_info_t *x = a, *y = b;
        int r = strcmp(x->instance, y->instance);
        return r ? r : strcmp(x->service, y->service);
}

/* What kp_discovery_instances() collects. */
typedef struct disc_list_s {
        const kp_discovery_t *d;
        const char *service;
        int64_t now;
        kp_instance_info_t *list;
        size_t cnt, size;
} disc_list_t;

/* @locality under the follower's lock */
static int disc_collect(const void *key, size_t key_len, const void *value,
                        size_t value_len, const void *decoded, int64_t recv_ms,
                        void *opaque) {
        disc_list_t *l                 = opaque;
        const kp_instance_info_t *info = decoded;
        (void)key, (void)key_len, (void)value, (void)value_len;
        if (l->now - recv_ms > l->d->dead_after_ms ||
            (l->service && strcmp(info->service, l->service)))
                return 0;
        if (l->cnt == l->size) {
                l->size = l->size ? l->size * 2 : 16;
                l->list = kp_realloc(l->list, l->size * sizeof(*l->list));
        }
        kp_instance_info_copy(&l->list[l->cnt++], info);
        return 0;
}

size_t kp_discovery_instances(kp_discovery_t *d, const char *service,
                              kp_instance_info_t **listp) {
        disc_list_t l = {.d = d, .service = service, .now = kp_mono_ms()};

        *listp = NULL;
        if (!d)
                return 0;
        kp_follower_foreach(d->f, disc_collect, &l);
        if (l.cnt == 0) {
                kp_free(l.list);
                return 0;
        }
        qsort(l.list, l.cnt, sizeof(*l.list), cmp_by_instance);
        *listp = l.list;
        return l.cnt;
}

/* What kp_discovery_owner() looks for. */
typedef struct disc_owner_s {
        const kp_discovery_t *d;
        const char *service, *store;
        const void *key;
        size_t klen;
        int64_t now;
        kp_instance_info_t *out; /**< a copy of the best owner so far */
        int found;
        int32_t best_partition;
        int64_t newest_ts;
        int32_t newest_partition; /**< -1: no candidate yet */
} disc_owner_t;

/* @locality under the follower's lock */
/* An instance that failed or is stopping serves no key, whatever
 * partitions its last record lists. */
static int info_serving(const kp_instance_info_t *e) {
        return !e->state ||
               (strcmp(e->state, "FAILED") && strcmp(e->state, "STOPPING"));
}

static int disc_owner_visit(const void *key, size_t key_len, const void *value,
                            size_t value_len, const void *decoded,
                            int64_t recv_ms, void *opaque) {
        disc_owner_t *o             = opaque;
        const kp_instance_info_t *e = decoded;
        (void)key, (void)key_len, (void)value, (void)value_len;
        if (o->now - recv_ms > o->d->dead_after_ms ||
            strcmp(e->service, o->service) || !info_has_store(e, o->store) ||
            e->partition_count <= 0 || !info_serving(e))
                return 0;
        /* Each instance routes with its own partition count, which differs
         * between instances only while the input topics are being
         * repartitioned. */
        int32_t p = kp_partition_for_key(o->key, o->klen, e->partition_count);
        if (o->newest_partition < 0 || e->ts > o->newest_ts) {
                o->newest_ts        = e->ts;
                o->newest_partition = p;
        }
        if (!kp_instance_info_owns(e, p))
                return 0;
        /* Several owners: a rebalance in progress; the one that published
         * last knows best. Ties go to the smaller id. */
        if (!o->found || e->ts > o->out->ts ||
            (e->ts == o->out->ts &&
             strcmp(e->instance, o->out->instance) < 0)) {
                kp_instance_info_clear(o->out);
                kp_instance_info_copy(o->out, e);
                o->found          = 1;
                o->best_partition = p;
        }
        return 0;
}

kp_err_t kp_discovery_owner(kp_discovery_t *d, const char *service,
                            const char *store, const void *key, size_t klen,
                            kp_instance_info_t *out, int32_t *partitionp) {
        memset(out, 0, sizeof(*out));
        if (partitionp)
                *partitionp = -1;
        if (!d || !service || !store || (!key && klen))
                return KP_ERR_INVALID_ARG;

        disc_owner_t o = {.d                = d,
                          .service          = service,
                          .store            = store,
                          .key              = key,
                          .klen             = klen,
                          .now              = kp_mono_ms(),
                          .out              = out,
                          .best_partition   = -1,
                          .newest_partition = -1};
        kp_follower_foreach(d->f, disc_owner_visit, &o);
        if (partitionp)
                *partitionp = o.found ? o.best_partition : o.newest_partition;
        return o.found ? KP_OK : KP_ERR_NOT_FOUND;
}

void kp_discovery_destroy(kp_discovery_t *d) {
        if (!d)
                return;
        kp_follower_destroy(d->f);
        kp_free(d);
}
