/* kp_proc.c: the stream-processing runtime (docs/runtime.md): options,
 * construction, the lifecycle, the consume -> process -> produce loop and
 * the daemon skeleton kp_proc_main(). The other concerns live beside it
 * (kp_proc_int.h lists the files). */
#include "kpay/kp_proc.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kp_proc_int.h"
#include "kpay/kp_conf.h"
#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_time.h"
#include "kpay/kp_topics.h"

#define PCONF(f) offsetof(kp_proc_conf_t, f)
static const kp_conf_opt_t proc_opts[] = {
    {"commit-max-records", 0, KP_CONF_INT, PCONF(commit_max_records), "10000",
     1, 10000000, NULL,
     "Commit the transaction after this many input records at the latest."},
    {"block-cache-mb", 0, KP_CONF_INT, PCONF(block_cache_mb), "16", 1, 1048576,
     NULL, "RocksDB block cache shared by every store of the process (MiB)."},
    {"write-buffer-mb", 0, KP_CONF_INT, PCONF(write_buffer_mb), "8", 1, 1048576,
     NULL, "Memtable memory shared by every store of the process (MiB)."},
    {"transaction-timeout-ms", 0, KP_CONF_INT, PCONF(transaction_timeout_ms),
     "30000", 1000, 900000, NULL,
     "transaction.timeout.ms (message.timeout.ms just below it): longer "
     "than a broker failover, so that one neither times out the open "
     "transaction's records nor lets the coordinator expire (fence) it; "
     "also how long a dead instance's open transaction can hold up the "
     "partitions it owned."},
    {"static-membership", 0, KP_CONF_BOOL, PCONF(static_membership), "false", 0,
     0, NULL,
     "Use --instance-id as group.instance.id, so a restart within the "
     "session timeout moves no partition."},
    {"retry-deadline-ms", 0, KP_CONF_INT, PCONF(retry_deadline_ms), "120000",
     1000, 86400000, NULL,
     "How long a failing Kafka call (end offsets, committed offsets, "
     "transactions, a stalled restore) is retried, with a capped exponential "
     "backoff, before the instance exits 1 for a supervisor to restart it."},
    {"restore-max-rate", 0, KP_CONF_INT, PCONF(restore_max_rate), "0", 0,
     1000000000, NULL,
     "Changelog records restored per second at most (0: no limit): bounds "
     "what a restore in the background takes from the broker and the disk "
     "(and slows restores down for tests)."},
    {NULL},
};

const struct kp_conf_opt_s *kp_proc_conf_table(void) {
        return proc_opts;
}

/* ------------------------------------------------------------------------
 * The lifecycle: the service's state machine. */

void proc_fail(kp_proc_t *proc) {
        kp_service_set_state(proc->svc, KP_SVC_FAILED);
}

int proc_failed(const kp_proc_t *proc) {
        return kp_service_state(proc->svc) == KP_SVC_FAILED;
}

kp_err_t proc_retry_wait(kp_backoff_t *b, int (*keep_going)(void),
                         const char *what, const char *why) {
        kp_err_t w = kp_backoff_wait(b, keep_going);
        if (w == KP_ERR_TIMED_OUT)
                KP_ERROR("%s: %s; giving up after %d attempts in %" PRId64
                         " ms; exiting so that a supervisor restarts this "
                         "instance",
                         what, why, b->attempt, kp_backoff_elapsed_ms(b));
        else if (!w && kp_backoff_log_due(b))
                KP_WARN("%s: %s; retrying (attempt %d)", what, why, b->attempt);
        return w;
}

void proc_progress(kp_proc_t *proc) {
        kp_service_progress(proc->svc);
}

/* ------------------------------------------------------------------------
 * The commit decision (docs/runtime.md, "Exactly once"). */

int kp_commit_due(const kp_commit_policy_t *policy, const kp_commit_state_t *st,
                  int drained, int64_t now_ms) {
        if (st->records >= policy->max_records ||
            now_ms - st->txn_started_ms >= policy->max_interval_ms)
                return 1;
        return drained &&
               now_ms - st->last_commit_ms >= policy->min_interval_ms;
}

