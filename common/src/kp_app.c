/* kp_app.c: common options, logging and signals for every kpay binary. */
#include "kpay/kp_app.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kpay/kp_kafka.h"
#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"

#define APP_OPT(field) offsetof(kp_app_conf_t, field)

static const kp_conf_opt_t client_opts[] = {
    {"bootstrap-servers", 'b', KP_CONF_STR, APP_OPT(bootstrap_servers),
     "127.0.0.1:9092", 0, 0, "HOST:PORT,...", "Kafka bootstrap servers."},
    {"topic-prefix", 0, KP_CONF_STR, APP_OPT(topic_prefix), "", 0, 0, "STR",
     "Prefix of every topic name, so deployments can share a cluster."},
    {"log-level", 0, KP_CONF_STR, APP_OPT(log_level), "info", 0, 0, "LEVEL",
     "fatal, error, warn, info or debug."},
    {"kafka", 'X', KP_CONF_KV, APP_OPT(kafka), NULL, 0, 0, "KEY=VALUE",
     "Any librdkafka property (security.protocol, sasl.*, ssl.*...); "
     "repeatable; wins over --kafka-config."},
    {"kafka-config", 0, KP_CONF_STR, APP_OPT(kafka_config), NULL, 0, 0, "FILE",
     "Java-style properties file of librdkafka properties for every Kafka "
     "client (security.protocol, sasl.mechanisms, sasl.username, "
     "ssl.ca.location...; docs/security.md)."},
    {"kafka-password-file", 0, KP_CONF_STR, APP_OPT(kafka_password_file), NULL,
     0, 0, "FILE",
     "File whose first line is sasl.password (a mounted secret); or the "
     "password itself in env KPAY_KAFKA_SASL_PASSWORD."},
    {NULL},
};

static const kp_conf_opt_t service_opts[] = {
    {"instance-id", 0, KP_CONF_STR, APP_OPT(instance_id), NULL, 0, 0, "ID",
     "This instance's id, unique per service (default: hostname-pid)."},
    {"listen", 0, KP_CONF_STR, APP_OPT(listen), "127.0.0.1:0", 0, 0,
     "HOST:PORT", "HTTP listen address (port 0 picks a free port)."},
    {"advertise", 0, KP_CONF_STR, APP_OPT(advertise), NULL, 0, 0, "HOST:PORT",
     "HTTP address published to others (default: the listen address)."},
    {NULL},
};

static const kp_conf_opt_t processor_opts[] = {
    {"state-dir", 0, KP_CONF_STR, APP_OPT(state_dir), "./state", 0, 0, "DIR",
     "Directory of the local RocksDB state stores."},
    {"partitions", 0, KP_CONF_INT, APP_OPT(partitions), "12", 1, 10000, NULL,
     "Expected partition count of the input topics (the deployment's); the "
     "topics decide, a difference is logged as a warning."},
    {"replication-factor", 0, KP_CONF_INT, APP_OPT(replication_factor), "1", 1,
     16, NULL, "Replication factor of the topics this processor creates."},
    {"commit-interval-ms", 0, KP_CONF_INT, APP_OPT(commit_interval_ms), "100",
     1, 600000, NULL,
     "Longest a transaction stays open (ms): under load it grows until "
     "then or --commit-max-records."},
    {"commit-min-interval-ms", 0, KP_CONF_INT, APP_OPT(commit_min_interval_ms),
     "20", 0, 600000, NULL,
     "Commit as soon as the input has nothing more ready and this long "
     "(ms) has passed since the last commit."},
    {NULL},
};

struct kp_app_s {
        const char *name;
        kp_conf_t *conf;
        kp_app_conf_t common;
};

/* Set by the signal handler, read by the main loop and by the exit guard's
 * thread (kp_service.h): a lock-free atomic, which C11 allows in a signal
 * handler and which is race-free across threads (a volatile sig_atomic_t
 * is only the former). */
