/* kp_proc_clients.c: the processor's Kafka clients, each built from a
 * table of {property, value, require|default} (docs/runtime.md, "Kafka
 * client properties"), and what must hold before the loop starts: the
 * inputs exist and are co-partitioned, the changelogs exist, transactions
 * are initialized, the consumer has subscribed. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "kp_proc_int.h"
#include "kpay/kp_admin.h"
#include "kpay/kp_kafka.h"
#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_time.h"

/* Creates a client of @p type from @p props; lists it on /v1/config. */
static rd_kafka_t *new_client(kp_proc_t *proc, rd_kafka_type_t type,
                              const char *role, const kp_kafka_prop_t *props,
                              int callbacks) {
        char errstr[512], cid[300];
        snprintf(cid, sizeof(cid), "kpay-%s-%s", proc->service,
                 proc->conf->instance_id);
        rd_kafka_conf_t *conf =
            kp_kafka_conf_build(proc->conf, cid, props, errstr, sizeof(errstr));
        if (!conf) {
                KP_ERROR("Kafka %s: %s", role, errstr);
                return NULL;
        }
        if (callbacks == 1) {
                rd_kafka_conf_set_dr_msg_cb(conf, proc_dr_msg_cb);
        } else if (callbacks == 2) {
                rd_kafka_conf_set_rebalance_cb(conf, proc_rebalance_cb);
                rd_kafka_conf_set_stats_cb(conf, proc_stats_cb);
        }
        rd_kafka_conf_set_opaque(conf, proc);
        rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
        if (!rk) {
                rd_kafka_conf_destroy(conf);
                KP_ERROR("Kafka %s: %s", role, errstr);
                return NULL;
        }
        kp_service_add_client(proc->svc, role, rk);
        return rk;
}

/* The transactional producer: every output, changelog record and dead
 * letter of the instance. */
static kp_err_t make_producer(kp_proc_t *proc) {
        char tto[32], mto[32];
        snprintf(tto, sizeof(tto), "%" PRId64,
                 proc->pconf.transaction_timeout_ms);
        snprintf(mto, sizeof(mto), "%" PRId64,
                 proc->pconf.transaction_timeout_ms - 500);
        const kp_kafka_prop_t props[] = {
            /* Exactly once: the id fences older incarnations. */
            {"transactional.id", proc->txn_id, KP_PROP_REQUIRE},
            /* --transaction-timeout-ms sets it; message.timeout.ms must stay
             * below it, or a commit can report failure for a commit that
             * happened. */
            {"transaction.timeout.ms", tto, KP_PROP_REQUIRE},
            {"message.timeout.ms", mto, KP_PROP_REQUIRE},
            /* Keyed routing must agree with the Java client and the
             * readers' kp_partition_for_key(). */
            {"partitioner", "murmur2_random", KP_PROP_REQUIRE},
            /* Nothing is visible to a read_committed reader before the
             * commit, and the commit flushes (rd_kafka_flush() ignores
             * linger.ms): lingering as long as a transaction lasts costs
             * no latency and makes one batch per partition and commit
             * instead of one per 5 ms, which is most of the broker's work
             * per payment (bench/README.md). As Kafka Streams does
             * (linger.ms=100 by default). */
            {"linger.ms", "100", KP_PROP_DEFAULT},
            /* The transaction requests of back-to-back commits meet
             * CONCURRENT_TRANSACTIONS while the broker still completes the
             * previous commit, and are retried after this long: 100 ms
             * (librdkafka's default) made every such commit ~100 ms. */
            {"retry.backoff.ms", "5", KP_PROP_DEFAULT},
            /* What waits to be sent (1 GiB by default): a full queue makes
             * proc_produce() serve deliveries and try again. */
            {"queue.buffering.max.kbytes", "16384", KP_PROP_DEFAULT},
            /* A commit's flush sends one batch to every partition the
             * transaction wrote (its outputs' and its changelogs'): in one
             * ProduceRequest per broker, not one per partition, five at a
             * time, each verified by the broker on its own (KIP-890). The
             * property is kpay's librdkafka build's (docs/runtime.md). */
            {"produce.request.max.partitions", "1000",
             KP_PROP_DEFAULT_IF_KNOWN},
            {NULL},
        };
        proc->producer =
            new_client(proc, RD_KAFKA_PRODUCER, "producer", props, 1);
        return proc->producer ? KP_OK : KP_ERR_CONFIG;
}

