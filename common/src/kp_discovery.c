/* kp_discovery.c: key partitioning, InstanceInfo records on kpay.metadata and
 * a follower that keeps the live instances in memory (DESIGN.md §5). */
#include "kpay/kp_discovery.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kpay/kp_conf.h"
#include "kpay/kp_kafka.h"
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
        json_set(obj, "partition_count", json_integer(info->partition_count));
        json_set(obj, "ts", json_integer(info->ts));

        char *dumped = json_dumps(obj, JSON_COMPACT);
        json_decref(obj);
        if (!dumped)
                json_oom();
        char *out = kp_strdup(dumped);
        free(dumped);
        return out;
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

static kp_err_t parse_info(json_t *obj, kp_instance_info_t *out, char *errstr,
                           size_t errstr_size) {
        json_int_t n;
        json_t *arr;
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

        arr = json_object_get(obj, "stores");
        if (arr && !json_is_null(arr)) {
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
                        out->stores[i] = kp_strndup(json_string_value(v),
                                                    json_string_length(v));
                        out->store_cnt++;
                }
        }

        if ((err = parse_opt_int(obj, "partition_count", 0, INT32_MAX, &n,
                                 errstr, errstr_size)))
                return err;
        out->partition_count = (int32_t)n;

        arr = json_object_get(obj, "partitions");
        if (arr && !json_is_null(arr)) {
                if (!json_is_array(arr)) {
                        snprintf(errstr, errstr_size,
                                 "InstanceInfo: field \"partitions\" must be "
                                 "an array of integers");
                        return KP_ERR_PARSE;
                }
                size_t cnt = json_array_size(arr);
                if (cnt)
                        out->partitions =
                            kp_calloc(cnt, sizeof(*out->partitions));
                for (size_t i = 0; i < cnt; i++) {
                        json_t *v = json_array_get(arr, i);
                        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                            json_integer_value(v) > INT32_MAX) {
                                snprintf(errstr, errstr_size,
                                         "InstanceInfo: field "
                                         "\"partitions\"[%zu] must be an "
                                         "integer in 0..%" PRId32,
                                         i, INT32_MAX);
                                return KP_ERR_PARSE;
                        }
                        if (json_integer_value(v) >= out->partition_count) {
                                snprintf(errstr, errstr_size,
                                         "InstanceInfo: field "
                                         "\"partitions\"[%zu] = %lld is not "
                                         "below \"partition_count\" %" PRId32,
                                         i, (long long)json_integer_value(v),
                                         out->partition_count);
                                return KP_ERR_PARSE;
                        }
                        out->partitions[i] = (int32_t)json_integer_value(v);
                        out->partition_cnt++;
                }
                /* The header promises ascending partitions, without
                 * duplicates, whatever order the publisher used. */
                if (out->partition_cnt > 1)
                        qsort(out->partitions, out->partition_cnt,
                              sizeof(*out->partitions), cmp_int32);
                size_t w = 0;
                for (size_t i = 0; i < out->partition_cnt; i++)
                        if (w == 0 ||
                            out->partitions[w - 1] != out->partitions[i])
                                out->partitions[w++] = out->partitions[i];
                out->partition_cnt = w;
        }

        if ((err = parse_opt_int(obj, "ts", INT64_MIN, INT64_MAX, &n, errstr,
                                 errstr_size)))
                return err;
        out->ts = (int64_t)n;
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
        dst->partition_count = src->partition_count;
        dst->ts              = src->ts;
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
 * The follower
 */

/* How long one metadata request of the follower thread may take; it bounds
 * how long kp_discovery_destroy() waits for the thread. */
#define KP_DISC_METADATA_TIMEOUT_MS 1000
/* Retry interval while the topic does not exist. */
#define KP_DISC_RETRY_MS 1000
/* Poll timeout of the follower thread; bounds the reaction to stop. */
#define KP_DISC_POLL_MS 100

typedef struct kp_disc_entry_s {
        char *key; /**< "<service>/<instance>", the record key */
        kp_instance_info_t info;
        int64_t recv_ms; /**< CLOCK_MONOTONIC ms it counts as received */
} kp_disc_entry_t;

