/* kp_proc_txn.c: the processor's Kafka transactions (docs/runtime.md,
 * "Exactly once"): begin, produce, commit (changelogs, offsets, then the
 * stores), abort (drop the overlays, rewind the inputs). */
#include <inttypes.h>
#include <stdint.h>
#include <string.h>

#include "kp_proc_int.h"
#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_time.h"

static const char *const txn_names[KP_TXN__CNT] = {
#define KP__TXN_NAME(name) #name,
    KP_TXN_STATE_TABLE(KP__TXN_NAME)
#undef KP__TXN_NAME
};

const char *kp_txn_state2str(kp_txn_state_t state) {
        if ((int)state < 0 || state >= KP_TXN__CNT)
                return "UNKNOWN";
        return txn_names[state];
}

int kp_txn_transition_valid(kp_txn_state_t from, kp_txn_state_t to) {
        switch (from) {
        case KP_TXN_IDLE:
                return to == KP_TXN_OPEN;
        case KP_TXN_OPEN:
                return to == KP_TXN_IDLE || to == KP_TXN_MUST_ABORT;
        case KP_TXN_MUST_ABORT:
                return to == KP_TXN_IDLE;
        default:
                return 0;
        }
}

/* The one place the transaction state changes. An illegal transition is a
 * bug in the runtime: it is logged and the instance fails (exits 1)
 * rather than commit something it should not. */
void txn_set_state(kp_proc_t *proc, kp_txn_state_t to) {
        if (proc->txn == to)
                return;
        if (!kp_txn_transition_valid(proc->txn, to)) {
                KP_ERROR("illegal transaction transition %s -> %s refused",
                         kp_txn_state2str(proc->txn), kp_txn_state2str(to));
                proc_fail(proc);
                return;
        }
        KP_DEBUG("transaction %s -> %s", kp_txn_state2str(proc->txn),
                 kp_txn_state2str(to));
        proc->txn = to;
}

int txn_open(const kp_proc_t *proc) {
        return proc->txn != KP_TXN_IDLE;
}

/* The timeout of one blocking transactional call: -1 (the rest of the
 * transaction timeout) while running, what is left of the shutdown bound
 * on the way out. */
static int txn_call_timeout(const kp_proc_t *proc) {
        if (proc->stopping || !kp_app_running())
                return (int)kp_service_shutdown_left_ms(proc->svc);
        return -1;
}

/* The pacing of a retried transactional call: a capped exponential
 * backoff, until --retry-deadline-ms (or the end of the shutdown bound). */
static void txn_backoff_init(const kp_proc_t *proc, kp_backoff_t *b) {
        kp_backoff_init(b, 50, 1000,
                        proc->stopping ? kp_service_shutdown_left_ms(proc->svc)
                                       : proc->pconf.retry_deadline_ms);
}

/* Handles an error from a transactional API call: returns 1 to retry the
 * call (after the backoff @p b), 0 when the transaction must be aborted; a
 * fatal error, or a retriable one past the deadline, fails the instance.
 * Consumes @p error. */
static int txn_error(kp_proc_t *proc, rd_kafka_error_t *error, const char *what,
                     kp_backoff_t *b) {
        int retry = 0;
        if (rd_kafka_error_is_fatal(error)) {
                KP_ERROR(
                    "%s: fatal: %s; exiting so that a supervisor "
                    "restarts this instance",
                    what, rd_kafka_error_string(error));
                proc_fail(proc);
        } else if (rd_kafka_error_txn_requires_abort(error)) {
                KP_WARN("%s: %s; aborting the transaction", what,
                        rd_kafka_error_string(error));
        } else if (rd_kafka_error_is_retriable(error)) {
                retry = !proc_retry_wait(b, NULL, what,
                                         rd_kafka_error_string(error));
                if (!retry)
                        proc_fail(proc);
        } else {
                KP_WARN("%s: %s; aborting the transaction", what,
                        rd_kafka_error_string(error));
        }
        rd_kafka_error_destroy(error);
        return retry;
}

