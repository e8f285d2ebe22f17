/**
 * @file gate.h
 * @brief kpay-inflight's control-plane gate (docs/control.md): it follows
 *        kpay.control.status, pauses the `incoming` input while the
 *        pipeline is paused (completions keep flowing: the drain), applies
 *        this instance's share of the rate limit, and reports the version
 *        applied and the in-flight totals of its partitions in the
 *        "status" of its InstanceInfo.
 */
#ifndef KPAY_INFLIGHT_GATE_H
#define KPAY_INFLIGHT_GATE_H

#include <stddef.h>
#include <stdint.h>

#include "kpay/kp_proc.h"

typedef struct gate_s gate_t;

/**
 * @brief Starts following kpay.control.status (every partition, from the
 *        beginning), waits until everything written before is read, and
 *        applies it before the first assignment: an instance started while
 *        the pipeline is paused processes no incoming record.
 * @returns the gate, or NULL with a reason (the topic could not be read in
 *          time: the instance must not start unpaused on a guess).
 * @locality main thread, in init()
 */
gate_t *gate_new(kp_proc_t *proc, char *errstr, size_t errstr_size);

/**
 * @brief Applies a new ControlStatus or a new partition share, and
 *        publishes the report (at once after a change, every 250 ms while
 *        paused, with the heartbeat otherwise).
 * @locality processing thread (the processor's tick())
 */
void gate_tick(gate_t *g, kp_proc_t *proc, int64_t now_ms);

/** @brief Stops the follower and frees the gate. NULL is a no-op. */
void gate_destroy(gate_t *g);

#endif /* KPAY_INFLIGHT_GATE_H */
