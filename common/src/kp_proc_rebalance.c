/* kp_proc_rebalance.c: partitions arriving and leaving (docs/runtime.md,
 * "Rebalancing"). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "kp_proc_int.h"
#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_time.h"

/* ------------------------------------------------------------------------
 * Tasks. */

void task_free(kp_proc_t *proc, task_t *t) {
        if (!t)
                return;
        cached_drop(t);
        for (int s = 0; s < proc->store_cnt; s++)
                kp_store_close(t->stores[s]);
        kp_free(t->stores);
        kp_free(t->cl_next);
        kp_free(t->in_next);
        kp_free(t->in_committed);
        kp_free(t);
}

task_t *task_new(kp_proc_t *proc, int32_t partition) {
        task_t *t    = kp_calloc(1, sizeof(*t));
        t->partition = partition;
        t->stores = kp_calloc((size_t)proc->store_cnt + 1, sizeof(*t->stores));
        t->cl_next =
            kp_calloc((size_t)proc->store_cnt + 1, sizeof(*t->cl_next));
        t->in_next = kp_calloc((size_t)proc->input_cnt, sizeof(*t->in_next));
        t->in_committed =
            kp_calloc((size_t)proc->input_cnt, sizeof(*t->in_committed));
        for (int s = 0; s < proc->store_cnt; s++)
                t->cl_next[s] = -1;
        for (int i = 0; i < proc->input_cnt; i++) {
                t->in_next[i]      = -1;
                t->in_committed[i] = RD_KAFKA_OFFSET_BEGINNING;
        }
        return t;
}

int input_index(const kp_proc_t *proc, const char *topic) {
        for (int i = 0; i < proc->input_cnt; i++)
                if (!strcmp(proc->topic_names[proc->input_ids[i]], topic))
                        return i;
        return -1;
}

int input_index_of_id(const kp_proc_t *proc, kp_topic_id_t id) {
        for (int i = 0; i < proc->input_cnt; i++)
                if (proc->input_ids[i] == id)
                        return i;
        return -1;
}

static void update_partition_gauge(kp_proc_t *proc) {
        int n = 0;
        for (int32_t p = 0; p < proc->partition_cnt; p++)
                n += proc->tasks[p] != NULL;
        kp_gauge_set(proc->m_partitions, n);
}

/* ------------------------------------------------------------------------
 * Assignment. */

/* Fetches the committed offsets of @p parts (where an abort rewinds to).
 * Under read_committed the broker answers UNSTABLE_OFFSET_COMMIT for a
 * partition while an earlier owner's transaction with offsets for it is
 * pending: wait for it, never fall back to the start. */
static kp_err_t fetch_committed(kp_proc_t *proc,
                                rd_kafka_topic_partition_list_t *parts) {
        kp_backoff_t b;
        kp_backoff_init(&b, 200, 2000, proc->pconf.retry_deadline_ms);
        for (;;) {
                rd_kafka_resp_err_t err =
                    rd_kafka_committed(proc->consumer, parts, 10000);
                const char *why = err ? rd_kafka_err2str(err) : NULL;
                for (int i = 0; !why && i < parts->cnt; i++)
                        if (parts->elems[i].err)
                                why = rd_kafka_err2str(parts->elems[i].err);
                if (!why)
                        return KP_OK;
                kp_err_t w = proc_retry_wait(&b, kp_app_running,
                                             "fetching committed offsets", why);
                if (w)
                        return w == KP_ERR_TIMED_OUT ? w : KP_ERR_STATE;
        }
}

/* Creates the tasks of @p parts that this instance does not have yet (in
 * @p fresh), opening their stores and planning their restores (nothing is
 * replayed here); records every partition's committed offset. */
static kp_err_t plan_tasks(kp_proc_t *proc,
                           rd_kafka_topic_partition_list_t *parts,
                           task_t **fresh) {
        for (int i = 0; i < parts->cnt; i++) {
                rd_kafka_topic_partition_t *tp = &parts->elems[i];
                int in                         = input_index(proc, tp->topic);
                if (in < 0 || tp->partition < 0 ||
                    tp->partition >= proc->partition_cnt) {
                        KP_ERROR(
                            "assigned %s [%d], which this processor "
                            "does not read",
                            tp->topic, (int)tp->partition);
                        return KP_ERR_STATE;
                }
                if (tp->offset < 0)
                        tp->offset = RD_KAFKA_OFFSET_BEGINNING;
                task_t *t = proc->tasks[tp->partition];
                if (!t)
                        t = fresh[tp->partition];
                if (!t) {
                        t = fresh[tp->partition] =
                            task_new(proc, tp->partition);
                        kp_err_t err = restore_plan(proc, t);
                        if (err)
                                return err;
                }
                t->in_committed[in] = tp->offset;
        }
        return KP_OK;
}

/* Creates and publishes the tasks of newly assigned partitions, ready at
 * once when there is nothing to restore, and sets each partition's start
 * offset to its committed offset. The restores run in the processing loop
 * (restore_slice()). */
