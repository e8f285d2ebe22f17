/* kp_proc_flow.c: flow control of the processor's inputs
 * (docs/runtime.md, "Flow control"): pausing an input (the control plane's
 * pause) and rate limiting it, both with librdkafka's partition pause. The
 * fetcher stops, the records it had queued are fetched again on resume,
 * and nothing is lost or reordered.
 *
 * Every resume restarts the fetch, which librdkafka 2.0.2 can delay by up
 * to a second (fixed in 2.10), so the rate limit pauses and resumes as
 * seldom as it can: a record already fetched is processed even with the
 * bucket empty (it goes into debt); the input pauses once the bucket is
 * in debt and resumes only when half a second of tokens has accumulated;
 * the bucket holds two seconds of them, so the time a restarted fetch
 * takes is not lost. The rate holds over any window of a few seconds;
 * within one it comes in bursts. */
#include <math.h>
#include <string.h>

#include "kp_proc_int.h"
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
         * input was resumed meanwhile. */
        rd_kafka_topic_partition_list_t *lists[2] = {
            rd_kafka_topic_partition_list_new(parts->cnt),
            rd_kafka_topic_partition_list_new(parts->cnt)};
        for (int i = 0; i < parts->cnt; i++) {
                int in = input_index(proc, parts->elems[i].topic);
                if (in >= 0)
                        rd_kafka_topic_partition_list_add(
                            lists[proc->flow[in].paused ? 1 : 0],
                            parts->elems[i].topic, parts->elems[i].partition);
        }
        for (int pause = 0; pause < 2; pause++) {
                pause_list(proc, lists[pause], pause);
                rd_kafka_topic_partition_list_destroy(lists[pause]);
        }
}

/* Pauses or resumes input @p in on every partition this instance owns
 * (@p asked: for kp_proc_pause_input(), else for the rate limit). */
static void flow_set_paused(kp_proc_t *proc, int in, int pause, int asked) {
        rd_kafka_topic_partition_list_t *list =
            rd_kafka_topic_partition_list_new(proc->partition_cnt);
        const char *topic = proc->topic_names[proc->input_ids[in]];
        for (int32_t p = 0; p < proc->partition_cnt; p++)
                if (proc->tasks && proc->tasks[p])
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

/* The bucket holds this many seconds of tokens; a throttled input resumes
 * once it holds RESUME_S of them. */
#define BUCKET_S 2.0
#define RESUME_S 0.5

static void flow_refill(flow_t *f, double rate, int64_t now_ms) {
        double cap = rate * BUCKET_S > 1.0 ? rate * BUCKET_S : 1.0;
        if (f->tokens_ms == 0)
                f->tokens = rate * RESUME_S > 1.0 ? rate * RESUME_S : 1.0;
        else
                f->tokens += rate * (double)(now_ms - f->tokens_ms) / 1000.0;
        if (f->tokens > cap)
                f->tokens = cap;
        f->tokens_ms = now_ms;
}

void flow_admit(kp_proc_t *proc, int input, int64_t now_ms) {
        flow_t *f = &proc->flow[input];
        int64_t r = atomic_load(&f->rate_milli);
        if (r <= 0)
                return;
        flow_refill(f, (double)r / 1000.0, now_ms);
        f->tokens -= 1.0;
}

/* Whether input @p in must be paused for its rate limit now. */
static int flow_throttled(flow_t *f, int64_t now_ms) {
        int64_t r = atomic_load(&f->rate_milli);
        if (r <= 0) {
                f->tokens_ms = 0;
                f->throttled = 0;
                return 0;
        }
        double rate = (double)r / 1000.0;
        flow_refill(f, rate, now_ms);
        double resume = rate * RESUME_S > 1.0 ? rate * RESUME_S : 1.0;
        if (!f->throttled && f->tokens < 0.0) {
                f->throttled = 1;
                kp_counter_add(f->m_throttled, 1);
        } else if (f->throttled && f->tokens >= resume) {
                f->throttled = 0;
        }
        return f->throttled;
}

void flow_apply(kp_proc_t *proc, int64_t now_ms) {
        if (!proc->consumer)
                return;
        for (int in = 0; in < proc->input_cnt; in++) {
                flow_t *f = &proc->flow[in];
                int want  = atomic_load(&f->want_paused);
                int pause = want || flow_throttled(f, now_ms);
                if (pause != f->paused)
                        flow_set_paused(proc, in, pause, want);
        }
}

int64_t flow_wait_ms(kp_proc_t *proc, int64_t now_ms) {
        int64_t wait = 100;
        for (int in = 0; in < proc->input_cnt; in++) {
                flow_t *f = &proc->flow[in];
                int64_t r = atomic_load(&f->rate_milli);
                if (r <= 0 || !f->throttled)
                        continue;
                /* Come back when the bucket reaches the resume level. */
                double rate   = (double)r / 1000.0;
                double resume = rate * RESUME_S > 1.0 ? rate * RESUME_S : 1.0;
                int64_t ms =
                    (int64_t)ceil((resume - f->tokens) * 1000.0 / rate);
                if (ms < wait)
                        wait = ms < 1 ? 1 : ms;
        }
        (void)now_ms;
        return wait;
}
