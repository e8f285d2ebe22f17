/* kpay-web: web tier: UI, public REST API, OpenAPI and query fan-out.
 * A kp_service daemon (kp_service.h): /healthz, /readyz, /metrics,
 * /v1/config and its InstanceInfo on kpay.metadata come from the runtime;
 * its own routes and business logic land beside this file. */
#include "kpay/kp_service.h"

int main(int argc, char **argv) {
        static const kp_service_def_t def = {
            .name    = "kpay-web",
            .service = "web",
            .summary =
                "Web tier: UI, public REST API, OpenAPI and query fan-out.",
        };
        return kp_service_main(&def, argc, argv);
}