kp_err_t txn_begin(kp_proc_t *proc) {
        if (txn_open(proc))
                return KP_OK;
        if (proc_failed(proc))
                return KP_ERR_FATAL;
        rd_kafka_error_t *error = rd_kafka_begin_transaction(proc->producer);
        if (error) {
                kp_backoff_t b;
                kp_backoff_init(&b, 1, 1, 0);
                txn_error(proc, error, "begin_transaction", &b);
                proc_fail(proc); /* begin only fails on misuse. */
                return KP_ERR_FATAL;
        }
        txn_set_state(proc, KP_TXN_OPEN);
        proc->txn_started_ms = kp_mono_ms();
        proc->txn_records    = 0;
        return KP_OK;
}

/* The task of partition @p p if it takes part in transactions: a task
 * still restoring has no transaction state (its stores hold the restore's
 * own uncommitted batch), and its inputs are paused at the committed
 * offsets. */
static task_t *txn_task(const kp_proc_t *proc, int32_t p) {
        task_t *t = proc->tasks[p];
        return t && t->ready ? t : NULL;
}

/* Seeks every input partition of every ready task back to its committed
 * offset. */
static void rewind_tasks(kp_proc_t *proc) {
        rd_kafka_topic_partition_list_t *list =
            rd_kafka_topic_partition_list_new(proc->input_cnt * 4);
        for (int32_t p = 0; p < proc->partition_cnt; p++) {
                task_t *t = txn_task(proc, p);
                if (!t)
                        continue;
                for (int i = 0; i < proc->input_cnt; i++)
                        rd_kafka_topic_partition_list_add(
                            list, proc->topic_names[proc->input_ids[i]], p)
                            ->offset = t->in_committed[i];
        }
        if (list->cnt) {
                rd_kafka_error_t *error =
                    rd_kafka_seek_partitions(proc->consumer, list, 10000);
                if (error) {
                        KP_ERROR("rewinding after an abort: %s; exiting",
                                 rd_kafka_error_string(error));
                        rd_kafka_error_destroy(error);
                        proc_fail(proc);
                } else {
                        for (int i = 0; i < list->cnt; i++)
                                if (list->elems[i].err) {
                                        KP_ERROR("rewinding %s [%d]: %s",
                                                 list->elems[i].topic,
                                                 (int)list->elems[i].partition,
                                                 rd_kafka_err2str(
                                                     list->elems[i].err));
                                        proc_fail(proc);
                                }
                }
        }
        rd_kafka_topic_partition_list_destroy(list);
}

void drop_uncommitted(kp_proc_t *proc) {
        for (int32_t p = 0; p < proc->partition_cnt; p++) {
                task_t *t = txn_task(proc, p);
                if (!t)
                        continue;
                cached_drop(t);
                for (int s = 0; s < proc->store_cnt; s++) {
                        kp_store_rollback(t->stores[s]);
                        t->cl_next[s] = -1;
                }
                for (int i = 0; i < proc->input_cnt; i++)
                        t->in_next[i] = -1;
        }
}

/* Aborts the open transaction, drops the uncommitted state and rewinds the
 * inputs to the committed offsets. */
void txn_abort(kp_proc_t *proc) {
        if (!txn_open(proc))
                return;
        kp_backoff_t b;
        txn_backoff_init(proc, &b);
        for (;;) {
                /* -1 would wait as long as the broker is gone: a finite
                 * wait, retried (an abort that timed out is resumed). */
                int tmo = txn_call_timeout(proc);
                if (tmo < 0)
                        tmo = (int)proc->pconf.transaction_timeout_ms;
                rd_kafka_error_t *error =
                    rd_kafka_abort_transaction(proc->producer, tmo);
                if (!error)
                        break;
                if (!txn_error(proc, error, "abort_transaction", &b))
                        break;
        }
        txn_set_state(proc, KP_TXN_IDLE);
        kp_counter_add(proc->m_aborted, 1);
        /* Serve the delivery reports of the purged messages now, while the
         * tasks they refer to still exist. */
        rd_kafka_poll(proc->producer, 0);
        drop_uncommitted(proc);
        if (!proc_failed(proc))
                rewind_tasks(proc);
}

typedef struct changelog_ctx_s {
        kp_proc_t *proc;
        int store;
        int32_t partition;
} changelog_ctx_t;

