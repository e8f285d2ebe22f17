/* kpay-metrics: metrics processor: throughput, latency percentiles, SLA,
 * outliers. Its business logic lands beside this file as pure functions; main.c
 * stays a thin shell over libkpay. */
#include "kpay/kp_app.h"

int main(int argc, char **argv) {
        static const kp_app_def_t def = {
            .name = "kpay-metrics",
            .summary =
                "Metrics processor: throughput, latency percentiles, SLA, "
                "outliers.",
            .groups = KP_APP_CLIENT | KP_APP_SERVICE | KP_APP_PROCESSOR,
        };
        return kp_app_main_unbuilt(&def, argc, argv);
}