struct kp_discovery_s {
        rd_kafka_t *rk;
        rd_kafka_topic_t *rkt; /**< for metadata look-ups only */
        /* A second handle, read_uncommitted, only to ask for end offsets:
         * under read_committed the broker answers with the last stable
         * offset, which lags behind a transaction whose commit has already
         * returned until its markers are written. The high watermark does
         * not, and the follower's position reaches it exactly when every
         * transaction below it is resolved. */
        rd_kafka_t *rk_end;
        char topic[256];
        int64_t dead_after_ms;

        pthread_t thread;
        int thread_started;

        /* Everything below is shared with the thread, under lock. */
        pthread_mutex_t lock;
        pthread_cond_t cond; /**< CLOCK_MONOTONIC; broadcast on any change */
        int stop;
        int recheck;       /**< a caller wants the partition count re-read */
        int lost;          /**< the topic or a partition of it disappeared */
        int32_t part_cnt;  /**< partitions assigned, 0 before assignment */
        int64_t *position; /**< next offset to read per partition, or -1 */
        kp_disc_entry_t *entries;
        size_t entry_cnt, entry_size;
};


/* Waits on d->cond until CLOCK_MONOTONIC time @p deadline_ms (forever when
 * negative). Returns 0 when signalled, ETIMEDOUT when the deadline passed. */
static int disc_wait(kp_discovery_t *d, int64_t deadline_ms) {
        int r;
        if (deadline_ms < 0) {
                r = pthread_cond_wait(&d->cond, &d->lock);
        } else {
                struct timespec ts = {
                    .tv_sec  = deadline_ms / 1000,
                    .tv_nsec = (deadline_ms % 1000) * 1000000};
                r = pthread_cond_timedwait(&d->cond, &d->lock, &ts);
        }
        if (r != 0 && r != ETIMEDOUT) {
                KP_FATAL("discovery: waiting on a condition failed: %s",
                         strerror(r));
                abort();
        }
        return r;
}

/* The partition count of the metadata topic: >0 when it exists, 0 when the
 * cluster says it does not, -1 when the cluster could not be asked. */