static atomic_int app_stop;

static void on_signal(int sig) {
        (void)sig;
        atomic_store(&app_stop, 1);
}

int kp_app_running(void) {
        return !atomic_load(&app_stop);
}

void kp_app_stop(void) {
        atomic_store(&app_stop, 1);
}

kp_app_t *kp_app_new(const kp_app_def_t *def, int argc, char **argv,
                     int *exitp) {
        char errstr[512];
        kp_app_t *app = kp_calloc(1, sizeof(*app));
        app->name     = def->name;
        app->conf     = kp_conf_new(def->name, def->summary, def->usage_args);
        if (def->groups & KP_APP_CLIENT)
                kp_conf_add_table(app->conf, client_opts, &app->common);
        if (def->groups & KP_APP_SERVICE)
                kp_conf_add_table(app->conf, service_opts, &app->common);
        if (def->groups & KP_APP_PROCESSOR)
                kp_conf_add_table(app->conf, processor_opts, &app->common);
        for (const kp_conf_section_t *sec = def->sections; sec && sec->opts;
             sec++)
                kp_conf_add_table(app->conf, sec->opts, sec->base);
        for (const kp_conf_section_t *sec = def->runtime_sections;
             sec && sec->opts; sec++)
                kp_conf_add_table(app->conf, sec->opts, sec->base);

        kp_log_set_service(def->name);
        if (kp_conf_load(app->conf, argc, argv, exitp, errstr,
                         sizeof(errstr)) != KP_OK) {
                fprintf(stderr, "%s: %s\n", def->name, errstr);
                *exitp = 2;
                kp_app_destroy(app);
                return NULL;
        }
        if (*exitp >= 0) {
                kp_app_destroy(app);
                return NULL;
        }

        if ((def->groups & KP_APP_CLIENT) &&
            kp_kafka_config_apply(&app->common, errstr, sizeof(errstr))) {
                fprintf(stderr, "%s: %s\n", def->name, errstr);
                *exitp = 2;
                kp_app_destroy(app);
                return NULL;
        }
        if (app->common.log_level) {
                kp_log_level_t level;
                if (kp_log_level_parse(app->common.log_level, &level)) {
                        fprintf(stderr,
                                "%s: --log-level must be fatal, error, warn, "
                                "info or debug, not \"%s\"\n",
                                def->name, app->common.log_level);
                        *exitp = 2;
                        kp_app_destroy(app);
                        return NULL;
                }
                kp_log_set_level(level);
        }
        if ((def->groups & KP_APP_SERVICE) && !app->common.instance_id) {
                char host[128];
                if (gethostname(host, sizeof(host)) != 0)
                        snprintf(host, sizeof(host), "localhost");
                host[sizeof(host) - 1] = '\0';
                app->common.instance_id =
                    kp_asprintf("%s-%ld", host, (long)getpid());
        }

        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);
        return app;
}

const kp_app_conf_t *kp_app_conf(const kp_app_t *app) {
        return &app->common;
}

kp_conf_t *kp_app_kp_conf(kp_app_t *app) {
        return app->conf;
}

const char *kp_app_name(const kp_app_t *app) {
        return app->name;
}

void kp_app_destroy(kp_app_t *app) {
        if (!app)
                return;
        /* The last counts of suppressed repeated lines (kp_log.h). */
        kp_log_flush(1);
        /* The instance id may have been defaulted after loading; the conf
         * frees whatever string the field then holds. */
        kp_conf_destroy(app->conf);
        kp_free(app);
}

int kp_app_main_unbuilt(const kp_app_def_t *def, int argc, char **argv) {
        int rc;
        kp_app_t *app = kp_app_new(def, argc, argv, &rc);
        if (!app)
                return rc;
        KP_ERROR("%s: its processing is not built yet (see docs/status.md)",
                 def->name);
        kp_app_destroy(app);
        return 3;
}