int64_t kp_commit_wait_ms(const kp_commit_policy_t *policy,
                          const kp_commit_state_t *st, int64_t now_ms) {
        if (kp_commit_due(policy, st, 1, now_ms))
                return 0;
        int64_t cap  = st->txn_started_ms + policy->max_interval_ms - now_ms;
        int64_t ripe = st->last_commit_ms + policy->min_interval_ms - now_ms;
        return ripe < cap ? ripe : cap;
}

static kp_commit_policy_t commit_policy(const kp_proc_t *proc) {
        kp_commit_policy_t policy = {
            .min_interval_ms = proc->conf->commit_min_interval_ms,
            .max_interval_ms = proc->conf->commit_interval_ms,
            .max_records     = proc->pconf.commit_max_records,
        };
        return policy;
}

static kp_commit_state_t commit_state(const kp_proc_t *proc) {
        kp_commit_state_t st = {
            .txn_started_ms = proc->txn_started_ms,
            .last_commit_ms = proc->last_commit_ms,
            .records        = proc->txn_records,
        };
        return st;
}

/* ------------------------------------------------------------------------
 * The loop. */

/* Seeks @p topic [@p partition] back to @p offset (asynchronously); a
 * failure fails the instance. */
static void rewind_partition(kp_proc_t *proc, const char *topic,
                             int32_t partition, int64_t offset) {
        rd_kafka_topic_partition_list_t *list =
            rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(list, topic, partition)->offset =
            offset;
        rd_kafka_error_t *error =
            rd_kafka_seek_partitions(proc->consumer, list, 0);
        if (error) {
                KP_ERROR("seeking %s [%d]: %s", topic, (int)partition,
                         rd_kafka_error_string(error));
                rd_kafka_error_destroy(error);
                proc_fail(proc);
        }
        rd_kafka_topic_partition_list_destroy(list);
}

/* Processes one record; @p wall_ms and @p mono_ms are the clocks read
 * once for the burst it belongs to (loop()). */
static void process_one(kp_proc_t *proc, rd_kafka_message_t *m, int64_t wall_ms,
                        int64_t mono_ms) {
        const char *topic = rd_kafka_topic_name(m->rkt);
        int in            = input_index(proc, topic);
        task_t *t = (m->partition >= 0 && m->partition < proc->partition_cnt)
                        ? proc->tasks[m->partition]
                        : NULL;
        if (in >= 0 && t && !t->ready) {
                /* A partition still restoring is paused before its first
                 * fetch; should a record come anyway, it is fetched again
                 * once the partition is ready, never skipped. */
                KP_WARN("%s [%d] @%" PRId64
                        " arrived while restoring; "
                        "seeking back to it",
                        topic, (int)m->partition, m->offset);
                rewind_partition(proc, topic, m->partition, m->offset);
                return;
        }
        if (in < 0 || !t) {
                /* A late record of a partition just revoked: the next owner
                 * processes it from the committed offset. */
                KP_DEBUG("skipping %s [%d] @%" PRId64 ": not owned", topic,
                         (int)m->partition, m->offset);
                return;
        }
        if (txn_begin(proc))
                return;
        rd_kafka_headers_t *hdrs = NULL;
        if (rd_kafka_message_headers(m, &hdrs))
                hdrs = NULL;
        rd_kafka_timestamp_type_t tstype;
        kp_record_t rec = {
            .topic     = topic,
            .topic_id  = proc->input_ids[in],
            .input     = in,
            .partition = m->partition,
            .offset    = m->offset,
            .timestamp = rd_kafka_message_timestamp(m, &tstype),
            .key       = m->key,
            .key_len   = m->key_len,
            .value     = m->payload,
            .value_len = m->len,
            .headers   = hdrs,
        };
        kp_ctx_t ctx = {
            .proc = proc, .task = t, .rec = &rec, .now_ms = wall_ms};
        kp_counter_add(proc->m_in, 1);
        flow_admit(proc, in, mono_ms);
        /* The record in hand is work waiting until process() returns: a
         * process() that never does shows as a stall on /healthz. */
        kp_service_set_waiting(proc->svc, 1);
        kp_err_t err = proc->def.process(&ctx, &rec, proc->def.opaque);
        if (err == KP_ERR_STORE || err == KP_ERR_FATAL) {
                KP_ERROR("processing %s [%d] @%" PRId64
                         ": %s; exiting "
                         "without committing",
                         topic, (int)m->partition, m->offset, kp_err2str(err));
                proc_fail(proc);
                return;
        }
        if (err && proc->txn == KP_TXN_OPEN) {
                kp_counter_add(proc->m_process_errors, 1);
                kp_ctx_dead_letter(&ctx, kp_err2name(err), kp_err2str(err));
        }
        t->in_next[in] = m->offset + 1;
        proc->txn_records++;
}