static int32_t disc_partition_count(kp_discovery_t *d, int timeout_ms) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err =
            rd_kafka_metadata(d->rk, 0, d->rkt, &md, timeout_ms);
        if (err) {
                KP_DEBUG("discovery: metadata for %s: %s", d->topic,
                         rd_kafka_err2str(err));
                return -1;
        }
        int32_t cnt = 0;
        for (int i = 0; i < md->topic_cnt; i++) {
                const struct rd_kafka_metadata_topic *t = &md->topics[i];
                if (strcmp(t->topic, d->topic))
                        continue;
                if (t->err && t->err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
                        KP_DEBUG("discovery: metadata for %s: %s", d->topic,
                                 rd_kafka_err2str(t->err));
                if (t->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
                        cnt = 0;
                else if (t->partition_cnt > 0)
                        cnt = t->partition_cnt;
                else
                        cnt = -1;
        }
        rd_kafka_metadata_destroy(md);
        return cnt;
}

/* (Re)assigns every partition of the topic. Partitions already followed
 * continue from their position, new ones start at the beginning.
 * @locality follower thread, without the lock */
static kp_err_t disc_assign(kp_discovery_t *d) {
        int32_t cnt = disc_partition_count(d, KP_DISC_METADATA_TIMEOUT_MS);
        if (cnt <= 0)
                return KP_ERR_NOT_FOUND;
        pthread_mutex_lock(&d->lock);
        int same = cnt == d->part_cnt;
        pthread_mutex_unlock(&d->lock);
        if (same)
                return KP_OK; /* already following all of them */

        int64_t *pos = kp_calloc((size_t)cnt, sizeof(*pos));
        rd_kafka_topic_partition_list_t *parts =
            rd_kafka_topic_partition_list_new(cnt);
        pthread_mutex_lock(&d->lock);
        for (int32_t p = 0; p < cnt; p++) {
                pos[p] = p < d->part_cnt ? d->position[p] : -1;
                rd_kafka_topic_partition_list_add(parts, d->topic, p)->offset =
                    pos[p] >= 0 ? pos[p] : RD_KAFKA_OFFSET_BEGINNING;
        }
        pthread_mutex_unlock(&d->lock);

        rd_kafka_resp_err_t err = rd_kafka_assign(d->rk, parts);
        rd_kafka_topic_partition_list_destroy(parts);
        if (err) {
                KP_WARN("discovery: assigning %s: %s", d->topic,
                        rd_kafka_err2str(err));
                kp_free(pos);
                return KP_ERR_KAFKA;
        }

        pthread_mutex_lock(&d->lock);
        kp_free(d->position);
        d->position = pos;
        d->part_cnt = cnt;
        pthread_cond_broadcast(&d->cond);
        pthread_mutex_unlock(&d->lock);
        KP_INFO("discovery: following %s (%" PRId32 " partitions)", d->topic,
                cnt);
        return KP_OK;
}

/* Drops the assignment, so that the thread looks the topic up again.
 * @locality follower thread, without the lock */
static void disc_unassign(kp_discovery_t *d) {
        rd_kafka_resp_err_t err = rd_kafka_assign(d->rk, NULL);
        if (err)
                KP_WARN("discovery: unassigning %s: %s", d->topic,
                        rd_kafka_err2str(err));
        pthread_mutex_lock(&d->lock);
        kp_free(d->position);
        d->position = NULL;
        d->part_cnt = 0;
        pthread_cond_broadcast(&d->cond);
        pthread_mutex_unlock(&d->lock);
}

/* @locality with the lock */
static kp_disc_entry_t *disc_find(kp_discovery_t *d, const char *key) {
        for (size_t i = 0; i < d->entry_cnt; i++)
                if (!strcmp(d->entries[i].key, key))
                        return &d->entries[i];
        return NULL;
}

/* @locality with the lock */
static void disc_remove(kp_discovery_t *d, const char *key) {
        kp_disc_entry_t *e = disc_find(d, key);
        if (!e)
                return;
        kp_free(e->key);
        kp_instance_info_clear(&e->info);
        *e = d->entries[--d->entry_cnt];
}

/* @locality with the lock */
static void disc_advance(kp_discovery_t *d, int32_t partition, int64_t offset) {
        if (partition < 0 || partition >= d->part_cnt ||
            offset <= d->position[partition])
                return;
        d->position[partition] = offset;
        pthread_cond_broadcast(&d->cond);
}

/* Applies one record of the topic to the map.
 * @locality follower thread, without the lock */
static void disc_record(kp_discovery_t *d, const rd_kafka_message_t *m) {
        char errstr[256];
        char *key = NULL;
        kp_instance_info_t info;
        int tombstone = m->payload == NULL;

        memset(&info, 0, sizeof(info));
        if (!m->key || m->key_len == 0) {
                KP_WARN("discovery: skipping %s [%" PRId32 "] offset %" PRId64
                        ": no key",
                        d->topic, m->partition, m->offset);
                goto advance;
        }
        key = kp_strndup(m->key, m->key_len);
        if (!tombstone) {
                if (kp_instance_info_from_json(m->payload, m->len, &info,
                                               errstr, sizeof(errstr))) {
                        KP_WARN("discovery: skipping %s [%" PRId32
                                "] offset %" PRId64 " key %s: %s",
                                d->topic, m->partition, m->offset, key, errstr);
                        goto advance;
                }
                char *want = kp_asprintf("%s/%s", info.service, info.instance);
                int match  = !strcmp(want, key);
                kp_free(want);
                if (!match) {
                        KP_WARN("discovery: skipping %s [%" PRId32
                                "] offset %" PRId64
                                ": key %s does not match service \"%s\" "
                                "instance \"%s\"",
                                d->topic, m->partition, m->offset, key,
                                info.service, info.instance);
                        kp_instance_info_clear(&info);
                        goto advance;
                }
        }

        /* Liveness counts from the local receive time, so clock skew between
         * hosts does not matter; but a record already older than the dead
         * timeout by its own clock (history read at start-up) is dated back
         * by its age, so it does not count as live. */
        int64_t recv_ms = kp_mono_ms();
        if (!tombstone && info.ts > 0) {
                int64_t age = kp_wall_ms() - info.ts;
                if (age > d->dead_after_ms)
                        recv_ms -= age;
        }

        pthread_mutex_lock(&d->lock);
        if (tombstone) {
                disc_remove(d, key);
                KP_DEBUG("discovery: %s left", key);
        } else {
                kp_disc_entry_t *e = disc_find(d, key);
                if (e) {
                        kp_instance_info_clear(&e->info);
                } else {
                        if (d->entry_cnt == d->entry_size) {
                                d->entry_size =
                                    d->entry_size ? d->entry_size * 2 : 16;
                                d->entries = kp_realloc(
                                    d->entries,
                                    d->entry_size * sizeof(*d->entries));
                        }
                        e      = &d->entries[d->entry_cnt++];
                        e->key = key;
                        key    = NULL;
                }
                e->info    = info; /* takes ownership */
                e->recv_ms = recv_ms;
                memset(&info, 0, sizeof(info));
        }
        disc_advance(d, m->partition, m->offset + 1);
        pthread_cond_broadcast(&d->cond);
        pthread_mutex_unlock(&d->lock);
        kp_free(key);
        return;

advance:
        kp_free(key);
        pthread_mutex_lock(&d->lock);
        disc_advance(d, m->partition, m->offset + 1);
        pthread_mutex_unlock(&d->lock);
}

static int disc_topic_gone(rd_kafka_resp_err_t err) {
        return err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
               err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
               err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION;
}

/* Handles one consumer event.
 * @locality follower thread, without the lock */
static void disc_event(kp_discovery_t *d, rd_kafka_message_t *m) {
        if (!m->err) {
                disc_record(d, m);
                return;
        }
        pthread_mutex_lock(&d->lock);
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                /* The end of what is readable (under read_committed, past
                 * any transaction markers, which are never delivered). */
                disc_advance(d, m->partition, m->offset);
        } else {
                KP_WARN("discovery: consuming %s: %s", d->topic,
                        rd_kafka_message_errstr(m));
                if (disc_topic_gone(m->err))
                        d->lost = 1;
        }
        pthread_mutex_unlock(&d->lock);
}

