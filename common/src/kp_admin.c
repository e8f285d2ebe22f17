/* kp_admin.c: topic creation and verification through the Admin API. */
#include "kpay/kp_admin.h"

#include <string.h>

#include "kpay/kp_conf.h"
#include "kpay/kp_kafka.h"
#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_time.h"
#include "kpay/kp_topics.h"

void kp_topic_plan_add(kp_topic_plan_t *plan, const char *name, int partitions,
                       int replication_factor, const char *cleanup_policy,
                       const char *retention_ms) {
        plan->reqs =
            kp_realloc(plan->reqs, sizeof(*plan->reqs) * (plan->cnt + 1));
        kp_topic_req_t *r     = &plan->reqs[plan->cnt++];
        r->name               = kp_strdup(name);
        r->partitions         = partitions;
        r->replication_factor = replication_factor;
        r->cleanup_policy     = cleanup_policy;
        r->retention_ms       = retention_ms;
        r->expiring           = 0;
}

void kp_topic_plan_add_changelog(kp_topic_plan_t *plan, const char *name,
                                 int partitions, int replication_factor,
                                 const char *retention_ms) {
        kp_topic_plan_add(plan, name, partitions, replication_factor,
                          retention_ms ? "compact,delete" : "compact",
                          retention_ms);
        plan->reqs[plan->cnt - 1].expiring = retention_ms != NULL;
}

void kp_topic_plan_all(kp_topic_plan_t *plan, const char *prefix,
                       int partitions, int replication_factor,
                       const kp_proc_layout_t *const *layouts) {
        char name[256];
        for (int id = 0; id < KP_TOPIC__CNT; id++) {
                const kp_topic_spec_t *s = kp_topic_spec((kp_topic_id_t)id);
                kp_topic_name(name, sizeof(name), prefix, (kp_topic_id_t)id);
                kp_topic_plan_add(
                    plan, name, s->partitions ? s->partitions : partitions,
                    replication_factor, s->cleanup, s->retention_ms);
        }
        for (; layouts && *layouts; layouts++) {
                const kp_proc_layout_t *l = *layouts;
                for (size_t s = 0; l->stores && l->stores[s]; s++) {
                        kp_changelog_name(name, sizeof(name), prefix,
                                          l->service, l->stores[s]);
                        kp_topic_plan_add_changelog(
                            plan, name, partitions, replication_factor,
                            l->store_retention_ms ? l->store_retention_ms[s]
                                                  : NULL);
                }
        }
}

void kp_topic_plan_clear(kp_topic_plan_t *plan) {
        for (size_t i = 0; i < plan->cnt; i++)
                kp_free(plan->reqs[i].name);
        kp_free(plan->reqs);
        plan->reqs = NULL;
        plan->cnt  = 0;
}

/* Waits for the result event of one admin request on @p q. */
static rd_kafka_event_t *wait_result(rd_kafka_queue_t *q, int timeout_ms,
                                     char *errstr, size_t errstr_size) {
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms + 5000);
        if (!ev) {
                snprintf(errstr, errstr_size,
                         "no answer from the cluster within %d ms",
                         timeout_ms + 5000);
                return NULL;
        }
        if (rd_kafka_event_error(ev)) {
                snprintf(errstr, errstr_size, "%s",
                         rd_kafka_event_error_string(ev));
                rd_kafka_event_destroy(ev);
                return NULL;
        }
        return ev;
}

/* Partition counts of all topics, looked up by name in @p md. */
static int md_partitions(const struct rd_kafka_metadata *md, const char *name) {
        for (int i = 0; i < md->topic_cnt; i++)
                if (!strcmp(md->topics[i].topic, name) && !md->topics[i].err)
                        return md->topics[i].partition_cnt;
        return -1;
}

