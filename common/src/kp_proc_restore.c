/* kp_proc_restore.c: replaying changelogs into the stores of newly
 * assigned partitions (docs/runtime.md, "Restore"). */
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

kp_err_t restore_plan(kp_proc_t *proc, task_t *t, restore_t *rs, int *rcntp) {
        for (int s = 0; s < proc->store_cnt; s++) {
                int64_t lo, hi, start;
                kp_err_t err = changelog_range(proc, s, t->partition, &lo, &hi);
                if (!err)
                        err = open_store(proc, t, s, lo, hi, &start);
                if (err)
                        return err;
                if (start >= hi)
                        continue;
                restore_t *r = &rs[(*rcntp)++];
                r->task      = t;
                r->store     = s;
                r->end       = hi;
                r->last      = start;
                r->pending   = 0;
                r->done      = 0;
        }
        return KP_OK;
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

/* Applies one changelog record to the store it belongs to. */
static kp_err_t restore_apply(kp_proc_t *proc, restore_t *rs, int rcnt,
                              const rd_kafka_message_t *m) {
        const char *topic = rd_kafka_topic_name(m->rkt);
        for (int i = 0; i < rcnt; i++) {
                restore_t *r = &rs[i];
                if (r->done || r->task->partition != m->partition ||
                    strcmp(proc->changelogs[r->store], topic))
                        continue;
                kp_store_t *st = r->task->stores[r->store];
                if (m->payload)
                        kp_store_put(st, m->key, m->key_len, m->payload,
                                     m->len);
                else
                        kp_store_delete(st, m->key, m->key_len);
                if (proc->def.restored)
                        proc->def.restored(r, r->store, m->key, m->key_len,
                                           m->payload, m->len,
                                           proc->def.opaque);
                r->last = m->offset + 1;
                r->pending++;
                kp_counter_add(proc->m_restored, 1);
                if (r->pending >= KP_PROC_RESTORE_BATCH)
                        return restore_flush(proc, r, r->last);
                return KP_OK;
        }
        return KP_OK;
}

/* Marks the restores whose consumer position has reached their end (under
 * read_committed the last offsets are transaction markers that are never
 * delivered) and counts what is left. */
static kp_err_t restore_check_ends(kp_proc_t *proc, restore_t *rs, int rcnt,
                                   rd_kafka_topic_partition_list_t *list,
                                   int *leftp, int64_t *remainingp) {
        if (rd_kafka_position(proc->restorer, list))
                return KP_ERR_KAFKA;
        *remainingp = 0;
        for (int i = 0; i < rcnt; i++) {
                restore_t *r = &rs[i];
                if (r->done)
                        continue;
                int64_t pos = list->elems[i].offset;
                if (pos >= r->end) {
                        if (restore_flush(proc, r, r->end))
                                return KP_ERR_STORE;
                        r->done = 1;
                        (*leftp)--;
                } else {
                        *remainingp += r->end - (pos > r->last ? pos : r->last);
                }
        }
        return KP_OK;
}

/* One message of the restore consumer: a record to apply, or an error. */
static kp_err_t restore_message(kp_proc_t *proc, restore_t *rs, int rcnt,
                                rd_kafka_message_t *m) {
        if (!m->err)
                return restore_apply(proc, rs, rcnt, m);
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

kp_err_t restore_run(kp_proc_t *proc, restore_t *rs, int rcnt) {
        if (!rcnt)
                return KP_OK;
        rd_kafka_topic_partition_list_t *list =
            rd_kafka_topic_partition_list_new(rcnt);
        int64_t remaining = 0;
        for (int i = 0; i < rcnt; i++) {
                rd_kafka_topic_partition_list_add(
                    list, proc->changelogs[rs[i].store], rs[i].task->partition)
                    ->offset = rs[i].last;
                remaining += rs[i].end - rs[i].last;
        }
        kp_gauge_set(proc->m_restore_remaining, (double)remaining);
        kp_service_set_waiting(proc->svc, remaining);
        proc_progress(proc);
        rd_kafka_resp_err_t err = rd_kafka_assign(proc->restorer, list);
        if (err) {
                KP_ERROR("assigning changelogs: %s", rd_kafka_err2str(err));
                rd_kafka_topic_partition_list_destroy(list);
                return KP_ERR_KAFKA;
        }
        kp_err_t result = KP_OK;
        int left        = rcnt;
        int64_t t0 = kp_mono_ms(), next_log = t0 + 5000;
        int64_t base = (int64_t)kp_counter_get(proc->m_restored);
        /* A restore that replays nothing for --retry-deadline-ms (the
         * broker gone, a fetch that never succeeds) fails the instance. */
        int64_t progress_ms = t0, last_remaining = remaining;
        int since_check = 0;
        while (left > 0 && result == KP_OK) {
                if (!kp_app_running()) {
                        result = KP_ERR_STATE;
                        break;
                }
                int64_t now = kp_mono_ms();
                if (remaining != last_remaining) {
                        last_remaining = remaining;
                        progress_ms    = now;
                        proc_progress(proc);
                } else if (now - progress_ms > proc->pconf.retry_deadline_ms) {
                        KP_ERROR("restore: no progress for %" PRId64
                                 " ms with %" PRId64
                                 " records to go; exiting so that a "
                                 "supervisor restarts this instance",
                                 now - progress_ms, remaining);
                        result = KP_ERR_TIMED_OUT;
                        break;
                }
                rd_kafka_message_t *m =
                    rd_kafka_consumer_poll(proc->restorer, 100);
                if (m) {
                        result = restore_message(proc, rs, rcnt, m);
                        rd_kafka_message_destroy(m);
                }
                /* The positions only when the queue is empty or every
                 * so many records: asking for them per record cost a
                 * good part of the restore rate. */
                if (result == KP_OK && (!m || ++since_check >= 1024)) {
                        since_check = 0;
                        result = restore_check_ends(proc, rs, rcnt, list, &left,
                                                    &remaining);
                }
                kp_gauge_set(proc->m_restore_remaining, (double)remaining);
                kp_service_set_waiting(proc->svc, remaining);
                if (kp_mono_ms() > next_log) {
                        KP_INFO(
                            "restoring: %" PRId64 " records so far, %" PRId64
                            " to go",
                            (int64_t)kp_counter_get(proc->m_restored) - base,
                            remaining);
                        next_log = kp_mono_ms() + 5000;
                }
        }
        rd_kafka_resp_err_t uerr = rd_kafka_assign(proc->restorer, NULL);
        if (uerr && result == KP_OK) {
                KP_ERROR("releasing the changelogs: %s",
                         rd_kafka_err2str(uerr));
                result = KP_ERR_KAFKA;
        }
        rd_kafka_topic_partition_list_destroy(list);
        kp_gauge_set(proc->m_restore_remaining, 0);
        kp_service_set_waiting(proc->svc, 0);
        if (result == KP_OK)
                KP_INFO("restored %" PRId64 " changelog records in %" PRId64
                        " ms",
                        (int64_t)kp_counter_get(proc->m_restored) - base,
                        kp_mono_ms() - t0);
        return result;
}