/* librdkafka reports a deleted topic or partition as a generic error, not
 * on a partition: the follower then drops its assignment and looks the
 * topic up again, so that a re-created topic is read from its start.
 * @locality follower thread (inside rd_kafka_consumer_poll()), or the
 *           thread closing the consumer */
static void disc_error_cb(rd_kafka_t *rk, int err, const char *reason,
                          void *opaque) {
        kp_discovery_t *d = opaque;
        (void)rk;
        KP_WARN("discovery: %s: %s", rd_kafka_err2name(err), reason);
        if (disc_topic_gone(err)) {
                pthread_mutex_lock(&d->lock);
                d->lost = 1;
                pthread_mutex_unlock(&d->lock);
        }
}

/* Serves what is queued on the handles without waiting (errors, logs), so
 * that nothing piles up while the thread is not consuming.
 * @locality follower thread, without the lock */
static void disc_serve(kp_discovery_t *d) {
        rd_kafka_message_t *m;
        rd_kafka_poll(d->rk_end, 0);
        while ((m = rd_kafka_consumer_poll(d->rk, 0))) {
                disc_event(d, m);
                rd_kafka_message_destroy(m);
        }
}

static void *disc_main(void *arg) {
        kp_discovery_t *d  = arg;
        int waiting_logged = 0;

        pthread_mutex_lock(&d->lock);
        while (!d->stop) {
                int lost     = d->lost;
                int recheck  = d->recheck;
                int assigned = d->part_cnt > 0;
                d->lost = d->recheck = 0;
                pthread_mutex_unlock(&d->lock);

                if (lost && assigned) {
                        KP_WARN("discovery: lost %s, looking it up again",
                                d->topic);
                        disc_unassign(d);
                        assigned = 0;
                }
                if (!assigned || recheck) {
                        kp_err_t err = disc_assign(d);
                        if (err && !assigned) {
                                disc_serve(d);
                                if (!waiting_logged)
                                        KP_INFO(
                                            "discovery: waiting for topic "
                                            "%s",
                                            d->topic);
                                waiting_logged = 1;
                                int64_t until = kp_mono_ms() + KP_DISC_RETRY_MS;
                                pthread_mutex_lock(&d->lock);
                                while (!d->stop && !d->recheck &&
                                       disc_wait(d, until) != ETIMEDOUT)
                                        ;
                                continue;
                        }
                        waiting_logged = 0;
                        pthread_mutex_lock(&d->lock);
                        continue;
                }

                rd_kafka_poll(d->rk_end, 0);
                rd_kafka_message_t *m =
                    rd_kafka_consumer_poll(d->rk, KP_DISC_POLL_MS);
                if (m) {
                        disc_event(d, m);
                        rd_kafka_message_destroy(m);
                }
                pthread_mutex_lock(&d->lock);
        }
        pthread_mutex_unlock(&d->lock);
        return NULL;
}