/* The restorer: assign-only, read_committed, replays changelogs. */
static kp_err_t make_restorer(kp_proc_t *proc) {
        /* librdkafka's assign() wants a group.id even though this consumer
         * never joins a group nor commits. */
        char *rgroup                  = kp_asprintf("%s-restore", proc->txn_id);
        const kp_kafka_prop_t props[] = {
            {"group.id", rgroup, KP_PROP_REQUIRE},
            {"isolation.level", "read_committed", KP_PROP_REQUIRE},
            {"enable.auto.commit", "false", KP_PROP_REQUIRE},
            {"enable.partition.eof", "false", KP_PROP_REQUIRE},
            /* A start offset that vanished must never silently become
             * "the end": that would skip records. */
            {"auto.offset.reset", "error", KP_PROP_REQUIRE},
            /* Larger than the input's: the restore rate is fetch-bound. */
            KP_KAFKA_CONSUMER_MEMORY("10000", "8192"),
            {NULL},
        };
        proc->restorer =
            new_client(proc, RD_KAFKA_CONSUMER, "restorer", props, 0);
        kp_free(rgroup);
        return proc->restorer ? KP_OK : KP_ERR_CONFIG;
}

/* The input consumer: the group, manual offsets (they travel in the
 * transaction), read_committed. */
static kp_err_t make_consumer(kp_proc_t *proc) {
        /* Cooperative-sticky keeps partitions in place during a rebalance,
         * but it does not co-partition several topics: with more than one
         * input, partition p of every input must go to the same instance,
         * which the range assignor guarantees (docs/runtime.md). */
        const char *assignor =
            proc->input_cnt > 1 ? "range" : "cooperative-sticky";
        const kp_kafka_prop_t props[] = {
            {"group.id", proc->group_id, KP_PROP_REQUIRE},
            {"isolation.level", "read_committed", KP_PROP_REQUIRE},
            {"enable.auto.commit", "false", KP_PROP_REQUIRE},
            {"enable.auto.offset.store", "false", KP_PROP_REQUIRE},
            /* A new group reads every record ever written, never skips. */
            {"auto.offset.reset", "earliest", KP_PROP_REQUIRE},
            {"partition.assignment.strategy", assignor, KP_PROP_REQUIRE},
            {"group.instance.id",
             proc->pconf.static_membership ? proc->conf->instance_id : NULL,
             KP_PROP_REQUIRE},
            {"session.timeout.ms", "10000", KP_PROP_DEFAULT},
            {"heartbeat.interval.ms", "1000", KP_PROP_DEFAULT},
            {"statistics.interval.ms", "5000", KP_PROP_DEFAULT},
            /* A resumed (paused or rate-limited) input is fetched again
             * only when the outstanding fetch returns: bound its wait. A
             * fetch returns as soon as committed records are there, so a
             * shorter wait only adds empty fetches (10 ms was slower). */
            {"fetch.wait.max.ms", "100", KP_PROP_DEFAULT},
            KP_KAFKA_CONSUMER_MEMORY("2000", "1024"),
            {NULL},
        };
        proc->consumer =
            new_client(proc, RD_KAFKA_CONSUMER, "consumer", props, 2);
        if (!proc->consumer)
                return KP_ERR_CONFIG;
        rd_kafka_resp_err_t err = rd_kafka_poll_set_consumer(proc->consumer);
        if (err) {
                KP_ERROR("Kafka consumer: %s", rd_kafka_err2str(err));
                return KP_ERR_KAFKA;
        }
        return KP_OK;
}

/* The partition count of the inputs, which must exist and agree. */
static kp_err_t input_partitions(kp_proc_t *proc, int32_t *cntp) {
        const struct rd_kafka_metadata *md;
        rd_kafka_resp_err_t err =
            rd_kafka_metadata(proc->producer, 1, NULL, &md, 30000);
        if (err) {
                KP_ERROR("listing topics: %s", rd_kafka_err2str(err));
                return KP_ERR_KAFKA;
        }
        kp_err_t result = KP_OK;
        int32_t cnt     = -1;
        for (int i = 0; i < proc->input_cnt && !result; i++) {
                const char *name = proc->topic_names[proc->input_ids[i]];
                int n            = -1;
                for (int t = 0; t < md->topic_cnt; t++)
                        if (!strcmp(md->topics[t].topic, name) &&
                            !md->topics[t].err)
                                n = md->topics[t].partition_cnt;
                if (n < 0) {
                        KP_ERROR(
                            "input topic %s does not exist (create the "
                            "topics with `kpay-admin topics` or "
                            "`./kpay topics`)",
                            name);
                        result = KP_ERR_CONFIG;
                } else if (cnt >= 0 && n != cnt) {
                        KP_ERROR(
                            "input topics %s and %s have %d and %d "
                            "partitions: they must be co-partitioned",
                            proc->topic_names[proc->input_ids[0]], name,
                            (int)cnt, n);
                        result = KP_ERR_CONFIG;
                }
                cnt = n;
        }
        rd_kafka_metadata_destroy(md);
        *cntp = cnt;
        return result;
}

