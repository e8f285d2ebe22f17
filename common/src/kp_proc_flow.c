/* kp_proc_flow.c: flow control of the processor's inputs
 * (docs/runtime.md, "Flow control"): pausing an input (the control plane's
 * pause) and rate limiting it, both with librdkafka's partition pause. The
 * fetcher stops, the records it had queued are fetched again on resume,
 * and nothing is lost or reordered. The rate limit is a token bucket
 * (kp_bucket.h) whose burst outlasts the fetch round trip after a resume.
 */
#include <string.h>

#include "kp_proc_int.h"
#include "kpay/kp_bucket.h"
#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_time.h"

kp_err_t kp_proc_pause_input(kp_proc_t *proc, kp_topic_id_t input, int paused) {
        int in = input_index_of_id(proc, input);
        if (in < 0)
                return KP_ERR_INVALID_ARG;
        atomic_store(&proc->flow[in].want_paused, paused ? 1 : 0);
        return KP_OK;
}

int kp_proc_input_paused(kp_proc_t *proc, kp_topic_id_t input) {
        int in = input_index_of_id(proc, input);
        return in >= 0 && atomic_load(&proc->flow[in].want_paused);
}

kp_err_t kp_proc_rate_limit_input(kp_proc_t *proc, kp_topic_id_t input,
                                  double per_second) {
        int in = input_index_of_id(proc, input);
        if (in < 0 || !(per_second >= 0) || per_second > 1e12)
                return KP_ERR_INVALID_ARG;
        int64_t milli = (int64_t)(per_second * 1000.0 + 0.5);
        if (per_second > 0 && milli < 1)
                milli = 1; /* a tiny rate is still a limit, not none */
        atomic_store(&proc->flow[in].rate_milli, milli);
        return KP_OK;
}

/* ------------------------------------------------------------------------
 * Pausing. */

/* Pauses (@p pause) or resumes the partitions in @p list; a failure fails
 * the instance. */
static void pause_list(kp_proc_t *proc, rd_kafka_topic_partition_list_t *list,
                       int pause) {
        if (!list->cnt)
                return;
        rd_kafka_resp_err_t err =
            pause ? rd_kafka_pause_partitions(proc->consumer, list)
                  : rd_kafka_resume_partitions(proc->consumer, list);
        if (err) {
                KP_ERROR("%s partitions: %s", pause ? "pausing" : "resuming",
                         rd_kafka_err2str(err));
                proc_fail(proc);
        }
}

void flow_pause_assigned(kp_proc_t *proc,
                         const rd_kafka_topic_partition_list_t *parts) {
        /* A paused input stays paused across a rebalance; a partition that
         * left while paused (librdkafka keeps the flag) is resumed if its
         * input was resumed meanwhile. A partition whose task is still
         * restoring stays paused until it is ready (flow_resume_task()). */
        rd_kafka_topic_partition_list_t *lists[2] = {
            rd_kafka_topic_partition_list_new(parts->cnt),
            rd_kafka_topic_partition_list_new(parts->cnt)};
        for (int i = 0; i < parts->cnt; i++) {
                int in    = input_index(proc, parts->elems[i].topic);
                int32_t p = parts->elems[i].partition;
                const task_t *t =
                    p >= 0 && p < proc->partition_cnt ? proc->tasks[p] : NULL;
                int restoring = t && !t->ready;
                if (in >= 0)
                        rd_kafka_topic_partition_list_add(
                            lists[proc->flow[in].paused || restoring ? 1 : 0],
                            parts->elems[i].topic, p);
        }
        for (int pause = 0; pause < 2; pause++) {
                pause_list(proc, lists[pause], pause);
                rd_kafka_topic_partition_list_destroy(lists[pause]);
        }
}

void flow_resume_task(kp_proc_t *proc, const task_t *t) {
        rd_kafka_topic_partition_list_t *list =
            rd_kafka_topic_partition_list_new(proc->input_cnt);
        for (int in = 0; in < proc->input_cnt; in++)
                if (!proc->flow[in].paused)
                        rd_kafka_topic_partition_list_add(
                            list, proc->topic_names[proc->input_ids[in]],
                            t->partition);
        pause_list(proc, list, 0);
        rd_kafka_topic_partition_list_destroy(list);
}

/* Pauses or resumes input @p in on every partition this instance owns
 * (@p asked: for kp_proc_pause_input(), else for the rate limit); a
 * resume leaves the partitions still restoring paused. */
static void flow_set_paused(kp_proc_t *proc, int in, int pause, int asked) {
        rd_kafka_topic_partition_list_t *list =
            rd_kafka_topic_partition_list_new(proc->partition_cnt);
        const char *topic = proc->topic_names[proc->input_ids[in]];
        for (int32_t p = 0; p < proc->partition_cnt; p++)
                if (proc->tasks && proc->tasks[p] &&
                    (pause || proc->tasks[p]->ready))
                        rd_kafka_topic_partition_list_add(list, topic, p);
        pause_list(proc, list, pause);
        rd_kafka_topic_partition_list_destroy(list);
        if (asked || !pause)
                KP_LOG(
                    asked || proc->flow[in].paused ? KP_LOG_INFO : KP_LOG_DEBUG,
                    "input %s %s", topic, pause ? "paused" : "resumed");
        else
                KP_DEBUG("input %s paused for its rate limit", topic);
        proc->flow[in].paused = pause;
        kp_gauge_set(proc->flow[in].m_paused, pause);
}

/* ------------------------------------------------------------------------
 * The rate limit. */

void flow_admit(kp_proc_t *proc, int input, int64_t now_ms) {
        flow_t *f = &proc->flow[input];
        int64_t r = atomic_load(&f->rate_milli);
        /* A record already fetched is processed even when the bucket is
         * empty (it goes into debt); flow_apply() then pauses the input
         * until the debt is repaid, so the rate holds over time. */
        if (r > 0)
                kp_bucket_take(&f->bucket, (double)r / 1000.0, now_ms);
}

/* Whether input @p in must be paused for its rate limit now. */
static int flow_throttled(flow_t *f, int64_t now_ms) {
        int64_t r = atomic_load(&f->rate_milli);
        if (r <= 0) {
                kp_bucket_reset(&f->bucket);
                return 0;
        }
        kp_bucket_refill(&f->bucket, (double)r / 1000.0, now_ms);
        return kp_bucket_empty(&f->bucket);
}

void flow_apply(kp_proc_t *proc, int64_t now_ms) {
        if (!proc->consumer)
                return;
        for (int in = 0; in < proc->input_cnt; in++) {
                flow_t *f     = &proc->flow[in];
                int want      = atomic_load(&f->want_paused);
                int throttled = flow_throttled(f, now_ms);
                int pause     = want || throttled;
                if (pause == f->paused)
                        continue;
                if (pause && throttled && !want)
                        kp_counter_add(f->m_throttled, 1);
                flow_set_paused(proc, in, pause, want);
        }
}

int64_t flow_wait_ms(kp_proc_t *proc, int64_t now_ms) {
        int64_t wait = 100;
        for (int in = 0; in < proc->input_cnt; in++) {
                flow_t *f = &proc->flow[in];
                int64_t r = atomic_load(&f->rate_milli);
                if (r <= 0 || !f->paused || atomic_load(&f->want_paused))
                        continue;
                /* Come back when the bucket holds a token again. */
                int64_t ms = kp_bucket_wait_ms(&f->bucket, (double)r / 1000.0);
                if (ms < wait)
                        wait = ms < 1 ? 1 : ms;
        }
        (void)now_ms;
        return wait;
}