static int changelog_one(const void *key, size_t klen, const void *val,
                         size_t vlen, void *opaque) {
        changelog_ctx_t *c = opaque;
        intptr_t tag       = ((intptr_t)c->store << 16) | c->partition;
        kp_counter_add(c->proc->m_changelog, 1);
        return proc_produce(c->proc, c->proc->changelogs[c->store],
                            c->partition, key, klen, val, vlen, NULL,
                            (void *)(tag + 1)) != KP_OK;
}

/* Writes every store's overlay to its changelog: one record per key written
 * in the transaction (its last value), however often it was written. Hot
 * keys (per-partition totals, a busy account) cost one record per commit
 * instead of one per input record. */
static void produce_changelogs(kp_proc_t *proc) {
        for (int32_t p = 0; p < proc->partition_cnt; p++) {
                task_t *t = txn_task(proc, p);
                if (!t)
                        continue;
                cached_flush(proc, t);
                for (int s = 0; s < proc->store_cnt; s++) {
                        changelog_ctx_t c = {proc, s, p};
                        if (kp_store_overlay_foreach(t->stores[s],
                                                     changelog_one, &c))
                                return; /* the transaction must abort. */
                }
        }
}

/* Sends the offsets of every owned partition, even unchanged ones: the
 * group generation check on these offsets is what fences a zombie
 * (KIP-447), also in punctuation-only transactions. @returns 1 when sent,
 * 0 when the transaction must abort. */
static int send_offsets(kp_proc_t *proc) {
        rd_kafka_topic_partition_list_t *offsets =
            rd_kafka_topic_partition_list_new(proc->input_cnt * 4);
        for (int32_t p = 0; p < proc->partition_cnt; p++) {
                task_t *t = proc->tasks[p];
                if (!t)
                        continue;
                for (int i = 0; i < proc->input_cnt; i++) {
                        int64_t off = t->in_next[i] >= 0 ? t->in_next[i]
                                                         : t->in_committed[i];
                        if (off >= 0)
                                rd_kafka_topic_partition_list_add(
                                    offsets,
                                    proc->topic_names[proc->input_ids[i]], p)
                                    ->offset = off;
                }
        }
        int ok = 1;
        kp_backoff_t b;
        txn_backoff_init(proc, &b);
        while (offsets->cnt && ok) {
                rd_kafka_consumer_group_metadata_t *cgmd =
                    rd_kafka_consumer_group_metadata(proc->consumer);
                rd_kafka_error_t *error = rd_kafka_send_offsets_to_transaction(
                    proc->producer, offsets, cgmd, txn_call_timeout(proc));
                rd_kafka_consumer_group_metadata_destroy(cgmd);
                if (!error)
                        break;
                if (!txn_error(proc, error, "send_offsets_to_transaction", &b))
                        ok = 0;
        }
        rd_kafka_topic_partition_list_destroy(offsets);
        return ok;
}

/* After the Kafka commit: each store's overlay and new checkpoint go to
 * RocksDB in one batch, and the committed input offsets move on. */
static kp_err_t commit_stores(kp_proc_t *proc) {
        for (int32_t p = 0; p < proc->partition_cnt; p++) {
                task_t *t = txn_task(proc, p);
                if (!t)
                        continue;
                cached_drop(t);
                for (int s = 0; s < proc->store_cnt; s++) {
                        char errstr[512];
                        if (t->cl_next[s] < 0 &&
                            !kp_store_overlay_count(t->stores[s]))
                                continue;
                        int64_t cp = t->cl_next[s] >= 0
                                         ? t->cl_next[s]
                                         : kp_store_checkpoint(t->stores[s]);
                        if (kp_store_commit(t->stores[s], cp, errstr,
                                            sizeof(errstr))) {
                                /* Kafka has the data; the restart replays
                                 * the changelog from the old checkpoint. */
                                KP_ERROR("store %s [%d]: %s; exiting",
                                         proc->store_names[s], (int)p, errstr);
                                proc_fail(proc);
                                return KP_ERR_FATAL;
                        }
                        t->cl_next[s] = -1;
                }
                for (int i = 0; i < proc->input_cnt; i++) {
                        if (t->in_next[i] >= 0)
                                t->in_committed[i] = t->in_next[i];
                        t->in_next[i] = -1;
                }
        }
        return KP_OK;
}