kp_discovery_t *kp_discovery_new(const kp_app_conf_t *c, int64_t dead_after_ms,
                                 char *errstr, size_t errstr_size) {
        char rderr[512];
        pthread_condattr_t cattr;
        int r;

        if (dead_after_ms <= 0) {
                snprintf(errstr, errstr_size,
                         "discovery: dead_after_ms must be positive, not "
                         "%" PRId64,
                         dead_after_ms);
                return NULL;
        }

        rd_kafka_conf_t *conf =
            kp_kafka_conf_new(c, NULL, "kpay-discovery", errstr, errstr_size);
        if (!conf)
                return NULL;
        /* rd_kafka_assign() and rd_kafka_consumer_poll() need a consumer
         * group handle, hence a group.id; it is never joined (no subscribe)
         * and never committed to. */
        if (kp_kafka_conf_set(conf, "group.id", "kpay-discovery", errstr,
                              errstr_size) ||
            kp_kafka_conf_set(conf, "enable.auto.commit", "false", errstr,
                              errstr_size) ||
            kp_kafka_conf_set(conf, "enable.auto.offset.store", "false", errstr,
                              errstr_size) ||
            kp_kafka_conf_set(conf, "isolation.level", "read_committed", errstr,
                              errstr_size) ||
            kp_kafka_conf_set(conf, "enable.partition.eof", "true", errstr,
                              errstr_size) ||
            kp_kafka_conf_set(conf, "auto.offset.reset", "earliest", errstr,
                              errstr_size) ||
            /* Under read_committed the broker does not end a long poll when
             * commit markers make records readable, so a sync would wait
             * for the whole fetch.wait.max.ms (500 ms by default). The
             * topic is tiny: poll faster, unless -X says otherwise. */
            (!(c && kp_conf_kv_get(&c->kafka, "fetch.wait.max.ms")) &&
             kp_kafka_conf_set(conf, "fetch.wait.max.ms", "100", errstr,
                               errstr_size))) {
                rd_kafka_conf_destroy(conf);
                return NULL;
        }

        kp_discovery_t *d = kp_calloc(1, sizeof(*d));
        d->dead_after_ms  = dead_after_ms;
        rd_kafka_conf_set_error_cb(conf, disc_error_cb);
        rd_kafka_conf_set_opaque(conf, d);
        kp_topic_name(d->topic, sizeof(d->topic), c ? c->topic_prefix : NULL,
                      KP_TOPIC_METADATA);

        if ((r = pthread_mutex_init(&d->lock, NULL))) {
                snprintf(errstr, errstr_size, "discovery: mutex: %s",
                         strerror(r));
                rd_kafka_conf_destroy(conf);
                kp_free(d);
                return NULL;
        }
        if ((r = pthread_condattr_init(&cattr)) ||
            (r = pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC)) ||
            (r = pthread_cond_init(&d->cond, &cattr))) {
                snprintf(errstr, errstr_size, "discovery: condition: %s",
                         strerror(r));
                pthread_condattr_destroy(&cattr);
                pthread_mutex_destroy(&d->lock);
                rd_kafka_conf_destroy(conf);
                kp_free(d);
                return NULL;
        }
        pthread_condattr_destroy(&cattr);

        /* rd_kafka_new() takes ownership of conf only on success. */
        d->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, rderr, sizeof(rderr));
        if (!d->rk) {
                snprintf(errstr, errstr_size, "discovery: consumer: %s", rderr);
                rd_kafka_conf_destroy(conf);
                kp_discovery_destroy(d);
                return NULL;
        }
        rd_kafka_resp_err_t err = rd_kafka_poll_set_consumer(d->rk);
        if (err) {
                snprintf(errstr, errstr_size, "discovery: consumer: %s",
                         rd_kafka_err2str(err));
                kp_discovery_destroy(d);
                return NULL;
        }
        conf =
            kp_kafka_conf_new(c, NULL, "kpay-discovery", errstr, errstr_size);
        if (!conf) {
                kp_discovery_destroy(d);
                return NULL;
        }
        if (kp_kafka_conf_set(conf, "isolation.level", "read_uncommitted",
                              errstr, errstr_size)) {
                rd_kafka_conf_destroy(conf);
                kp_discovery_destroy(d);
                return NULL;
        }
        d->rk_end = rd_kafka_new(RD_KAFKA_CONSUMER, conf, rderr, sizeof(rderr));
        if (!d->rk_end) {
                snprintf(errstr, errstr_size, "discovery: consumer: %s", rderr);
                rd_kafka_conf_destroy(conf);
                kp_discovery_destroy(d);
                return NULL;
        }
        d->rkt = rd_kafka_topic_new(d->rk, d->topic, NULL);
        if (!d->rkt) {
                snprintf(errstr, errstr_size, "discovery: topic %s: %s",
                         d->topic, rd_kafka_err2str(rd_kafka_last_error()));
                kp_discovery_destroy(d);
                return NULL;
        }
        if ((r = pthread_create(&d->thread, NULL, disc_main, d))) {
                snprintf(errstr, errstr_size, "discovery: thread: %s",
                         strerror(r));
                kp_discovery_destroy(d);
                return NULL;
        }
        d->thread_started = 1;
        return d;
}