static kp_err_t create_missing(rd_kafka_t *rk, rd_kafka_queue_t *q,
                               const kp_topic_plan_t *plan, const int *missing,
                               int timeout_ms, FILE *report, char *errstr,
                               size_t errstr_size) {
        size_t cnt = 0;
        rd_kafka_NewTopic_t **nts =
            kp_calloc(plan->cnt ? plan->cnt : 1, sizeof(*nts));
        kp_err_t err = KP_OK;
        char rderr[256];

        for (size_t i = 0; i < plan->cnt; i++) {
                if (!missing[i])
                        continue;
                const kp_topic_req_t *r = &plan->reqs[i];
                rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(
                    r->name, r->partitions, r->replication_factor, rderr,
                    sizeof(rderr));
                if (!nt) {
                        snprintf(errstr, errstr_size, "topic %s: %s", r->name,
                                 rderr);
                        err = KP_ERR_INVALID_ARG;
                        goto done;
                }
                nts[cnt++] = nt;
                if (rd_kafka_NewTopic_set_config(nt, "cleanup.policy",
                                                 r->cleanup_policy) ||
                    (r->retention_ms &&
                     rd_kafka_NewTopic_set_config(nt, "retention.ms",
                                                  r->retention_ms))) {
                        snprintf(errstr, errstr_size,
                                 "topic %s: cannot set its configuration",
                                 r->name);
                        err = KP_ERR_INVALID_ARG;
                        goto done;
                }
        }
        if (!cnt)
                goto done;

        rd_kafka_AdminOptions_t *opts =
            rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
        if (rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, rderr,
                                                        sizeof(rderr)) ||
            rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, rderr,
                                                      sizeof(rderr))) {
                rd_kafka_AdminOptions_destroy(opts);
                snprintf(errstr, errstr_size, "admin options: %s", rderr);
                err = KP_ERR_INVALID_ARG;
                goto done;
        }
        rd_kafka_CreateTopics(rk, nts, cnt, opts, q);
        rd_kafka_AdminOptions_destroy(opts);

        rd_kafka_event_t *ev = wait_result(q, timeout_ms, errstr, errstr_size);
        if (!ev) {
                err = KP_ERR_KAFKA;
                goto done;
        }
        const rd_kafka_CreateTopics_result_t *res =
            rd_kafka_event_CreateTopics_result(ev);
        size_t rcnt;
        const rd_kafka_topic_result_t **trs =
            rd_kafka_CreateTopics_result_topics(res, &rcnt);
        for (size_t i = 0; i < rcnt; i++) {
                rd_kafka_resp_err_t terr = rd_kafka_topic_result_error(trs[i]);
                const char *name         = rd_kafka_topic_result_name(trs[i]);
                if (terr == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                        /* Created concurrently by someone else: it is
                         * checked like any existing topic by the caller. */
                        continue;
                }
                if (terr) {
                        if (err == KP_OK)
                                snprintf(
                                    errstr, errstr_size,
                                    "cannot create topic %s: %s", name,
                                    rd_kafka_topic_result_error_string(trs[i]));
                        if (report)
                                fprintf(
                                    report, "error   %s: %s\n", name,
                                    rd_kafka_topic_result_error_string(trs[i]));
                        err = KP_ERR_KAFKA;
                } else if (report) {
                        fprintf(report, "created %s\n", name);
                }
        }
        rd_kafka_event_destroy(ev);
done:
        for (size_t i = 0; i < cnt; i++)
                rd_kafka_NewTopic_destroy(nts[i]);
        kp_free(nts);
        return err;
}

/* Fetches cleanup.policy of each named topic into @p policies and, when
 * @p retentions is not NULL, retention.ms into it (kp_strdup'd).
 * @returns KP_ERR_NOT_FOUND when the broker that answered does not know a
 * topic (yet: in a cluster, a topic just created reaches each broker's
 * metadata a moment later), KP_ERR_KAFKA for any other error. */
