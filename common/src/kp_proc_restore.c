/* kp_proc_restore.c: replaying changelogs into the stores of newly
 * assigned partitions (docs/runtime.md, "Restore"), in the background: the
 * rebalance callback only plans the restores (restore_plan(),
 * restore_assign()); the processing loop replays them in slices
 * (restore_slice()) between the records of the partitions that are ready,
 * and a task whose stores are all restored becomes ready. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "kp_proc_int.h"
#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_time.h"

static void store_path(const kp_proc_t *proc, int store, int32_t partition,
                       char *buf, size_t size) {
        snprintf(buf, size, "%s/%s/%s/%d", proc->conf->state_dir, proc->service,
                 proc->store_names[store], (int)partition);
}

/* Asks the cluster for @p topic's metadata again: librdkafka answers a
 * watermark query from its metadata cache, and after a broker restart a
 * stale entry can say "unknown partition" until it expires (minutes); a
 * metadata request for the topic replaces it. */
static void refresh_metadata(rd_kafka_t *rk, const char *topic) {
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
        if (!rkt)
                return;
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, 5000);
        if (!err)
                rd_kafka_metadata_destroy(md);
        else
                KP_DEBUG("metadata of %s: %s", topic, rd_kafka_err2str(err));
        rd_kafka_topic_destroy(rkt);
}

/* The changelog's offsets [lo, hi), retried with a capped exponential
 * backoff up to --retry-deadline-ms (a broker that is restarting answers
 * at once, with an error, for a while), refreshing the topic's metadata
 * after each failure. @returns KP_OK, KP_ERR_STATE when the instance is
 * stopping, or KP_ERR_TIMED_OUT at the deadline (the instance then exits
 * 1 and its restart starts from fresh clients). */
static kp_err_t changelog_range(kp_proc_t *proc, int store, int32_t partition,
                                int64_t *lo, int64_t *hi) {
        kp_backoff_t b;
        kp_backoff_init(&b, 100, 2000, proc->pconf.retry_deadline_ms);
        for (;;) {
                rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
                    proc->restorer, proc->changelogs[store], partition, lo, hi,
                    10000);
                if (!err)
                        return KP_OK;
                char what[300];
                snprintf(what, sizeof(what), "end offsets of %s [%d]",
                         proc->changelogs[store], (int)partition);
                kp_err_t w = proc_retry_wait(&b, kp_app_running, what,
                                             rd_kafka_err2str(err));
                if (w)
                        return w == KP_ERR_TIMED_OUT ? w : KP_ERR_STATE;
                refresh_metadata(proc->restorer, proc->changelogs[store]);
        }
}

/* Opens store @p s of @p t, wiping it when its checkpoint is outside the
 * changelog; sets *startp to the first offset to replay. */
static kp_err_t open_store(kp_proc_t *proc, task_t *t, int s, int64_t lo,
                           int64_t hi, int64_t *startp) {
        char path[1024], errstr[512];
        store_path(proc, s, t->partition, path, sizeof(path));
        t->stores[s] = kp_store_open(proc->env, path, errstr, sizeof(errstr));
        if (!t->stores[s]) {
                KP_ERROR("opening store %s: %s", path, errstr);
                return KP_ERR_STORE;
        }
        int64_t cp = kp_store_checkpoint(t->stores[s]);
        if (cp >= 0 && (cp > hi || cp < lo)) {
                /* The log no longer has what the checkpoint says
                 * (recreated, or truncated past it): rebuild. */
                KP_WARN("store %s: checkpoint %" PRId64
                        " is outside the changelog [%" PRId64 ", %" PRId64
                        "]; rebuilding from the start",
                        path, cp, lo, hi);
                kp_store_close(t->stores[s]);
                t->stores[s] = NULL;
                if (kp_store_wipe(path, errstr, sizeof(errstr)) ||
                    !(t->stores[s] = kp_store_open(proc->env, path, errstr,
                                                   sizeof(errstr)))) {
                        KP_ERROR("rebuilding store %s: %s", path, errstr);
                        return KP_ERR_STORE;
                }
                cp = -1;
        }
        *startp = cp >= 0 ? cp : lo;
        if (*startp < hi)
                KP_INFO("restoring store %s [%d] from offset %" PRId64
                        " to %" PRId64 "%s",
                        proc->store_names[s], (int)t->partition, *startp, hi,
                        cp < 0 ? " (no local state)" : "");
        return KP_OK;
}

