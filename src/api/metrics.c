/* STUB: the roll-up helper writes this file. */
#include "api/api.h"

const struct rd_api_route rd_api_metrics_routes[] = {{NULL, NULL, NULL, false}};
const size_t rd_api_metrics_nroutes = 0;