static kp_err_t describe_cleanup(rd_kafka_t *rk, rd_kafka_queue_t *q,
                                 const char **names, size_t cnt,
                                 char **policies, char **retentions,
                                 int timeout_ms, char *errstr,
                                 size_t errstr_size) {
        rd_kafka_ConfigResource_t **crs = kp_calloc(cnt, sizeof(*crs));
        kp_err_t err                    = KP_OK;
        char rderr[256];

        for (size_t i = 0; i < cnt; i++)
                crs[i] = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC,
                                                     names[i]);
        rd_kafka_AdminOptions_t *opts =
            rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
        if (rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, rderr,
                                                      sizeof(rderr))) {
                snprintf(errstr, errstr_size, "admin options: %s", rderr);
                rd_kafka_AdminOptions_destroy(opts);
                err = KP_ERR_INVALID_ARG;
                goto done;
        }
        rd_kafka_DescribeConfigs(rk, crs, cnt, opts, q);
        rd_kafka_AdminOptions_destroy(opts);

        rd_kafka_event_t *ev = wait_result(q, timeout_ms, errstr, errstr_size);
        if (!ev) {
                err = KP_ERR_KAFKA;
                goto done;
        }
        const rd_kafka_DescribeConfigs_result_t *res =
            rd_kafka_event_DescribeConfigs_result(ev);
        size_t rcnt;
        const rd_kafka_ConfigResource_t **rrs =
            rd_kafka_DescribeConfigs_result_resources(res, &rcnt);
        for (size_t i = 0; i < rcnt; i++) {
                const char *name = rd_kafka_ConfigResource_name(rrs[i]);
                size_t idx;
                for (idx = 0; idx < cnt; idx++)
                        if (!strcmp(names[idx], name))
                                break;
                if (idx == cnt)
                        continue;
                rd_kafka_resp_err_t rerr =
                    rd_kafka_ConfigResource_error(rrs[i]);
                if (rerr) {
                        snprintf(errstr, errstr_size,
                                 "cannot describe topic %s: %s", name,
                                 rd_kafka_ConfigResource_error_string(rrs[i]));
                        /* A topic just created (or a broker just
                         * restarted) may not be known to the configs yet:
                         * the caller retries that one. */
                        if (rerr != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
                                err = KP_ERR_KAFKA;
                        else if (err != KP_ERR_KAFKA)
                                err = KP_ERR_NOT_FOUND;
                        continue;
                }
                size_t ecnt;
                const rd_kafka_ConfigEntry_t **entries =
                    rd_kafka_ConfigResource_configs(rrs[i], &ecnt);
                for (size_t e = 0; e < ecnt; e++) {
                        const char *en = rd_kafka_ConfigEntry_name(entries[e]);
                        const char *v  = rd_kafka_ConfigEntry_value(entries[e]);
                        char **dst     = NULL;
                        if (!strcmp(en, "cleanup.policy"))
                                dst = &policies[idx];
                        else if (retentions && !strcmp(en, "retention.ms"))
                                dst = &retentions[idx];
                        if (dst) {
                                kp_free(*dst);
                                *dst = kp_strdup(v ? v : "");
                        }
                }
        }
        rd_kafka_event_destroy(ev);
done:
        for (size_t i = 0; i < cnt; i++)
                rd_kafka_ConfigResource_destroy(crs[i]);
        kp_free(crs);
        return err;
}

/* cleanup.policy is a list; compare it as a set of words. */
static int policy_equal(const char *a, const char *b) {
        int a_compact = strstr(a, "compact") != NULL;
        int a_delete  = strstr(a, "delete") != NULL;
        int b_compact = strstr(b, "compact") != NULL;
        int b_delete  = strstr(b, "delete") != NULL;
        return a_compact == b_compact && a_delete == b_delete;
}

/* Whether an expiring store's changelog keeps its keys long enough:
 * retention.ms @p have (-1: forever) against the minimum @p want. */
static int retention_enough(const char *have, const char *want) {
        int64_t h, w;
        if (!want || kp_parse_int64(want, &w))
                return 1;
        if (!have || kp_parse_int64(have, &h))
                return 0;
        return h < 0 || h >= w;
}

/* Compares each topic of @p plan with what the cluster has (@p md, the
 * cleanup policies in @p policies, the retentions in @p retentions);
 * reports each line to @p report.
 * @returns KP_OK or KP_ERR_TOPIC_MISMATCH naming the first mismatch. */