static restore_t *restore_of(kp_proc_t *proc, int32_t partition, int store) {
        return &proc->restores[(size_t)partition * (size_t)proc->store_cnt +
                               (size_t)store];
}

kp_err_t restore_plan(kp_proc_t *proc, task_t *t) {
        t->restoring = 0;
        for (int s = 0; s < proc->store_cnt; s++) {
                int64_t lo, hi, start;
                kp_err_t err = changelog_range(proc, s, t->partition, &lo, &hi);
                if (!err)
                        err = open_store(proc, t, s, lo, hi, &start);
                if (err)
                        return err;
                if (start >= hi)
                        continue;
                restore_t *r = restore_of(proc, t->partition, s);
                r->task      = t;
                r->store     = s;
                r->end       = hi;
                r->last      = start;
                r->pending   = 0;
                t->restoring++;
                proc->restore_reassign = 1;
        }
        return KP_OK;
}

/* Records to go in the restores in progress, from what was applied. */
static int64_t restore_count_remaining(kp_proc_t *proc) {
        int64_t n = 0;
        for (int32_t p = 0; p < proc->partition_cnt; p++)
                for (int s = 0; s < proc->store_cnt; s++) {
                        restore_t *r = restore_of(proc, p, s);
                        if (r->task)
                                n += r->end > r->last ? r->end - r->last : 0;
                }
        return n;
}

/* The changelog partitions of the restores in progress, at @p r->last. */
static rd_kafka_topic_partition_list_t *restore_list(kp_proc_t *proc) {
        rd_kafka_topic_partition_list_t *list =
            rd_kafka_topic_partition_list_new(4);
        for (int32_t p = 0; p < proc->partition_cnt; p++)
                for (int s = 0; s < proc->store_cnt; s++) {
                        restore_t *r = restore_of(proc, p, s);
                        if (r->task)
                                rd_kafka_topic_partition_list_add(
                                    list, proc->changelogs[s], p)
                                    ->offset = r->last;
                }
        return list;
}

kp_err_t restore_assign(kp_proc_t *proc) {
        if (!proc->restore_reassign || !proc->restorer)
                return KP_OK;
        proc->restore_reassign                = 0;
        rd_kafka_topic_partition_list_t *list = restore_list(proc);
        int64_t now                           = kp_mono_ms();
        if (list->cnt && !proc->restore_started_ms) {
                proc->restore_started_ms = now;
                proc->restore_base = (int64_t)kp_counter_get(proc->m_restored);
                proc->restore_next_log_ms = now + 5000;
        }
        /* A restore (re)started is progress: the deadline counts from
         * here. */
        proc->restore_progress_ms = now;
        proc->restore_remaining   = restore_count_remaining(proc);
        /* Assigning anew from the offsets applied loses nothing: the
         * records fetched for the old assignment are discarded by
         * librdkafka, and a record before r->last is skipped anyway. */
        rd_kafka_resp_err_t err =
            rd_kafka_assign(proc->restorer, list->cnt ? list : NULL);
        /* A partition paused when an earlier restore of it ended
         * (restore_release()) may be restoring again: resume them all
         * (a no-op for the others). */
        if (!err && list->cnt) {
                rd_kafka_resp_err_t rerr =
                    rd_kafka_resume_partitions(proc->restorer, list);
                if (rerr)
                        KP_WARN("resuming the changelogs: %s",
                                rd_kafka_err2str(rerr));
        }
        rd_kafka_topic_partition_list_destroy(list);
        if (err) {
                KP_ERROR("assigning changelogs: %s", rd_kafka_err2str(err));
                return KP_ERR_KAFKA;
        }
        proc_publish_restoring(proc);
        return KP_OK;
}