static void punctuate_all(kp_proc_t *proc) {
        int64_t now = kp_wall_ms();
        for (int32_t p = 0; p < proc->partition_cnt && !proc_failed(proc);
             p++) {
                task_t *t = proc->tasks[p];
                if (!t || !t->ready)
                        continue;
                kp_ctx_t ctx = {
                    .proc = proc, .task = t, .rec = NULL, .now_ms = now};
                proc->def.punctuate(&ctx, now, proc->def.opaque);
        }
}

static void update_store_gauges(kp_proc_t *proc) {
        for (int s = 0; s < proc->store_cnt; s++) {
                double keys = 0;
                for (int32_t p = 0; p < proc->partition_cnt; p++)
                        if (proc->tasks[p])
                                keys += (double)kp_store_estimate_keys(
                                    proc->tasks[p]->stores[s]);
                char labels[300], esc[200];
                snprintf(labels, sizeof(labels), "store=\"%s\"",
                         kp_metrics_escape_label(esc, sizeof(esc),
                                                 proc->store_names[s]));
                kp_gauge_set(kp_metrics_gauge(proc->metrics, "kpay_store_keys",
                                              "Estimated keys in the local "
                                              "stores.",
                                              labels),
                             keys);
        }
        kp_gauge_set(
            kp_metrics_gauge(proc->metrics, "kpay_store_block_cache_bytes",
                             "Bytes in the shared RocksDB block "
                             "cache.",
                             NULL),
            (double)kp_store_env_cache_usage(proc->env));
}

/* Serves one message of the consumer (a record or an event). */
static void serve_message(kp_proc_t *proc, rd_kafka_message_t *m,
                          int64_t wall_ms, int64_t mono_ms) {
        if (!m->err) {
                if (!proc_failed(proc))
                        process_one(proc, m, wall_ms, mono_ms);
        } else if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
                KP_ERROR("consumer: fatal: %s", rd_kafka_message_errstr(m));
                proc_fail(proc);
        } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                KP_WARN("consumer: %s", rd_kafka_message_errstr(m));
        }
        rd_kafka_message_destroy(m);
}

/* The timed work of one loop iteration: commit when due (@p drained: the
 * last poll found no record ready), punctuate, flow control, heartbeat and
 * gauges. */
static void loop_timers(kp_proc_t *proc, int64_t now, int drained) {
        if (txn_open(proc)) {
                kp_commit_policy_t policy = commit_policy(proc);
                kp_commit_state_t st      = commit_state(proc);
                if (proc->txn == KP_TXN_MUST_ABORT ||
                    kp_commit_due(&policy, &st, drained, now)) {
                        txn_commit(proc);
                        proc->last_commit_ms = kp_mono_ms();
                }
        }
        if (proc->def.punctuate && now >= proc->next_punctuate_ms) {
                punctuate_all(proc);
                proc->next_punctuate_ms = now + proc->def.punctuate_interval_ms;
        }
        if (proc->def.tick)
                proc->def.tick(proc, now, proc->def.opaque);
        flow_apply(proc, now);
        /* An input paused on purpose (control plane, rate limit) is not a
         * stall, whatever waits behind it. */
        for (int i = 0; i < proc->input_cnt; i++)
                if (proc->flow[i].paused)
                        proc_progress(proc);
        if (proc->assignment_changed) {
                kp_service_announce(proc->svc);
                update_store_gauges(proc);
                proc->assignment_changed = 0;
        }
        kp_service_poll(proc->svc);
}