static kp_err_t verify_layout(const kp_topic_plan_t *plan,
                              const struct rd_kafka_metadata *md,
                              char *const *policies, char *const *retentions,
                              const int *missing, FILE *report, char *errstr,
                              size_t errstr_size) {
        kp_err_t err = KP_OK;
        for (size_t i = 0; i < plan->cnt; i++) {
                const kp_topic_req_t *r = &plan->reqs[i];
                int parts               = md_partitions(md, r->name);
                char why[200]           = "";
                int compact_only        = 0;
                if (parts < 0)
                        snprintf(why, sizeof(why),
                                 "does not exist after creation");
                else if (parts != r->partitions)
                        snprintf(why, sizeof(why),
                                 "has %d partitions, kpay expects %d", parts,
                                 r->partitions);
                else if (!policies[i])
                        snprintf(why, sizeof(why),
                                 "has no cleanup.policy in its description");
                else if (r->expiring && policy_equal(policies[i], "compact"))
                        compact_only = 1;
                else if (!policy_equal(policies[i], r->cleanup_policy))
                        snprintf(why, sizeof(why),
                                 "has cleanup.policy=%s, kpay expects %s",
                                 policies[i], r->cleanup_policy);
                else if (r->expiring &&
                         !retention_enough(retentions[i], r->retention_ms))
                        snprintf(why, sizeof(why),
                                 "has retention.ms=%s, kpay needs at least %s "
                                 "(its keys must outlive their window)",
                                 retentions[i] ? retentions[i] : "?",
                                 r->retention_ms);
                if (compact_only) {
                        KP_WARN(
                            "topic %s has cleanup.policy=compact; kpay "
                            "expects %s with retention.ms >= %s, so that "
                            "expired keys leave it (they stay until then)",
                            r->name, r->cleanup_policy, r->retention_ms);
                        if (report)
                                fprintf(report,
                                        "warn    %s (%d partitions, compact: "
                                        "kpay expects %s, retention.ms >= "
                                        "%s)\n",
                                        r->name, parts, r->cleanup_policy,
                                        r->retention_ms);
                } else if (why[0]) {
                        if (err == KP_OK)
                                snprintf(errstr, errstr_size, "topic %s %s",
                                         r->name, why);
                        if (report)
                                fprintf(report, "error   %s %s\n", r->name,
                                        why);
                        err = KP_ERR_TOPIC_MISMATCH;
                } else if (report && !missing[i]) {
                        fprintf(report, "ok      %s (%d partitions, %s)\n",
                                r->name, parts, r->cleanup_policy);
                }
        }
        return err;
}