void restore_cancel(kp_proc_t *proc, task_t *t) {
        for (int s = 0; s < proc->store_cnt; s++) {
                restore_t *r = restore_of(proc, t->partition, s);
                if (r->task != t)
                        continue;
                memset(r, 0, sizeof(*r));
                proc->restore_reassign = 1;
        }
        t->restoring = 0;
}

static kp_err_t restore_flush(kp_proc_t *proc, restore_t *r, int64_t cp) {
        char errstr[512];
        if (kp_store_commit(r->task->stores[r->store], cp, errstr,
                            sizeof(errstr))) {
                KP_ERROR("restoring store %s [%d]: %s",
                         proc->store_names[r->store], (int)r->task->partition,
                         errstr);
                return KP_ERR_STORE;
        }
        r->pending = 0;
        return KP_OK;
}

void kp_restore_write_local(kp_restore_ctx_t *rc, const void *key, size_t klen,
                            const void *val, size_t vlen) {
        kp_store_write_local(rc->task->stores[rc->store], key, klen,
                             val && vlen ? val : NULL, val ? vlen : 0);
}

/* The restore a changelog record belongs to, or NULL (a record of a
 * restore since cancelled or finished, or one already applied). */
static restore_t *restore_find(kp_proc_t *proc, const rd_kafka_message_t *m) {
        if (m->partition < 0 || m->partition >= proc->partition_cnt)
                return NULL;
        const char *topic = rd_kafka_topic_name(m->rkt);
        for (int s = 0; s < proc->store_cnt; s++) {
                if (strcmp(proc->changelogs[s], topic))
                        continue;
                restore_t *r = restore_of(proc, m->partition, s);
                return r->task && m->offset >= r->last ? r : NULL;
        }
        return NULL;
}

/* Applies one changelog record to the store it belongs to. */
static kp_err_t restore_apply(kp_proc_t *proc, const rd_kafka_message_t *m) {
        restore_t *r = restore_find(proc, m);
        if (!r)
                return KP_OK;
        kp_store_t *st = r->task->stores[r->store];
        if (m->payload)
                kp_store_put(st, m->key, m->key_len, m->payload, m->len);
        else
                kp_store_delete(st, m->key, m->key_len);
        if (proc->def.restored)
                proc->def.restored(r, r->store, m->key, m->key_len, m->payload,
                                   m->len, proc->def.opaque);
        r->last = m->offset + 1;
        kp_counter_add(proc->m_restored, 1);
        if (++r->pending >= KP_PROC_RESTORE_BATCH)
                return restore_flush(proc, r, r->last);
        return KP_OK;
}

/* One message of the restore consumer: a record to apply, or an error. */
static kp_err_t restore_message(kp_proc_t *proc, rd_kafka_message_t *m) {
        if (!m->err)
                return restore_apply(proc, m);
        if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
            m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE) {
                /* The changelog lost the records after the checkpoint:
                 * exit, and the restart, seeing the checkpoint outside the
                 * log, rebuilds. */
                KP_ERROR("restore: %s", rd_kafka_message_errstr(m));
                return KP_ERR_STORE;
        }
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                KP_WARN("restore: %s", rd_kafka_message_errstr(m));
        return KP_OK;
}

/* Task @p t has all its stores restored: it takes part in processing from
 * now on (its inputs resume unless flow control keeps them paused). */
static void restore_task_ready(kp_proc_t *proc, task_t *t) {
        pthread_rwlock_wrlock(&proc->tasks_lock);
        t->ready = 1;
        pthread_rwlock_unlock(&proc->tasks_lock);
        proc->restoring_tasks--;
        proc->restores_done++;
        /* The daemon's status (the control gate's report) covered the
         * ready partitions only: withdraw it until the daemon reports
         * again over all of them, as after an assignment. Otherwise the
         * RUNNING announcement would carry it, and kpay-control could
         * count a drained pipeline from a partial report. */
        kp_service_set_status(proc->svc, NULL);
        proc->assign_epoch++;
        KP_INFO("partition %d restored: processing it", (int)t->partition);
        flow_resume_task(proc, t);
        proc->assignment_changed = 1;
}