/* Milliseconds left before @p deadline_ms (CLOCK_MONOTONIC, or negative for
 * none) for one request, at most @p cap; <= 0 when the time is up. */
static int disc_left(int64_t deadline_ms, int cap) {
        if (deadline_ms < 0)
                return cap;
        int64_t left = deadline_ms - kp_mono_ms();
        return left < cap ? (int)left : cap;
}

/* Pauses after a failed request before the next try (100 ms, or less when
 * the deadline is nearer). Waits on the condition, so stop ends it early. */
static void disc_backoff(kp_discovery_t *d, int64_t deadline_ms) {
        int64_t until = kp_mono_ms() + 100;
        if (deadline_ms >= 0 && deadline_ms < until)
                until = deadline_ms;
        pthread_mutex_lock(&d->lock);
        if (!d->stop)
                disc_wait(d, until);
        pthread_mutex_unlock(&d->lock);
}

kp_err_t kp_discovery_sync(kp_discovery_t *d, int timeout_ms) {
        int64_t deadline = timeout_ms < 0 ? -1 : kp_mono_ms() + timeout_ms;
        int64_t *end     = NULL;
        int32_t cnt;
        kp_err_t ret = KP_ERR_TIMED_OUT;

        if (!d)
                return KP_ERR_INVALID_ARG;

        /* The end offsets at call time. Requests that fail (no broker yet)
         * are retried until the deadline. */
        for (;;) {
                int left = disc_left(deadline, 5000);
                if (left <= 0)
                        return KP_ERR_TIMED_OUT;
                cnt = disc_partition_count(d, left);
                if (cnt == 0)
                        return KP_OK; /* no topic: nobody published */
                if (cnt > 0)
                        break;
                disc_backoff(d, deadline);
        }

        end = kp_calloc((size_t)cnt, sizeof(*end));
        for (int32_t p = 0; p < cnt; p++) {
                for (;;) {
                        int64_t lo, hi;
                        int left = disc_left(deadline, 5000);
                        if (left <= 0)
                                goto done;
                        rd_kafka_resp_err_t err =
                            rd_kafka_query_watermark_offsets(
                                d->rk_end, d->topic, p, &lo, &hi, left);
                        if (!err) {
                                /* Nothing to read when the log is empty. */
                                end[p] = hi > lo ? hi : -1;
                                break;
                        }
                        KP_DEBUG("discovery: end offset of %s [%" PRId32
                                 "]: %s",
                                 d->topic, p, rd_kafka_err2str(err));
                        disc_backoff(d, deadline);
                }
        }

        /* Wait for the thread to reach them. */
        pthread_mutex_lock(&d->lock);
        if (d->part_cnt < cnt) {
                /* Not following yet, or the topic grew: look again now. */
                d->recheck = 1;
                pthread_cond_broadcast(&d->cond);
        }
        for (;;) {
                int reached = d->part_cnt >= cnt;
                for (int32_t p = 0; reached && p < cnt; p++)
                        if (end[p] >= 0 && d->position[p] < end[p])
                                reached = 0;
                if (reached) {
                        ret = KP_OK;
                        break;
                }
                if (d->stop || disc_wait(d, deadline) == ETIMEDOUT)
                        break;
        }
        pthread_mutex_unlock(&d->lock);
done:
        kp_free(end);
        return ret;
}

/* @locality with the lock */
static int disc_live(const kp_discovery_t *d, const kp_disc_entry_t *e,
                     int64_t now) {
        return now - e->recv_ms <= d->dead_after_ms;
}

