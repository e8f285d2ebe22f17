/**
 * @file control.h
 * @brief The business logic of kpay-control, as pure functions: request
 *        validation, the bearer-token check, the next ControlStatus
 *        version, and the pipeline state computed from what the
 *        kpay-inflight instances report (docs/control.md). No Kafka, no
 *        HTTP; any thread; nothing keeps state between calls.
 */
#ifndef KPAY_CONTROL_H
#define KPAY_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include "kpay/kp_control.h"
#include "kpay/kp_discovery.h"
#include "kpay/kp_err.h"

/** Request bodies above this are refused (413) before parsing. */
#define CONTROL_BODY_MAX 4096
/** Tokens are compared in this many steps whatever their lengths; a token
 *  must be shorter (the token file is read into a buffer this size). */
#define CONTROL_TOKEN_CMP_LEN 4096

/** The mutations of the REST API. */
typedef enum control_cmd_e {
        CONTROL_CMD_PAUSE,
        CONTROL_CMD_RESUME,
        CONTROL_CMD_RATE_LIMIT,
} control_cmd_t;

/** @brief "pause", "resume" or "rate-limit" (the record's command). */
const char *control_cmd2str(control_cmd_t cmd);

/** A validated request. */
typedef struct control_request_s {
        control_cmd_t cmd;
        int64_t rate_limit; /**< rate-limit: payments/s, 0 for none (null) */
        char reason[201];   /**< optional free text for the audit trail */
} control_request_t;

/**
 * @brief Validates the body of a mutation. pause and resume take no body,
 *        or a JSON object with an optional "reason" string (at most 200
 *        characters); rate-limit takes {"payments_per_second": N} with N an
 *        integer in 1..KP_CONTROL_RATE_MAX, or null (no limit), and the
 *        same optional "reason". Any other field, type or value is refused.
 * @returns KP_OK with @p out filled; KP_ERR_PARSE (the body is not JSON)
 *          or KP_ERR_INVALID_ARG (wrong fields or values), with a reason
 *          for the client in errstr.
 */
kp_err_t control_parse_request(control_cmd_t cmd, const char *body, size_t len,
                               control_request_t *out, char *errstr,
                               size_t errstr_size);

/**
 * @brief 1 if @p a and @p b are the same string, comparing every byte of
 *        the longer one whatever the first difference (constant time for a
 *        given length: the time does not tell how much of a guess was
 *        right).
 */
int control_token_equal(const char *a, const char *b);

/**
 * @brief The HTTP status for a mutation's Authorization header: 0 when it
 *        may proceed (no token configured, or "Bearer <token>" matches),
 *        401 when the header is missing or not a bearer token, 403 when
 *        the token is wrong.
 */
int control_authorize(const char *token, const char *authorization);

/**
 * @brief Writes the actor of a mutation into @p buf: the X-KPay-Actor
 *        header with every character outside [A-Za-z0-9._@:-] replaced by
 *        '_' and cut to KP_CONTROL_ACTOR_MAX, else "token" (authenticated
 *        with the token) or "anonymous".
 */
void control_actor(char *buf, size_t size, const char *header,
                   int authenticated);

/**
 * @brief The next ControlStatus after @p cur (version 0: none yet):
 *        version + 1, the command's effect (pause, resume, or the new rate
 *        limit, the rest carried over), @p actor and @p now_ms.
 */
void control_next(const kp_control_status_t *cur, const control_request_t *req,
                  const char *actor, int64_t now_ms, kp_control_status_t *next);

/** The state of the pipeline. */
typedef enum control_state_e {
        CONTROL_RUNNING,
        CONTROL_PAUSED,
        CONTROL_DRAINED,
} control_state_t;

/** @brief "RUNNING", "PAUSED" or "DRAINED". */
const char *control_state2str(control_state_t st);

/** One kpay-inflight instance as kpay-control sees it. */
typedef struct control_instance_s {
        const kp_instance_info_t *info; /**< its live InstanceInfo */
        int has_report;                 /**< info->status parsed */
        kp_control_report_t report;
        int applied; /**< (output) it has applied the current version */
} control_instance_t;

/** What control_compute() concludes. */
typedef struct control_view_s {
        control_state_t state;
        size_t instances; /**< live kpay-inflight instances */
        size_t applied;   /**< of which have applied the current version */
        int covered;      /**< together they own every partition */
        int64_t inflight_count; /**< summed over the instances (saturated) */
} control_view_t;

/**
 * @brief The pipeline state: RUNNING when the status is not paused;
 *        DRAINED when it is paused and every live instance in RUNNING
 *        lifecycle has applied this version (or a later one) with its
 *        intake paused, no instance is in another lifecycle state
 *        (restoring, starting), the instances together own every partition
 *        (so no partition's in-flight total is unknown), there is at least
 *        one, and the in-flight count summed over them is 0; PAUSED
 *        otherwise. Sets each instance's `applied`.
 */
control_view_t control_compute(const kp_control_status_t *st,
                               control_instance_t *inst, size_t cnt);

/**
 * @brief The in-flight amounts of the instances that reported, summed per
 *        currency (never across currencies) into @p out (initialized).
 * @returns KP_OK, or KP_ERR_OVERFLOW when a sum would pass 128 bits (not
 *          reachable by int64 amounts; @p out then holds the sums before
 *          the instance that overflowed).
 */
kp_err_t control_inflight_amounts(const control_instance_t *inst, size_t cnt,
                                  kp_money_t *out);

/**
 * @brief kpay-control's OpenAPI 3 document (JSON): exactly the endpoints of
 *        its REST API with their request bodies and error bodies.
 * @returns a static string.
 */
const char *control_openapi_json(void);

#endif /* KPAY_CONTROL_H */