/* A restore of @p topic [@p partition] has ended: its changelog partition
 * is paused on the restorer, so that the restores still running keep their
 * fetchers and what they prefetched (assigning the rest anew stops and
 * restarts every fetcher: it halved the restore rate of kpay-inflight's 36
 * changelog partitions). Records it still delivers have no restore and are
 * skipped (restore_find()). When none is left, or the pause fails, the
 * restorer is assigned anew (nothing, or the restores left). */
static void restore_release(kp_proc_t *proc, const char *topic,
                            int32_t partition) {
        int active = 0;
        for (int32_t p = 0; p < proc->partition_cnt && !active; p++)
                for (int s = 0; s < proc->store_cnt && !active; s++)
                        active = restore_of(proc, p, s)->task != NULL;
        if (!active) {
                proc->restore_reassign = 1;
                return;
        }
        rd_kafka_topic_partition_list_t *one =
            rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(one, topic, partition);
        rd_kafka_resp_err_t err =
            rd_kafka_pause_partitions(proc->restorer, one);
        if (err || one->elems[0].err) {
                KP_DEBUG("pausing %s [%d] on the restorer: %s; assigning anew",
                         topic, (int)partition,
                         rd_kafka_err2str(err ? err : one->elems[0].err));
                proc->restore_reassign = 1;
        }
        rd_kafka_topic_partition_list_destroy(one);
}

/* Finishes the restores whose consumer position has reached their end
 * (under read_committed the last offsets are transaction markers that are
 * never delivered) and counts what is left. */
static kp_err_t restore_check_ends(kp_proc_t *proc) {
        rd_kafka_topic_partition_list_t *list = restore_list(proc);
        kp_err_t result                       = KP_OK;
        if (rd_kafka_position(proc->restorer, list))
                result = KP_ERR_KAFKA;
        for (int i = 0; i < list->cnt && result == KP_OK; i++) {
                int32_t p = list->elems[i].partition;
                int s     = 0;
                while (strcmp(proc->changelogs[s], list->elems[i].topic))
                        s++;
                restore_t *r = restore_of(proc, p, s);
                int64_t pos  = list->elems[i].offset;
                if (pos > r->last)
                        r->last = pos; /* past markers: nothing to apply */
                if (pos < r->end)
                        continue;
                if ((result = restore_flush(proc, r, r->end)))
                        break;
                task_t *t = r->task;
                memset(r, 0, sizeof(*r));
                restore_release(proc, proc->changelogs[s], p);
                if (--t->restoring == 0)
                        restore_task_ready(proc, t);
        }
        rd_kafka_topic_partition_list_destroy(list);
        return result;
}

/* Progress, the deadline of a restore that replays nothing, the log line. */
static kp_err_t restore_progress(kp_proc_t *proc, int64_t now) {
        int64_t remaining = restore_count_remaining(proc);
        if (remaining != proc->restore_remaining) {
                proc->restore_remaining   = remaining;
                proc->restore_progress_ms = now;
                proc_progress(proc);
        } else if (remaining > 0 && now - proc->restore_progress_ms >
                                        proc->pconf.retry_deadline_ms) {
                /* The broker gone, a fetch that never succeeds. */
                KP_ERROR("restore: no progress for %" PRId64 " ms with %" PRId64
                         " records to go; exiting so that a supervisor "
                         "restarts this instance",
                         now - proc->restore_progress_ms, remaining);
                return KP_ERR_TIMED_OUT;
        }
        kp_gauge_set(proc->m_restore_remaining, (double)remaining);
        /* Records left to restore are work waiting (/healthz). */
        if (remaining > 0)
                kp_service_set_waiting(proc->svc, remaining);
        if (now >= proc->restore_next_log_ms && remaining > 0) {
                KP_INFO("restoring: %" PRId64 " records so far, %" PRId64
                        " to go",
                        (int64_t)kp_counter_get(proc->m_restored) -
                            proc->restore_base,
                        remaining);
                proc->restore_next_log_ms = now + 5000;
        }
        return KP_OK;
}