/* Whether the records ready may be processed in a burst, without the
 * timers in between: not while an input is paused or rate limited on
 * purpose (flow control applies per record then), nor once the
 * transaction must abort or holds the record cap. */
static int burst_may_go_on(const kp_proc_t *proc, int done) {
        if (done >= KP_PROC_BURST || proc->txn != KP_TXN_OPEN ||
            proc->txn_records >= proc->pconf.commit_max_records ||
            proc_failed(proc))
                return 0;
        for (int i = 0; i < proc->input_cnt; i++)
                if (atomic_load(&proc->flow[i].want_paused) ||
                    atomic_load(&proc->flow[i].rate_milli) > 0)
                        return 0;
        return 1;
}

/* A slice of the restores in the background, when the loop found nothing
 * to process (@p drained) or every KP_PROC_RESTORE_SLICE_MS of processing
 * at the latest: with both busy, each gets about half the time. */
static void loop_restore(kp_proc_t *proc, int drained, int64_t *last_ms) {
        if (!proc->restore_started_ms)
                return;
        int64_t now = kp_mono_ms();
        if (!drained && now - *last_ms < KP_PROC_RESTORE_SLICE_MS)
                return;
        /* Nothing else to do: wait a little for the changelog's records. */
        if (restore_slice(proc, drained && !restore_wait_ms(proc, 5) ? 5 : 0))
                proc_fail(proc);
        *last_ms = kp_mono_ms();
}

static void loop(kp_proc_t *proc) {
        int64_t now             = kp_mono_ms();
        proc->next_punctuate_ms = now + proc->def.punctuate_interval_ms;
        int64_t next_gauges     = now;
        int64_t last_restore    = now;
        while (kp_app_running() && !proc_failed(proc)) {
                int64_t wait = flow_wait_ms(proc, now);
                /* The restore slice waits instead (loop_restore()). */
                wait = restore_wait_ms(proc, wait);
                if (txn_open(proc)) {
                        kp_commit_policy_t policy = commit_policy(proc);
                        kp_commit_state_t st      = commit_state(proc);
                        int64_t due = kp_commit_wait_ms(&policy, &st, now);
                        wait        = due < wait ? due : wait;
                }
                rd_kafka_message_t *m =
                    rd_kafka_consumer_poll(proc->consumer, (int)wait);
                int drained = !m; /* nothing was ready within the wait */
                /* Nothing ready for the loop is nothing waiting, whatever
                 * librdkafka's consumer_lag says: it counts from the
                 * consumer's own committed offset, which transactional
                 * commits (through the producer) never move, so it never
                 * falls back to 0 and an idle instance would read as
                 * stalled on /healthz. */
                if (drained)
                        kp_service_set_waiting(proc->svc, 0);
                if (m) {
                        /* A burst: the records ready now, up to
                         * KP_PROC_BURST, with the clocks read once (they
                         * were a good part of the CPU per record). */
                        int64_t wall = kp_wall_ms(), mono = kp_mono_ms();
                        int done = 0;
                        for (;;) {
                                serve_message(proc, m, wall, mono);
                                if (!burst_may_go_on(proc, ++done))
                                        break;
                                /* Nothing ready at once ends the burst, but
                                 * is not "drained": that takes a poll that
                                 * found nothing within its wait (a commit
                                 * per momentarily empty fetch queue would
                                 * cost more commits than records). */
                                if (!(m = rd_kafka_consumer_poll(proc->consumer,
                                                                 0)))
                                        break;
                        }
                        proc_progress(proc);
                }
                if (proc_failed(proc))
                        break;
                loop_restore(proc, drained, &last_restore);
                if (proc_failed(proc))
                        break;
                rd_kafka_poll(proc->producer, 0);
                now = kp_mono_ms();
                loop_timers(proc, now, drained);
                if (now >= next_gauges) {
                        update_store_gauges(proc);
                        next_gauges = now + 5000;
                }
        }
}

/* Leaves the group within what is left of the shutdown bound: the close
 * runs in the background while this thread serves its queue (the revoke
 * callback commits and closes the stores); with the broker gone it would
 * otherwise wait for the group coordinator. */