static int cmp_by_instance(const void *a, const void *b) {
        const kp_instance_info_t *x = a, *y = b;
        int r = strcmp(x->instance, y->instance);
        return r ? r : strcmp(x->service, y->service);
}

size_t kp_discovery_instances(kp_discovery_t *d, const char *service,
                              kp_instance_info_t **listp) {
        kp_instance_info_t *list = NULL;
        size_t cnt               = 0;

        *listp = NULL;
        if (!d)
                return 0;
        pthread_mutex_lock(&d->lock);
        int64_t now = kp_mono_ms();
        if (d->entry_cnt)
                list = kp_calloc(d->entry_cnt, sizeof(*list));
        for (size_t i = 0; i < d->entry_cnt; i++) {
                const kp_disc_entry_t *e = &d->entries[i];
                if (!disc_live(d, e, now) ||
                    (service && strcmp(e->info.service, service)))
                        continue;
                kp_instance_info_copy(&list[cnt++], &e->info);
        }
        pthread_mutex_unlock(&d->lock);

        if (cnt == 0) {
                kp_free(list);
                list = NULL;
        } else {
                qsort(list, cnt, sizeof(*list), cmp_by_instance);
        }
        *listp = list;
        return cnt;
}

kp_err_t kp_discovery_owner(kp_discovery_t *d, const char *service,
                            const char *store, const void *key, size_t klen,
                            kp_instance_info_t *out, int32_t *partitionp) {
        const kp_disc_entry_t *best = NULL, *newest = NULL;
        int32_t best_partition = -1, newest_partition = -1;

        memset(out, 0, sizeof(*out));
        if (partitionp)
                *partitionp = -1;
        if (!d || !service || !store || (!key && klen))
                return KP_ERR_INVALID_ARG;

        pthread_mutex_lock(&d->lock);
        int64_t now = kp_mono_ms();
        for (size_t i = 0; i < d->entry_cnt; i++) {
                const kp_disc_entry_t *e = &d->entries[i];
                if (!disc_live(d, e, now) || strcmp(e->info.service, service) ||
                    !info_has_store(&e->info, store) ||
                    e->info.partition_count <= 0)
                        continue;
                /* Each instance routes with its own partition count, which
                 * differs between instances only while the input topics are
                 * being repartitioned. */
                int32_t p =
                    kp_partition_for_key(key, klen, e->info.partition_count);
                if (!newest || e->info.ts > newest->info.ts) {
                        newest           = e;
                        newest_partition = p;
                }
                if (!kp_instance_info_owns(&e->info, p))
                        continue;
                /* Several owners: a rebalance in progress; the one that
                 * published last knows best. Ties go to the smaller id. */
                if (!best || e->info.ts > best->info.ts ||
                    (e->info.ts == best->info.ts &&
                     strcmp(e->info.instance, best->info.instance) < 0)) {
                        best           = e;
                        best_partition = p;
                }
        }
        if (best)
                kp_instance_info_copy(out, &best->info);
        pthread_mutex_unlock(&d->lock);

        if (partitionp)
                *partitionp = best ? best_partition : newest_partition;
        return best ? KP_OK : KP_ERR_NOT_FOUND;
}

void kp_discovery_destroy(kp_discovery_t *d) {
        if (!d)
                return;
        if (d->thread_started) {
                pthread_mutex_lock(&d->lock);
                d->stop = 1;
                pthread_cond_broadcast(&d->cond);
                pthread_mutex_unlock(&d->lock);
                int r = pthread_join(d->thread, NULL);
                if (r)
                        KP_ERROR("discovery: joining the thread: %s",
                                 strerror(r));
        }
        if (d->rkt)
                rd_kafka_topic_destroy(d->rkt);
        if (d->rk) {
                rd_kafka_resp_err_t err = rd_kafka_consumer_close(d->rk);
                if (err)
                        KP_WARN("discovery: closing the consumer: %s",
                                rd_kafka_err2str(err));
                rd_kafka_destroy(d->rk);
        }
        if (d->rk_end)
                rd_kafka_destroy(d->rk_end);
        for (size_t i = 0; i < d->entry_cnt; i++) {
                kp_free(d->entries[i].key);
                kp_instance_info_clear(&d->entries[i].info);
        }
        kp_free(d->entries);
        kp_free(d->position);
        pthread_cond_destroy(&d->cond);
        pthread_mutex_destroy(&d->lock);
        kp_free(d);
}
