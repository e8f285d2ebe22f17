/**
 * @file kp_app.h
 * @brief What every kpay binary does before its own work: options, logging,
 *        signals.
 *
 * A binary declares a kp_app_def_t (its name, which groups of common
 * options it takes, and its own option sections) and calls kp_app_new().
 * Daemons do not call it themselves: kp_service_main() and kp_proc_main()
 * do, with the runtime's own sections appended.
 */
#ifndef KPAY_KP_APP_H
#define KPAY_KP_APP_H

#include <signal.h>
#include <stdint.h>

#include "kpay/kp_conf.h"

/** The options shared by kpay binaries (DESIGN.md §5, Config). */
typedef struct kp_app_conf_s {
        /* KP_APP_CLIENT: everything that talks to Kafka. */
        char *bootstrap_servers;
        char *topic_prefix;
        char *log_level;
        kp_conf_kv_t kafka; /**< -X key=value, passed to librdkafka; after
                             *   kp_app_new() also the --kafka-config
                             *   properties and the SASL password
                             *   (kp_kafka_config_apply()) */
        char *kafka_config; /**< --kafka-config FILE, or NULL */
        char *kafka_password_file; /**< --kafka-password-file FILE */
        /* KP_APP_SERVICE: long-running daemons with an HTTP endpoint. */
        char *instance_id;
        char *listen;
        char *advertise;
        /* KP_APP_PROCESSOR: stream processors with state. */
        char *state_dir;
        int64_t partitions;
        int64_t replication_factor;
        int64_t commit_interval_ms;
        int64_t commit_min_interval_ms;
} kp_app_conf_t;

/** Groups of common options a binary takes (a bit mask). */
#define KP_APP_CLIENT    0x1
#define KP_APP_SERVICE   0x2
#define KP_APP_PROCESSOR 0x4

typedef struct kp_app_def_s {
        const char *name;       /**< "kpay-account" */
        const char *summary;    /**< one line for --help */
        const char *usage_args; /**< positional arguments, or NULL */
        unsigned groups;        /**< KP_APP_CLIENT | ... */
        /** Option sections after the common ones, ending with {NULL}; or
         *  NULL for none. Neither the tables nor the structs are copied. */
        const kp_conf_section_t *sections;
        /** The runtime's sections (kp_service's, kp_proc's), listed after
         *  the binary's own, same form; or NULL. */
        const kp_conf_section_t *runtime_sections;
} kp_app_def_t;

typedef struct kp_app_s kp_app_t;

/**
 * @brief Loads the configuration, sets up logging and the SIGTERM/SIGINT
 *        handlers.
 *
 * @returns the app, or NULL with *exitp set to the status the process should
 *          exit with: 0 after --help or --version, 2 after a configuration
 *          error (already printed as one line on stderr).
 * @locality main thread, before any other thread starts
 */
kp_app_t *kp_app_new(const kp_app_def_t *def, int argc, char **argv,
                     int *exitp);

/** @brief The common options. */
const kp_app_conf_t *kp_app_conf(const kp_app_t *app);

/** @brief The configuration (for kp_conf_args() and friends). */
kp_conf_t *kp_app_kp_conf(kp_app_t *app);

/** @brief The binary's name, as given in its kp_app_def_t. */
const char *kp_app_name(const kp_app_t *app);

/** @brief 0 once SIGTERM or SIGINT has arrived. @locality any thread */
int kp_app_running(void);

/** @brief Asks the main loop to stop, as a signal would. */
void kp_app_stop(void);

/**
 * @brief The whole main() of a daemon whose processing is not built yet:
 *        options, --help and --version work; running it says so and fails.
 * @returns the process exit status (0 after --help, 2 on a bad option,
 *          3 otherwise: "not implemented").
 */
int kp_app_main_unbuilt(const kp_app_def_t *def, int argc, char **argv);

/** @brief Frees the app and its configuration. NULL is a no-op. */
void kp_app_destroy(kp_app_t *app);

#endif /* KPAY_KP_APP_H */