static void close_consumer(kp_proc_t *proc) {
        rd_kafka_queue_t *q = rd_kafka_queue_new(proc->consumer);
        rd_kafka_error_t *error =
            rd_kafka_consumer_close_queue(proc->consumer, q);
        if (error) {
                if (!proc_failed(proc))
                        KP_WARN("closing the consumer: %s",
                                rd_kafka_error_string(error));
                rd_kafka_error_destroy(error);
        } else {
                while (!rd_kafka_consumer_closed(proc->consumer)) {
                        int64_t left = kp_service_shutdown_left_ms(proc->svc);
                        if (left <= 0) {
                                KP_WARN(
                                    "leaving the group did not finish "
                                    "within --shutdown-timeout-ms; the "
                                    "broker ends the membership");
                                break;
                        }
                        rd_kafka_event_t *ev = rd_kafka_queue_poll(
                            q, (int)(left < 100 ? left : 100));
                        if (!ev)
                                continue;
                        /* The revoke arrives as an event on this queue. */
                        if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_REBALANCE)
                                proc_rebalance_cb(
                                    proc->consumer, rd_kafka_event_error(ev),
                                    rd_kafka_event_topic_partition_list(ev),
                                    proc);
                        rd_kafka_event_destroy(ev);
                }
        }
        rd_kafka_queue_destroy(q);
}

/* Leaves in order, within --shutdown-timeout-ms (kp_service.h): a clean
 * stop commits the open transaction, publishes the tombstone and leaves
 * the group (its revoke closes the stores); a failure commits nothing,
 * not even through that revoke. */
static int shutdown_proc(kp_proc_t *proc) {
        int rc = proc_failed(proc) ? 1 : 0;
        /* A failure stops the process too: the exit guard then bounds it. */
        kp_app_stop();
        kp_service_begin_shutdown(proc->svc);
        proc->stopping = 1;
        /* A restore in progress stops at once (its partitions are closed
         * below): the restorer stops fetching now rather than in its
         * close, late in the shutdown bound. */
        if (proc->restorer && proc->restore_started_ms) {
                rd_kafka_resp_err_t aerr =
                    rd_kafka_assign(proc->restorer, NULL);
                if (aerr)
                        KP_WARN("releasing the changelogs: %s",
                                rd_kafka_err2str(aerr));
        }
        if (!rc) {
                KP_INFO("shutting down");
                if (txn_commit(proc) == KP_ERR_FATAL)
                        rc = 1;
                kp_service_stop(proc->svc);
        } else if (txn_open(proc)) {
                if (!rd_kafka_fatal_error(proc->producer, NULL, 0))
                        txn_abort(proc);
                else
                        drop_uncommitted(proc);
        }
        close_consumer(proc);
        if (txn_open(proc))
                drop_uncommitted(proc);
        close_tasks(proc, NULL);
        if (proc_failed(proc))
                rc = 1;
        KP_INFO("stopped (exit status %d)", rc);
        return rc;
}

int kp_proc_run(kp_proc_t *proc) {
        char errstr[512];
        kp_err_t err = kp_service_start(proc->svc, errstr, sizeof(errstr));
        if (err) {
                KP_ERROR("%s", errstr);
                return 1;
        }
        if ((err = proc_clients_start(proc))) {
                if (!kp_app_running()) {
                        /* Stopped while starting: a clean exit. */
                        kp_service_stop(proc->svc);
                        return 0;
                }
                proc_fail(proc);
                return 1;
        }
        loop(proc);
        return shutdown_proc(proc);
}

/* ------------------------------------------------------------------------
 * Construction. */

static kp_err_t check_def(const kp_proc_def_t *def, const kp_app_conf_t *c,
                          char *errstr, size_t errstr_size) {
        const kp_proc_layout_t *l = def->layout;
        if (!l || !l->service || !l->inputs || l->inputs[0] == KP_TOPIC_NONE ||
            !def->process ||
            (def->punctuate && def->punctuate_interval_ms <= 0)) {
                snprintf(errstr, errstr_size,
                         "a processor needs a layout (service, inputs), "
                         "process(), and a positive punctuate interval with "
                         "punctuate()");
                return KP_ERR_INVALID_ARG;
        }
        if (!c->state_dir || !c->instance_id || !c->listen) {
                snprintf(errstr, errstr_size,
                         "a processor needs --state-dir, --instance-id and "
                         "--listen");
                return KP_ERR_INVALID_ARG;
        }
        return KP_OK;
}