kp_err_t kp_admin_ensure_topics(rd_kafka_t *rk, const kp_topic_plan_t *plan,
                                int timeout_ms, FILE *report, char *errstr,
                                size_t errstr_size) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_queue_t *q                = rd_kafka_queue_new(rk);
        int *missing = kp_calloc(plan->cnt ? plan->cnt : 1, sizeof(int));
        const char **names =
            kp_calloc(plan->cnt ? plan->cnt : 1, sizeof(*names));
        char **policies =
            kp_calloc(plan->cnt ? plan->cnt : 1, sizeof(*policies));
        char **retentions =
            kp_calloc(plan->cnt ? plan->cnt : 1, sizeof(*retentions));
        kp_err_t err       = KP_OK;
        size_t missing_cnt = 0;

        errstr[0] = '\0';
        rd_kafka_resp_err_t rerr =
            rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms);
        if (rerr) {
                snprintf(errstr, errstr_size, "cannot list topics: %s",
                         rd_kafka_err2str(rerr));
                err = rerr == RD_KAFKA_RESP_ERR__TIMED_OUT ? KP_ERR_TIMED_OUT
                                                           : KP_ERR_KAFKA;
                goto done;
        }
        for (size_t i = 0; i < plan->cnt; i++) {
                if (md_partitions(md, plan->reqs[i].name) < 0) {
                        missing[i] = 1;
                        missing_cnt++;
                }
        }
        rd_kafka_metadata_destroy(md);
        md = NULL;

        if (missing_cnt &&
            (err = create_missing(rk, q, plan, missing, timeout_ms, report,
                                  errstr, errstr_size)))
                goto done;

        /* Check every topic, including those just created: a concurrent
         * creator may have made them differently. Newly created topics can
         * take a moment to appear in metadata (longer on a busy broker):
         * look again with a backoff, up to the timeout. */
        kp_backoff_t mb;
        kp_backoff_init(&mb, 100, 1000, timeout_ms);
        for (;;) {
                rerr = rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms);
                if (rerr) {
                        snprintf(errstr, errstr_size, "cannot list topics: %s",
                                 rd_kafka_err2str(rerr));
                        err = KP_ERR_KAFKA;
                        goto done;
                }
                size_t absent = 0;
                for (size_t i = 0; i < plan->cnt; i++)
                        if (md_partitions(md, plan->reqs[i].name) < 0)
                                absent++;
                if (!absent || kp_backoff_wait(&mb, NULL))
                        break;
                rd_kafka_metadata_destroy(md);
                md = NULL;
                rd_kafka_poll(rk, 0);
        }

        for (size_t i = 0; i < plan->cnt; i++)
                names[i] = plan->reqs[i].name;
        kp_backoff_t b;
        kp_backoff_init(&b, 100, 1000, timeout_ms);
        while ((err = describe_cleanup(rk, q, names, plan->cnt, policies,
                                       retentions, timeout_ms, errstr,
                                       errstr_size)) == KP_ERR_NOT_FOUND &&
               kp_backoff_wait(&b, NULL) == KP_OK)
                ;
        if (err)
                goto done;

        err = verify_layout(plan, md, policies, retentions, missing, report,
                            errstr, errstr_size);

done:
        if (md)
                rd_kafka_metadata_destroy(md);
        for (size_t i = 0; i < plan->cnt; i++) {
                kp_free(policies[i]);
                kp_free(retentions[i]);
        }
        kp_free(policies);
        kp_free(retentions);
        kp_free(names);
        kp_free(missing);
        rd_kafka_queue_destroy(q);
        return err;
}

kp_err_t kp_admin_describe_topic(rd_kafka_t *rk, const char *topic,
                                 int timeout_ms, int *partitionsp,
                                 char *cleanup, size_t cleanup_size,
                                 char *errstr, size_t errstr_size) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t rerr =
            rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms);
        if (rerr) {
                snprintf(errstr, errstr_size, "cannot list topics: %s",
                         rd_kafka_err2str(rerr));
                return KP_ERR_KAFKA;
        }
        int parts = md_partitions(md, topic);
        rd_kafka_metadata_destroy(md);
        if (parts < 0) {
                snprintf(errstr, errstr_size, "topic %s does not exist", topic);
                return KP_ERR_NOT_FOUND;
        }
        *partitionsp        = parts;
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        char *policy        = NULL;
        kp_err_t err        = describe_cleanup(rk, q, &topic, 1, &policy, NULL,
                                               timeout_ms, errstr, errstr_size);
        rd_kafka_queue_destroy(q);
        if (!err)
                snprintf(cleanup, cleanup_size, "%s", policy ? policy : "");
        kp_free(policy);
        return err;
}

/* ------------------------------------------------------------------------
 * Reading partitions to their end (kpay-admin trace and dlq). */

int32_t kp_admin_partition_count(rd_kafka_t *rk, const char *topic,
                                 int timeout_ms) {
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
        const struct rd_kafka_metadata *md;
        int32_t cnt = -1;
        if (!rkt)
                return -1;
        if (rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms) ==
            RD_KAFKA_RESP_ERR_NO_ERROR) {
                if (md->topic_cnt == 1 && !md->topics[0].err)
                        cnt = md->topics[0].partition_cnt;
                rd_kafka_metadata_destroy(md);
        }
        rd_kafka_topic_destroy(rkt);
        return cnt;
}

