/* kpay-admin: creates and checks kpay's topics, waits for the cluster, and
 * the operational commands (docs/ops.md).
 *
 *   kpay-admin topics     create every topic of DESIGN.md §2 that is missing
 *                         and check the others (partitions, cleanup.policy)
 *   kpay-admin wait       wait until the cluster answers a metadata request
 *   kpay-admin describe T print T's partition count and cleanup.policy
 *   kpay-admin trace ID   every record of payment ID, in time order
 *   kpay-admin dlq list   the dead letters (--error, --service)
 *   kpay-admin dlq replay --error CODE   re-produce them, exactly once
 *
 * Exit status: 0 on success, 1 on a Kafka error or a topic that does not
 * match, 2 on a bad argument, 3 when trace finds no record. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "kpay/kp_admin.h"
#include "kpay/kp_app.h"
#include "kpay/kp_kafka.h"
#include "kpay/kp_log.h"
#include "layouts.h"
#include "opscmd.h"

typedef struct admin_conf_s {
        int64_t partitions;
        int64_t replication_factor;
        int64_t timeout_ms;
        char *error;
        char *service;
        char *actor;
        int dry_run;
        int again;
        int json;
        int64_t since_ms;
        int64_t max_scan;
} admin_conf_t;

static admin_conf_t aconf;

#define AOPT(field) offsetof(admin_conf_t, field)
static const kp_conf_opt_t admin_opts[] = {
    {"partitions", 0, KP_CONF_INT, AOPT(partitions), "12", 1, 10000, NULL,
     "Partition count of the keyed topics and the changelogs."},
    {"replication-factor", 0, KP_CONF_INT, AOPT(replication_factor), "1", 1, 16,
     NULL, "Replication factor of new topics (3 in production)."},
    {"timeout-ms", 0, KP_CONF_INT, AOPT(timeout_ms), "30000", 100, 3600000,
     NULL, "How long to wait for the cluster."},
    {"error", 0, KP_CONF_STR, AOPT(error), NULL, 0, 0, "CODE",
     "dlq list / replay: only dead letters with this kpay-error."},
    {"service", 0, KP_CONF_STR, AOPT(service), NULL, 0, 0, "S",
     "dlq list / replay: only dead letters of this service (kpay-service)."},
    {"actor", 0, KP_CONF_STR, AOPT(actor), NULL, 0, 0, "NAME",
     "dlq replay: who replays, for the audit record (default $USER, else "
     "anonymous)."},
    {"dry-run", 0, KP_CONF_BOOL, AOPT(dry_run), "false", 0, 0, NULL,
     "dlq replay: list what would be replayed, write nothing."},
    {"again", 0, KP_CONF_BOOL, AOPT(again), "false", 0, 0, NULL,
     "dlq replay: also replay letters that are failed replays themselves "
     "(they carry kpay-replay-of); each letter is still replayed once."},
    {"json", 0, KP_CONF_BOOL, AOPT(json), "false", 0, 0, NULL,
     "trace / dlq list: one JSON object per line."},
    {"since-ms", 0, KP_CONF_INT, AOPT(since_ms), "0", 0, INT64_MAX, "MS",
     "trace / dlq: read only records from this time on (ms since the "
     "epoch; 0: the whole retention)."},
    {"max-scan", 0, KP_CONF_INT, AOPT(max_scan), "10000000", 0, INT64_MAX, "N",
     "trace / dlq: read at most N records per partition (0: no bound); "
     "a bounded scan says so."},
    {NULL},
};

static int cmd_wait(rd_kafka_t *rk, const kp_app_conf_t *c) {
        char errstr[700];
        if (kp_kafka_wait_ready_reason(rk, c->bootstrap_servers,
                                       (int)aconf.timeout_ms, errstr,
                                       sizeof(errstr)) != KP_OK) {
                fprintf(stderr, "kpay-admin: %s\n", errstr);
                return 1;
        }
        return 0;
}

static int cmd_topics(rd_kafka_t *rk, const kp_app_conf_t *c) {
        char errstr[512];
        kp_topic_plan_t plan = {0};
        if (cmd_wait(rk, c))
                return 1;
        kp_topic_plan_all(&plan, c->topic_prefix, (int)aconf.partitions,
                          (int)aconf.replication_factor, admin_layouts);
        kp_err_t err = kp_admin_ensure_topics(rk, &plan, (int)aconf.timeout_ms,
                                              stdout, errstr, sizeof(errstr));
        kp_topic_plan_clear(&plan);
        fflush(stdout);
        if (err) {
                fprintf(stderr, "kpay-admin: %s\n", errstr);
                return 1;
        }
        return 0;
}

static int cmd_describe(rd_kafka_t *rk, const kp_app_conf_t *c, int argc,
                        char **argv) {
        char errstr[512], cleanup[64];
        int parts, rc = 0;
        if (cmd_wait(rk, c))
                return 1;
        for (int i = 1; i < argc; i++) {
                if (kp_admin_describe_topic(rk, argv[i], (int)aconf.timeout_ms,
                                            &parts, cleanup, sizeof(cleanup),
                                            errstr, sizeof(errstr))) {
                        fprintf(stderr, "kpay-admin: %s\n", errstr);
                        rc = 1;
                        continue;
                }
                printf("%s partitions=%d cleanup.policy=%s\n", argv[i], parts,
                       cleanup);
        }
        return rc;
}

int main(int argc, char **argv) {
        int rc;
        const kp_app_def_t def = {
            .name = "kpay-admin",
            .summary =
                "Create and check kpay's topics; trace a payment; list and "
                "replay dead letters.\n"
                "Commands: topics | wait | describe TOPIC... | trace ID | "
                "dlq list | dlq replay --error CODE",
            .usage_args = "COMMAND [ARGS]",
            .groups     = KP_APP_CLIENT,
            .sections =
                (const kp_conf_section_t[]){{admin_opts, &aconf}, {NULL, NULL}},
        };
        kp_app_t *app = kp_app_new(&def, argc, argv, &rc);
        if (!app)
                return rc;

        int nargs;
        char **args            = kp_conf_args(kp_app_kp_conf(app), &nargs);
        const kp_app_conf_t *c = kp_app_conf(app);
        if (nargs >= 1 &&
            (!strcmp(args[0], "trace") || !strcmp(args[0], "dlq"))) {
                opscmd_opts_t o = {.error      = aconf.error,
                                   .service    = aconf.service,
                                   .actor      = aconf.actor,
                                   .dry_run    = aconf.dry_run,
                                   .again      = aconf.again,
                                   .json       = aconf.json,
                                   .since_ms   = aconf.since_ms,
                                   .max_scan   = aconf.max_scan,
                                   .timeout_ms = (int)aconf.timeout_ms};
                rc              = opscmd_main(c, &o, nargs, args);
                kp_app_destroy(app);
                return rc;
        }
        if (nargs < 1 ||
            (strcmp(args[0], "topics") && strcmp(args[0], "wait") &&
             strcmp(args[0], "describe"))) {
                fprintf(stderr,
                        "kpay-admin: expected a command: topics, wait, "
                        "describe TOPIC..., trace ID, dlq list or dlq "
                        "replay (see --help)\n");
                kp_app_destroy(app);
                return 2;
        }
        if ((!strcmp(args[0], "describe") && nargs < 2) ||
            (strcmp(args[0], "describe") && nargs > 1)) {
                fprintf(stderr, "kpay-admin: wrong arguments for %s\n",
                        args[0]);
                kp_app_destroy(app);
                return 2;
        }

        rd_kafka_t *rk = opscmd_client(c, "kpay-admin", NULL);
        if (!rk) {
                kp_app_destroy(app);
                return 2;
        }
        if (!strcmp(args[0], "wait"))
                rc = cmd_wait(rk, c);
        else if (!strcmp(args[0], "topics"))
                rc = cmd_topics(rk, c);
        else
                rc = cmd_describe(rk, c, nargs, args);
        rd_kafka_destroy(rk);
        kp_app_destroy(app);
        return rc;
}
