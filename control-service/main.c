/* kpay-control: control plane: pause, resume, drain and rate limit over REST.
 * A kp_service daemon (kp_service.h): /healthz, /readyz, /metrics,
 * /v1/config and its InstanceInfo on kpay.metadata come from the runtime;
 * its own routes and business logic land beside this file. */
#include "kpay/kp_service.h"

int main(int argc, char **argv) {
        static const kp_service_def_t def = {
            .name    = "kpay-control",
            .service = "control",
            .summary =
                "Control plane: pause, resume, drain and rate limit over REST.",
        };
        return kp_service_main(&def, argc, argv);
}