/* Every topic the processor names, by id: kpay's, then the extra ones. */
static kp_err_t name_topics(kp_proc_t *proc, char *errstr, size_t errstr_size) {
        const kp_proc_layout_t *l = proc->def.layout;
        int extra                 = 0;
        while (proc->def.extra_topics && proc->def.extra_topics[extra])
                extra++;
        proc->topic_cnt   = KP_TOPIC__CNT + extra;
        proc->topic_names = kp_calloc((size_t)proc->topic_cnt, sizeof(char *));
        for (int id = 0; id < KP_TOPIC__CNT; id++) {
                char name[256];
                kp_topic_name(name, sizeof(name), proc->prefix,
                              (kp_topic_id_t)id);
                proc->topic_names[id] = kp_strdup(name);
        }
        for (int i = 0; i < extra; i++)
                proc->topic_names[KP_TOPIC__CNT + i] = kp_asprintf(
                    "%s%s", proc->prefix, proc->def.extra_topics[i]);
        while (l->inputs[proc->input_cnt] != KP_TOPIC_NONE)
                proc->input_cnt++;
        proc->input_ids =
            kp_calloc((size_t)proc->input_cnt, sizeof(*proc->input_ids));
        for (int i = 0; i < proc->input_cnt; i++) {
                if ((int)l->inputs[i] < 0 ||
                    (int)l->inputs[i] >= proc->topic_cnt) {
                        snprintf(errstr, errstr_size,
                                 "input %d has an unknown topic id %d", i,
                                 (int)l->inputs[i]);
                        return KP_ERR_INVALID_ARG;
                }
                proc->input_ids[i] = l->inputs[i];
        }
        return KP_OK;
}

static void name_stores(kp_proc_t *proc) {
        static const char *const no_stores[] = {NULL};
        proc->store_names =
            proc->def.layout->stores ? proc->def.layout->stores : no_stores;
        while (proc->store_names[proc->store_cnt])
                proc->store_cnt++;
        proc->changelogs =
            kp_calloc((size_t)proc->store_cnt + 1, sizeof(char *));
        for (int s = 0; s < proc->store_cnt; s++) {
                char name[256];
                kp_changelog_name(name, sizeof(name), proc->prefix,
                                  proc->service, proc->store_names[s]);
                proc->changelogs[s] = kp_strdup(name);
        }
}

