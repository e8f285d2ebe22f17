/* merge.h: kpay-web's pure logic (no Kafka, no HTTP): which partitions an
 * answer misses, the merge of the instances' store pages into one page in
 * key order with one global cursor, the merge of kpay-metrics' windows and
 * slowest lists over instances, and the safe preview of dead-letter bytes.
 * Unit-tested in tests/unit/test_web.c. */
#ifndef KPAY_WEB_MERGE_H
#define KPAY_WEB_MERGE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "kpay/kp_err.h"

/** What one instance contributes to coverage. */
typedef struct web_cover_s {
        const int32_t *partitions; /**< it owns (InstanceInfo) */
        size_t partition_cnt;
        int answered; /**< 1: it answered in time, and its answer counts */
} web_cover_t;

/**
 * @brief The partitions of 0..@p partition_count-1 that no answering
 *        instance owns, ascending, into @p out (room for partition_count).
 * @returns their number.
 */
size_t web_missing_partitions(const web_cover_t *inst, size_t cnt,
                              int32_t partition_count, int32_t *out);

/** One item of a store scan page (the runtime's /v1/stores/{store}). */
typedef struct web_item_s {
        const char *key;
        size_t klen;
        int32_t partition;
        json_t *value; /**< borrowed */
} web_item_t;

/**
 * @brief Parses the scan cursor "<partition>:<key>" (the runtime's, and
 *        kpay-web's global one, which is the same: the position after the
 *        last item returned).
 * @returns 0 with *partp and *keyp (pointing into @p cursor), or -1.
 */
int web_cursor_parse(const char *cursor, int32_t *partp, const char **keyp);

/** @brief The cursor of @p it, kp_malloc()ed. */
char *web_cursor_of(const web_item_t *it);

/** What one instance answered for a page. */
typedef struct web_page_s {
        web_item_t *items; /**< in the runtime's order: key, then partition */
        size_t cnt;
        int more; /**< its answer had a "next" */
} web_page_t;

/**
 * @brief Merges the instances' pages (each the first items after the same
 *        cursor) into one: the union in (key, partition) order, an item
 *        two instances both returned (a partition moving) once, only keys
 *        starting with @p prefix (NULL or "": all), at most @p limit.
 * @param out room for the sum of the pages' counts; receives the page.
 * @param morep 1 when there are items after the page: then the next
 *        cursor is web_cursor_of() the page's last item.
 * @returns the number of items in @p out.
 */
size_t web_page_merge(const web_page_t *pages, size_t page_cnt,
                      const char *prefix, size_t limit, web_item_t *out,
                      int *morep);

/**
 * @brief The cursor to start a prefix listing at: every key >= @p prefix.
 *        The runtime's cursor "<p>:<k>" means keys > k, and k itself on
 *        partitions > p; @p prefix itself lives on partition
 *        @p prefix_partition only. So the cursor is "<pp-1>:<prefix>" and,
 *        when pp is 0, the key @p prefix must be looked up on its own
 *        (*lookupp = 1) and the cursor is "0:<prefix>".
 * @returns the cursor, kp_malloc()ed.
 */
char *web_prefix_cursor(const char *prefix, int32_t prefix_partition,
                        int *lookupp);

/**
 * @brief Merges kpay-metrics' /v1/metrics/windows answers (@p answers,
 *        JSON objects, NULL for an instance that did not answer) into one
 *        {"size","from","to","windows":[...]} with the windows of the same
 *        start merged (metrics_window_merge()) and judged again against
 *        the objectives @p obj_json (an answer's "objectives" from
 *        /v1/metrics/sla, or NULL: each window's own "sla" is dropped).
 * @returns a new object, or NULL with a reason (a window that does not
 *          parse, an overflow).
 */
json_t *web_merge_windows(json_t *const *answers, size_t cnt,
                          const json_t *obj_json, char *errstr,
                          size_t errstr_size);

/**
 * @brief The SLA verdicts of kpay-metrics' /v1/metrics/sla, computed over
 *        every instance: @p minutes is a merged /v1/metrics/windows answer
 *        of size 1m (web_merge_windows()) that covers the 15 minutes
 *        before the minute of @p now_ms and that minute; @p obj_json the
 *        objectives.
 * @returns {"objectives","now_ms","periods":{"1m","5m","15m"},
 *          "current_minute"}, or NULL with a reason.
 */
json_t *web_sla_of(const json_t *minutes, const json_t *obj_json,
                   int64_t now_ms, char *errstr, size_t errstr_size);

/**
 * @brief Merges /v1/metrics/slowest answers: the @p max slowest of their
 *        union (ties by id), {"minute_ms","items":[...]}.
 * @returns a new object, or NULL with a reason.
 */
json_t *web_merge_slowest(json_t *const *answers, size_t cnt, size_t max,
                          char *errstr, size_t errstr_size);

/**
 * @brief A printable preview of @p len bytes: printable ASCII as it is
 *        (backslash doubled), every other byte as \xHH, cut so that the
 *        preview is at most @p max bytes long (never inside an escape).
 * @returns a kp_malloc()ed string.
 */
char *web_preview(const void *buf, size_t len, size_t max);

#endif /* KPAY_WEB_MERGE_H */