/* Every restore finished: the restorer lets go of the changelogs. */
static void restore_finished(kp_proc_t *proc, int64_t now) {
        /* bench/e2e.sh reads this line: only for restores that ended. */
        if (proc->restores_done)
                KP_INFO("restored %" PRId64 " changelog records in %" PRId64
                        " ms",
                        (int64_t)kp_counter_get(proc->m_restored) -
                            proc->restore_base,
                        now - proc->restore_started_ms);
        else
                KP_INFO(
                    "restores dropped (their partitions left) after %" PRId64
                    " ms",
                    now - proc->restore_started_ms);
        proc->restores_done      = 0;
        proc->restore_started_ms = 0;
        kp_gauge_set(proc->m_restore_remaining, 0);
}

/* The records this slice may restore: KP_PROC_RESTORE_SLICE_RECORDS, or
 * what --restore-max-rate allows now. */
static int64_t restore_budget(kp_proc_t *proc, int64_t now) {
        double rate = (double)proc->pconf.restore_max_rate;
        if (rate <= 0)
                return KP_PROC_RESTORE_SLICE_RECORDS;
        kp_bucket_refill(&proc->restore_bucket, rate, now);
        double tokens = proc->restore_bucket.tokens;
        if (tokens < 1)
                return 0;
        return tokens < KP_PROC_RESTORE_SLICE_RECORDS
                   ? (int64_t)tokens
                   : KP_PROC_RESTORE_SLICE_RECORDS;
}

int64_t restore_wait_ms(kp_proc_t *proc, int64_t wait_ms) {
        if (!proc->restore_started_ms)
                return wait_ms;
        double rate = (double)proc->pconf.restore_max_rate;
        if (rate <= 0 || !kp_bucket_empty(&proc->restore_bucket))
                return 0;
        int64_t ms = kp_bucket_wait_ms(&proc->restore_bucket, rate);
        return ms < wait_ms ? ms : wait_ms;
}

kp_err_t restore_slice(kp_proc_t *proc, int wait_ms) {
        if (!proc->restore_started_ms)
                return KP_OK;
        kp_err_t result = restore_assign(proc);
        if (result)
                return result;
        if (!proc->restore_q &&
            !(proc->restore_q = rd_kafka_queue_get_consumer(proc->restorer))) {
                KP_ERROR("restore: the restorer has no consumer queue");
                return KP_ERR_KAFKA;
        }
        int64_t t0 = kp_mono_ms(), done = 0, now = t0;
        int64_t max = restore_budget(proc, t0);
        rd_kafka_message_t *msgs[KP_PROC_RESTORE_POLL];
        /* The first batch may wait (the loop had nothing else to do); then
         * what is queued, until the slice is spent. */
        int timeout = wait_ms;
        while (result == KP_OK && done < max) {
                size_t want = (size_t)(max - done) < KP_PROC_RESTORE_POLL
                                  ? (size_t)(max - done)
                                  : KP_PROC_RESTORE_POLL;
                /* A wait for one record returns with it; a batch does not
                 * wait. */
                ssize_t n = rd_kafka_consume_batch_queue(
                    proc->restore_q, timeout, msgs, timeout > 0 ? 1 : want);
                timeout = 0;
                if (n < 0) {
                        KP_WARN("restore: %s",
                                rd_kafka_err2str(rd_kafka_last_error()));
                        break;
                }
                for (ssize_t i = 0; i < n; i++) {
                        if (result == KP_OK)
                                result = restore_message(proc, msgs[i]);
                        rd_kafka_message_destroy(msgs[i]);
                }
                done += n;
                if (proc->pconf.restore_max_rate > 0)
                        proc->restore_bucket.tokens -= (double)n;
                now = kp_mono_ms();
                if (n == 0 || now - t0 >= KP_PROC_RESTORE_SLICE_MS)
                        break;
        }
        if (result == KP_OK)
                result = restore_check_ends(proc);
        if (result == KP_OK)
                result = restore_progress(proc, now);
        if (result == KP_OK && proc->restore_reassign)
                result = restore_assign(proc);
        if (result == KP_OK && !proc->restoring_tasks)
                restore_finished(proc, now);
        return result;
}