/* Commits the open transaction: changelog records (outputs are in
 * already), offsets, then the stores. On an abortable error, aborts and
 * rewinds instead. @returns KP_OK, KP_ERR_ABORTED or KP_ERR_FATAL. */
kp_err_t txn_commit(kp_proc_t *proc) {
        if (!txn_open(proc))
                return KP_OK;
        if (proc->txn == KP_TXN_OPEN)
                produce_changelogs(proc);
        if (proc->txn == KP_TXN_MUST_ABORT) {
                txn_abort(proc);
                return proc_failed(proc) ? KP_ERR_FATAL : KP_ERR_ABORTED;
        }
        int64_t t0 = kp_mono_ms();
        int ok     = send_offsets(proc);
        kp_backoff_t b;
        txn_backoff_init(proc, &b);
        while (ok) {
                rd_kafka_error_t *error = rd_kafka_commit_transaction(
                    proc->producer, txn_call_timeout(proc));
                if (!error)
                        break;
                if (!txn_error(proc, error, "commit_transaction", &b))
                        ok = 0;
        }
        if (!ok) {
                if (proc_failed(proc))
                        return KP_ERR_FATAL;
                txn_abort(proc);
                return proc_failed(proc) ? KP_ERR_FATAL : KP_ERR_ABORTED;
        }
        txn_set_state(proc, KP_TXN_IDLE);
        /* The changelog offsets arrive in delivery reports. */
        rd_kafka_poll(proc->producer, 0);
        if (commit_stores(proc))
                return KP_ERR_FATAL;
        kp_counter_add(proc->m_committed, 1);
        kp_histogram_observe(proc->m_commit_latency,
                             (double)(kp_mono_ms() - t0) / 1000.0);
        return KP_OK;
}

/* ------------------------------------------------------------------------
 * Producing. */

void proc_dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
        kp_proc_t *proc = opaque;
        (void)rk;
        if (m->err) {
                /* The transaction cannot commit; commit_transaction reports
                 * it and the transaction is aborted. */
                KP_WARN("delivery to %s failed: %s",
                        rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
                return;
        }
        if (!m->_private)
                return;
        intptr_t tag = (intptr_t)m->_private - 1;
        int store    = (int)(tag >> 16);
        int32_t part = (int32_t)(tag & 0xffff);
        if (part >= proc->partition_cnt || store >= proc->store_cnt)
                return;
        task_t *t = proc->tasks[part];
        if (t && t->ready && m->offset + 1 > t->cl_next[store])
                t->cl_next[store] = m->offset + 1;
}

kp_err_t proc_produce(kp_proc_t *proc, const char *topic, int32_t partition,
                      const void *key, size_t klen, const void *val,
                      size_t vlen, rd_kafka_headers_t *hdrs, void *opaque) {
        for (;;) {
                rd_kafka_resp_err_t err = rd_kafka_producev(
                    proc->producer, RD_KAFKA_V_TOPIC(topic),
                    RD_KAFKA_V_PARTITION(partition < 0 ? RD_KAFKA_PARTITION_UA
                                                       : partition),
                    RD_KAFKA_V_KEY((void *)key, klen),
                    RD_KAFKA_V_VALUE((void *)val, vlen),
                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                    RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(opaque),
                    RD_KAFKA_V_END);
                if (!err) {
                        kp_counter_add(proc->m_out, 1);
                        return KP_OK;
                }
                if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                        rd_kafka_poll(proc->producer, 50);
                        continue;
                }
                if (hdrs)
                        rd_kafka_headers_destroy(hdrs);
                KP_WARN("producing to %s: %s; the transaction will abort",
                        topic, rd_kafka_err2str(err));
                if (proc->txn == KP_TXN_OPEN)
                        txn_set_state(proc, KP_TXN_MUST_ABORT);
                if (rd_kafka_fatal_error(proc->producer, NULL, 0))
                        proc_fail(proc);
                return KP_ERR_KAFKA;
        }
}
