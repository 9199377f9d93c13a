/* STUB: the metrics helper writes this file. */
#include "api/api.h"

const struct rd_api_route rd_api_prometheus_routes[] = {{NULL, NULL, NULL, false}};
const size_t rd_api_prometheus_nroutes = 0;