static void register_metrics(kp_proc_t *proc) {
        kp_metrics_t *m = proc->metrics;
        proc->m_in      = kp_metrics_counter(m, "kpay_records_in_total",
                                             "Input records processed.", NULL);
        proc->m_out     = kp_metrics_counter(
                m, "kpay_records_out_total",
                "Records produced (outputs, changelogs, dead letters).", NULL);
        proc->m_dlq =
            kp_metrics_counter(m, "kpay_records_dead_lettered_total",
                               "Input records sent to kpay.dlq.", NULL);
        proc->m_rerouted = kp_metrics_counter(
            m, "kpay_records_rerouted_total",
            "Input records re-produced to the partition that owns them "
            "(kp_ctx_reroute()).",
            NULL);
        proc->m_process_errors = kp_metrics_counter(
            m, "kpay_process_errors_total",
            "Records whose processing failed (and were dead-lettered).", NULL);
        proc->m_changelog = kp_metrics_counter(
            m, "kpay_changelog_records_total",
            "Changelog records written (one per key and transaction).", NULL);
        proc->m_committed =
            kp_metrics_counter(m, "kpay_transactions_committed_total",
                               "Kafka transactions committed.", NULL);
        proc->m_aborted =
            kp_metrics_counter(m, "kpay_transactions_aborted_total",
                               "Kafka transactions aborted.", NULL);
        static const double bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025,
                                        0.05,  0.1,    0.25,  0.5,  1,
                                        2.5,   5,      10};
        proc->m_commit_latency       = kp_metrics_histogram(
                  m, "kpay_commit_latency_seconds",
                  "Time to commit a transaction (offsets, outputs, stores).", NULL,
                  bounds, sizeof(bounds) / sizeof(bounds[0]));
        proc->m_restored = kp_metrics_counter(
            m, "kpay_restore_records_total",
            "Changelog records replayed into local stores.", NULL);
        proc->m_restore_remaining =
            kp_metrics_gauge(m, "kpay_restore_remaining_records",
                             "Changelog records left to replay.", NULL);
        proc->m_restoring = kp_metrics_gauge(
            m, "kpay_restoring", "1 while stores are being restored.", NULL);
        proc->m_restoring_partitions = kp_metrics_gauge(
            m, "kpay_restoring_partitions",
            "Partitions owned whose stores are still restoring (not "
            "processed yet).",
            NULL);
        proc->m_partitions =
            kp_metrics_gauge(m, "kpay_assigned_partitions",
                             "Partitions this instance owns.", NULL);
        for (int i = 0; i < proc->input_cnt; i++) {
                char labels[300], esc[280];
                snprintf(labels, sizeof(labels), "topic=\"%s\"",
                         kp_metrics_escape_label(
                             esc, sizeof(esc),
                             proc->topic_names[proc->input_ids[i]]));
                proc->flow[i].m_paused = kp_metrics_gauge(
                    m, "kpay_input_paused",
                    "1 while an input is paused (control or rate limit).",
                    labels);
                proc->flow[i].m_throttled = kp_metrics_counter(
                    m, "kpay_input_throttled_total",
                    "Times an input paused to keep to its rate limit.", labels);
        }
}