/* One partition of a scan. */
typedef struct scan_part_s {
        int32_t partition;
        int64_t end, read;
        int done;
} scan_part_t;

static rd_kafka_t *scan_consumer(const kp_app_conf_t *c, char *errstr,
                                 size_t errstr_size) {
        static const kp_kafka_prop_t props[] = {
            /* assign() only: the group is never joined nor committed. */
            {"group.id", "kpay-admin-scan", KP_PROP_DEFAULT},
            {"enable.auto.commit", "false", KP_PROP_REQUIRE},
            {"enable.auto.offset.store", "false", KP_PROP_REQUIRE},
            {"isolation.level", "read_committed", KP_PROP_REQUIRE},
            {"enable.partition.eof", "true", KP_PROP_REQUIRE},
            {"fetch.wait.max.ms", "100", KP_PROP_DEFAULT},
            {NULL},
        };
        rd_kafka_conf_t *conf = kp_kafka_conf_build(c, "kpay-admin-scan", props,
                                                    errstr, errstr_size);
        if (!conf)
                return NULL;
        char rderr[512];
        rd_kafka_t *rk =
            rd_kafka_new(RD_KAFKA_CONSUMER, conf, rderr, sizeof(rderr));
        if (!rk) {
                rd_kafka_conf_destroy(conf);
                snprintf(errstr, errstr_size, "cannot create a consumer: %s",
                         rderr);
        }
        return rk;
}

/* Marks @p p done when the consumer's position reached its end. */
static void scan_check_end(rd_kafka_t *rk, const char *topic, scan_part_t *p) {
        rd_kafka_topic_partition_list_t *l =
            rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, topic, p->partition);
        if (!rd_kafka_position(rk, l) && l->elems[0].offset >= p->end)
                p->done = 1;
        rd_kafka_topic_partition_list_destroy(l);
}