static kp_err_t on_assign(kp_proc_t *proc,
                          rd_kafka_topic_partition_list_t *parts) {
        kp_err_t result = fetch_committed(proc, parts);
        if (result)
                return result;
        task_t **fresh = kp_calloc((size_t)proc->partition_cnt, sizeof(*fresh));
        result         = plan_tasks(proc, parts, fresh);
        pthread_rwlock_wrlock(&proc->tasks_lock);
        for (int32_t p = 0; p < proc->partition_cnt && result == KP_OK; p++) {
                if (!fresh[p])
                        continue;
                fresh[p]->ready = !fresh[p]->restoring;
                proc->restoring_tasks += !fresh[p]->ready;
                proc->tasks[p] = fresh[p];
                fresh[p]       = NULL;
        }
        pthread_rwlock_unlock(&proc->tasks_lock);
        for (int32_t p = 0; p < proc->partition_cnt; p++) {
                if (fresh[p])
                        restore_cancel(proc, fresh[p]);
                task_free(proc, fresh[p]);
        }
        kp_free(fresh);
        update_partition_gauge(proc);
        return result;
}

void close_tasks(kp_proc_t *proc,
                 const rd_kafka_topic_partition_list_t *parts) {
        task_t **gone = kp_calloc((size_t)proc->partition_cnt, sizeof(*gone));
        pthread_rwlock_wrlock(&proc->tasks_lock);
        for (int32_t p = 0; p < proc->partition_cnt; p++) {
                int revoked = !parts;
                for (int i = 0; parts && i < parts->cnt; i++)
                        if (parts->elems[i].partition == p)
                                revoked = 1;
                if (revoked && proc->tasks[p]) {
                        gone[p]        = proc->tasks[p];
                        proc->tasks[p] = NULL;
                }
        }
        pthread_rwlock_unlock(&proc->tasks_lock);
        /* No HTTP thread can see them any more: close outside the lock. A
         * task still restoring stops restoring; nothing of it was
         * processed. */
        for (int32_t p = 0; p < proc->partition_cnt; p++) {
                if (gone[p] && !gone[p]->ready) {
                        restore_cancel(proc, gone[p]);
                        proc->restoring_tasks--;
                }
                task_free(proc, gone[p]);
        }
        kp_free(gone);
        update_partition_gauge(proc);
        if (!proc->stopping && restore_assign(proc))
                proc_fail(proc);
        proc_publish_restoring(proc);
}

/* Hands @p parts to (@p add) or takes them from the consumer, incrementally
 * under the cooperative protocol, as a whole under the eager one. A
 * failure fails the instance. */
static void apply_assignment(kp_proc_t *proc, rd_kafka_t *rk,
                             rd_kafka_topic_partition_list_t *parts,
                             int cooperative, int add) {
        rd_kafka_error_t *error = NULL;
        rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
        if (cooperative)
                error = add ? rd_kafka_incremental_assign(rk, parts)
                            : rd_kafka_incremental_unassign(rk, parts);
        else
                err = rd_kafka_assign(rk, add ? parts : NULL);
        if (error) {
                KP_ERROR("rebalance: %s", rd_kafka_error_string(error));
                rd_kafka_error_destroy(error);
                proc_fail(proc);
        } else if (err) {
                KP_ERROR("rebalance: %s", rd_kafka_err2str(err));
                proc_fail(proc);
        }
}

static void assigned(kp_proc_t *proc, rd_kafka_t *rk,
                     rd_kafka_topic_partition_list_t *parts, int cooperative) {
        KP_INFO("assigned %d partition(s)", parts->cnt);
        /* A daemon's status (the control gate's report) describes the old
         * partitions: withdraw it until the daemon reports again. */
        kp_service_set_status(proc->svc, NULL);
        proc->assign_epoch++;
        /* Flow control decided before the first assignment (start paused)
         * applies from the first record on. */
        flow_apply(proc, kp_mono_ms());
        /* Finish the open transaction first: the offsets of the new
         * partitions are fetched below, and planning may take a while. */
        if (proc_failed(proc))
                txn_abort(proc);
        else
                txn_commit(proc);
        if (on_assign(proc, parts) != KP_OK && kp_app_running())
                proc_fail(proc);
        /* Assign even after a failure so that the consumer can leave the
         * group cleanly; nothing is processed then. The partitions of
         * tasks still restoring stay paused until they are ready. */
        apply_assignment(proc, rk, parts, cooperative, 1);
        flow_pause_assigned(proc, parts);
        if (!proc_failed(proc) && restore_assign(proc))
                proc_fail(proc);
        proc_publish_restoring(proc);
}

static void revoked(kp_proc_t *proc, rd_kafka_t *rk,
                    rd_kafka_topic_partition_list_t *parts, int cooperative) {
        int lost = rd_kafka_assignment_lost(rk);
        KP_INFO("%s %d partition(s)", lost ? "lost" : "revoked", parts->cnt);
        kp_service_set_status(proc->svc, NULL);
        proc->assign_epoch++;
        /* On revoke commit what was done; on a lost assignment another
         * instance may already own the partitions, so abort. */
        if (lost || proc_failed(proc))
                txn_abort(proc);
        else
                txn_commit(proc);
        close_tasks(proc, cooperative ? parts : NULL);
        apply_assignment(proc, rk, parts, cooperative, 0);
}

void proc_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                       rd_kafka_topic_partition_list_t *parts, void *opaque) {
        kp_proc_t *proc = opaque;
        int cooperative =
            !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
        if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
                assigned(proc, rk, parts, cooperative);
        } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
                revoked(proc, rk, parts, cooperative);
        } else {
                KP_ERROR("rebalance: %s", rd_kafka_err2str(err));
                if ((err = rd_kafka_assign(rk, NULL))) {
                        KP_ERROR("rebalance: %s", rd_kafka_err2str(err));
                        proc_fail(proc);
                }
        }
        proc->assignment_changed = 1;
}