/* Learns the partition count and creates the tasks table. */
static kp_err_t setup_partitions(kp_proc_t *proc) {
        int32_t cnt;
        kp_err_t err = input_partitions(proc, &cnt);
        if (err)
                return err;
        if (cnt != proc->conf->partitions)
                KP_WARN(
                    "the input topics have %d partitions, --partitions "
                    "says %d: using %d (the changelogs follow the inputs)",
                    (int)cnt, (int)proc->conf->partitions, (int)cnt);
        /* HTTP threads may already be asking: publish both at once. */
        task_t **tasks   = kp_calloc((size_t)cnt, sizeof(*tasks));
        proc->info_parts = kp_calloc((size_t)cnt, sizeof(*proc->info_parts));
        proc->restores   = kp_calloc((size_t)cnt * (size_t)proc->store_cnt + 1,
                                     sizeof(*proc->restores));
        pthread_rwlock_wrlock(&proc->tasks_lock);
        proc->tasks         = tasks;
        proc->partition_cnt = cnt;
        pthread_rwlock_unlock(&proc->tasks_lock);
        return KP_OK;
}

/* The changelogs, created as the inputs are partitioned when missing. */
static kp_err_t ensure_changelogs(kp_proc_t *proc) {
        char errstr[512];
        kp_topic_plan_t plan   = {0};
        const char *const *ret = proc->def.layout->store_retention_ms;
        for (int s = 0; s < proc->store_cnt; s++)
                kp_topic_plan_add_changelog(
                    &plan, proc->changelogs[s], proc->partition_cnt,
                    (int)proc->conf->replication_factor, ret ? ret[s] : NULL);
        kp_err_t err = kp_admin_ensure_topics(proc->producer, &plan, 30000,
                                              NULL, errstr, sizeof(errstr));
        kp_topic_plan_clear(&plan);
        if (err)
                KP_ERROR("changelog topics: %s", errstr);
        return err;
}

static kp_err_t init_transactions(kp_proc_t *proc) {
        rd_kafka_error_t *error;
        kp_backoff_t b;
        kp_backoff_init(&b, 100, 2000, proc->pconf.retry_deadline_ms);
        while ((error = rd_kafka_init_transactions(proc->producer, 60000))) {
                kp_err_t w = KP_ERR_KAFKA;
                if (rd_kafka_error_is_retriable(error))
                        w = proc_retry_wait(&b, kp_app_running,
                                            "init_transactions",
                                            rd_kafka_error_string(error));
                else
                        KP_ERROR("init_transactions: %s",
                                 rd_kafka_error_string(error));
                rd_kafka_error_destroy(error);
                if (w)
                        return KP_ERR_KAFKA;
        }
        return KP_OK;
}

static kp_err_t subscribe(kp_proc_t *proc) {
        rd_kafka_topic_partition_list_t *subs =
            rd_kafka_topic_partition_list_new(proc->input_cnt);
        for (int i = 0; i < proc->input_cnt; i++)
                rd_kafka_topic_partition_list_add(
                    subs, proc->topic_names[proc->input_ids[i]],
                    RD_KAFKA_PARTITION_UA);
        rd_kafka_resp_err_t err = rd_kafka_subscribe(proc->consumer, subs);
        rd_kafka_topic_partition_list_destroy(subs);
        if (err) {
                KP_ERROR("subscribing: %s", rd_kafka_err2str(err));
                return KP_ERR_KAFKA;
        }
        return KP_OK;
}

kp_err_t proc_clients_start(kp_proc_t *proc) {
        kp_err_t err;
        if ((err = make_producer(proc)) || (err = make_restorer(proc)))
                return err;
        char why[700];
        if ((err = kp_kafka_wait_ready_reason(proc->producer,
                                              proc->conf->bootstrap_servers,
                                              60000, why, sizeof(why)))) {
                KP_ERROR("%s", why);
                return err;
        }
        if ((err = setup_partitions(proc)) || (err = ensure_changelogs(proc)) ||
            (err = init_transactions(proc)) || (err = make_consumer(proc)) ||
            (err = subscribe(proc)))
                return err;
        KP_INFO(
            "started: group %s, transactional.id %s, %d partitions, "
            "%s assignment, HTTP on %s",
            proc->group_id, proc->txn_id, (int)proc->partition_cnt,
            proc->input_cnt > 1 ? "range" : "cooperative-sticky",
            kp_service_endpoint(proc->svc));
        return KP_OK;
}