kp_proc_t *kp_proc_new(kp_app_t *app, const kp_service_conf_t *sconf,
                       const kp_proc_conf_t *pconf, const kp_proc_def_t *def,
                       char *errstr, size_t errstr_size) {
        const kp_app_conf_t *c = kp_app_conf(app);
        if (check_def(def, c, errstr, errstr_size))
                return NULL;
        kp_proc_t *proc = kp_calloc(1, sizeof(*proc));
        proc->app       = app;
        proc->conf      = c;
        proc->pconf     = *pconf;
        proc->def       = *def;
        proc->service   = def->layout->service;
        proc->prefix    = kp_strdup(c->topic_prefix ? c->topic_prefix : "");
        if (name_topics(proc, errstr, errstr_size)) {
                kp_proc_destroy(proc);
                return NULL;
        }
        name_stores(proc);
        proc->group_id = kp_asprintf("%skpay-%s", proc->prefix, proc->service);
        proc->txn_id = kp_asprintf("%skpay-%s-%s", proc->prefix, proc->service,
                                   c->instance_id);
        proc->flow   = kp_calloc((size_t)proc->input_cnt, sizeof(*proc->flow));
        /* Writers (rebalances) must not starve behind a stream of queries. */
        pthread_rwlockattr_t rwattr;
        pthread_rwlockattr_init(&rwattr);
        pthread_rwlockattr_setkind_np(
            &rwattr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
        int r = pthread_rwlock_init(&proc->tasks_lock, &rwattr);
        if (r) {
                /* As for a failed allocation (kp_mem.h): abort. */
                KP_FATAL("pthread_rwlock_init: %s", strerror(r));
                abort();
        }
        pthread_rwlockattr_destroy(&rwattr);

        proc->svc =
            kp_service_new(app, sconf, proc->service, errstr, errstr_size);
        if (!proc->svc) {
                kp_proc_destroy(proc);
                return NULL;
        }
        proc->metrics = kp_service_metrics(proc->svc);
        proc->env     = kp_store_env_new((size_t)pconf->block_cache_mb << 20,
                                         (size_t)pconf->write_buffer_mb << 20);
        kp_service_set_info_cb(proc->svc, proc_info_cb, proc);
        proc_query_routes(proc);
        register_metrics(proc);
        return proc;
}

kp_err_t kp_proc_commit(kp_proc_t *proc) {
        return txn_commit(proc);
}

kp_service_t *kp_proc_service(kp_proc_t *proc) {
        return proc->svc;
}

kp_metrics_t *kp_proc_metrics(kp_proc_t *proc) {
        return proc->metrics;
}

/* Destroys a client after taking it off /v1/config. The group consumer
 * was closed (or given up on) by shutdown_proc(): its destroy must not
 * try again. */
static void destroy_client(kp_proc_t *proc, const char *role, rd_kafka_t *rk,
                           int close) {
        if (!rk)
                return;
        kp_service_add_client(proc->svc, role, NULL);
        if (close)
                rd_kafka_consumer_close(rk);
        rd_kafka_destroy_flags(
            rk, close ? 0 : RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
}

void kp_proc_destroy(kp_proc_t *proc) {
        if (!proc)
                return;
        /* HTTP first: no query may run on the tasks once they go. */
        kp_service_t *svc = proc->svc;
        if (svc)
                kp_service_halt_http(svc);
        if (proc->tasks)
                close_tasks(proc, NULL);
        if (svc) {
                destroy_client(proc, "consumer", proc->consumer, 0);
                destroy_client(proc, "producer", proc->producer, 0);
                if (proc->restore_q)
                        rd_kafka_queue_destroy(proc->restore_q);
                destroy_client(proc, "restorer", proc->restorer, 1);
        }
        kp_service_destroy(svc);
        kp_store_env_destroy(proc->env);
        for (int t = 0; proc->topic_names && t < proc->topic_cnt; t++)
                kp_free(proc->topic_names[t]);
        kp_free(proc->topic_names);
        kp_free(proc->input_ids);
        for (int s = 0; proc->changelogs && s < proc->store_cnt; s++)
                kp_free(proc->changelogs[s]);
        kp_free(proc->changelogs);
        kp_free(proc->tasks);
        kp_free(proc->info_parts);
        kp_free(proc->restores);
        kp_free(proc->flow);
        kp_free(proc->prefix);
        kp_free(proc->group_id);
        kp_free(proc->txn_id);
        pthread_rwlock_destroy(&proc->tasks_lock);
        kp_free(proc);
}

/* ------------------------------------------------------------------------
 * The daemon skeleton. */

int kp_proc_main(const kp_proc_def_t *def, int argc, char **argv) {
        kp_service_conf_t sconf;
        kp_proc_conf_t pconf;
        char errstr[512];
        int rc;
        const kp_conf_section_t runtime[] = {
            {kp_service_conf_table(), &sconf}, {proc_opts, &pconf}, {NULL}};
        const kp_app_def_t adef = {
            .name     = def->name,
            .summary  = def->summary,
            .groups   = KP_APP_CLIENT | KP_APP_SERVICE | KP_APP_PROCESSOR,
            .sections = def->sections,
            .runtime_sections = runtime,
        };
        kp_app_t *app = kp_app_new(&adef, argc, argv, &rc);
        if (!app)
                return rc;
        kp_proc_def_t d = *def;
        kp_err_t err    = d.configure ? d.configure(&d, d.opaque) : KP_OK;
        if (err) {
                fprintf(stderr, "%s: %s\n", def->name, kp_err2str(err));
                kp_app_destroy(app);
                return 2;
        }
        kp_proc_t *proc =
            kp_proc_new(app, &sconf, &pconf, &d, errstr, sizeof(errstr));
        if (!proc) {
                fprintf(stderr, "%s: %s\n", def->name, errstr);
                kp_app_destroy(app);
                return 2;
        }
        kp_service_arm_exit_guard(proc->svc);
        err = d.init ? d.init(proc, d.opaque) : KP_OK;
        if (err) {
                fprintf(stderr, "%s: initialization failed: %s\n", def->name,
                        kp_err2str(err));
                rc = 1;
        } else {
                rc = kp_proc_run(proc);
        }
        kp_service_halt_http(proc->svc);
        if (d.fini)
                d.fini(proc, d.opaque);
        kp_proc_destroy(proc);
        kp_app_destroy(app);
        return rc;
}