kp_err_t kp_admin_scan(const kp_app_conf_t *c, const kp_admin_scan_t *s,
                       kp_admin_scan_cb *cb, void *opaque, int64_t *scannedp,
                       int *truncatedp, char *errstr, size_t errstr_size) {
        int64_t deadline = kp_mono_ms() + s->timeout_ms, scanned = 0;
        kp_err_t err = KP_OK;
        size_t cnt, left = 0;
        scan_part_t *parts;
        if (scannedp)
                *scannedp = 0;
        if (truncatedp)
                *truncatedp = 0;
        rd_kafka_t *rk = scan_consumer(c, errstr, errstr_size);
        if (!rk)
                return KP_ERR_KAFKA;
        if (s->partitions) {
                cnt   = s->partition_cnt;
                parts = kp_calloc(cnt ? cnt : 1, sizeof(*parts));
                for (size_t i = 0; i < cnt; i++)
                        parts[i].partition = s->partitions[i];
        } else {
                int32_t n =
                    kp_admin_partition_count(rk, s->topic, s->timeout_ms);
                if (n < 0) {
                        snprintf(errstr, errstr_size,
                                 "topic %s does not exist or the cluster "
                                 "does not answer",
                                 s->topic);
                        rd_kafka_destroy(rk);
                        return KP_ERR_NOT_FOUND;
                }
                cnt   = (size_t)n;
                parts = kp_calloc(cnt ? cnt : 1, sizeof(*parts));
                for (size_t i = 0; i < cnt; i++)
                        parts[i].partition = (int32_t)i;
        }
        rd_kafka_topic_partition_list_t *assign =
            rd_kafka_topic_partition_list_new((int)cnt);
        for (size_t i = 0; i < cnt; i++) {
                int64_t lo, hi;
                rd_kafka_resp_err_t rerr = rd_kafka_query_watermark_offsets(
                    rk, s->topic, parts[i].partition, &lo, &hi, s->timeout_ms);
                if (rerr) {
                        snprintf(errstr, errstr_size, "%s [%d]: %s", s->topic,
                                 (int)parts[i].partition,
                                 rd_kafka_err2str(rerr));
                        err = KP_ERR_KAFKA;
                        goto out;
                }
                parts[i].end = hi;
                rd_kafka_topic_partition_t *tp =
                    rd_kafka_topic_partition_list_add(assign, s->topic,
                                                      parts[i].partition);
                tp->offset = s->since_ms > 0 ? s->since_ms : lo;
                if (hi <= lo)
                        parts[i].done = 1;
                else
                        left++;
        }
        if (s->since_ms > 0 && left) {
                rd_kafka_resp_err_t rerr =
                    rd_kafka_offsets_for_times(rk, assign, s->timeout_ms);
                if (rerr) {
                        snprintf(errstr, errstr_size,
                                 "%s: offsets for time %lld: %s", s->topic,
                                 (long long)s->since_ms,
                                 rd_kafka_err2str(rerr));
                        err = KP_ERR_KAFKA;
                        goto out;
                }
                for (size_t i = 0; i < cnt; i++) {
                        /* No record at or after the time: nothing to read. */
                        if (assign->elems[i].offset < 0 && !parts[i].done) {
                                parts[i].done = 1;
                                left--;
                        }
                }
        }
        /* Assign only what has something to read. */
        rd_kafka_topic_partition_list_t *todo =
            rd_kafka_topic_partition_list_new((int)cnt);
        for (size_t i = 0; i < cnt; i++)
                if (!parts[i].done)
                        rd_kafka_topic_partition_list_add(todo, s->topic,
                                                          parts[i].partition)
                            ->offset = assign->elems[i].offset;
        rd_kafka_resp_err_t aerr = todo->cnt ? rd_kafka_assign(rk, todo) : 0;
        rd_kafka_topic_partition_list_destroy(todo);
        if (aerr) {
                snprintf(errstr, errstr_size, "%s: assign: %s", s->topic,
                         rd_kafka_err2str(aerr));
                err = KP_ERR_KAFKA;
                goto out;
        }
        int stop = 0;
        while (left && !stop) {
                if (kp_mono_ms() > deadline) {
                        snprintf(errstr, errstr_size,
                                 "%s: not read to its end within %d ms",
                                 s->topic, s->timeout_ms);
                        err = KP_ERR_TIMED_OUT;
                        break;
                }
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
                scan_part_t *p        = NULL;
                if (m)
                        for (size_t i = 0; i < cnt && !p; i++)
                                if (parts[i].partition == m->partition)
                                        p = &parts[i];
                if (m && m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                        /* A lost connection and the like are retried by
                         * librdkafka (the deadline bounds the wait); a
                         * missing topic or partition is not. */
                        rd_kafka_resp_err_t e = m->err;
                        if (e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                            e == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION ||
                            e == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
                            e == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
                            e == RD_KAFKA_RESP_ERR__FATAL) {
                                snprintf(errstr, errstr_size, "%s: %s",
                                         s->topic, rd_kafka_message_errstr(m));
                                rd_kafka_message_destroy(m);
                                err = KP_ERR_KAFKA;
                                break;
                        }
                        KP_DEBUG("%s: %s (retried)", s->topic,
                                 rd_kafka_message_errstr(m));
                        rd_kafka_message_destroy(m);
                        m = NULL;
                }
                if (m && !m->err && p && !p->done) {
                        scanned++;
                        p->read++;
                        if (m->offset < p->end && cb(m, opaque))
                                stop = 1;
                        if (s->max_per_partition > 0 &&
                            p->read >= s->max_per_partition && !p->done) {
                                if (truncatedp)
                                        *truncatedp = 1;
                                p->done = 1;
                                left--;
                        }
                }
                if (m)
                        rd_kafka_message_destroy(m);
                /* Also without a message: a partition whose last offsets
                 * are transaction markers ends with no record. */
                for (size_t i = 0; i < cnt; i++) {
                        if (parts[i].done)
                                continue;
                        scan_check_end(rk, s->topic, &parts[i]);
                        if (parts[i].done)
                                left--;
                }
        }
out:
        rd_kafka_topic_partition_list_destroy(assign);
        kp_free(parts);
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        if (scannedp)
                *scannedp = scanned;
        return err;
}
