/* STUB: the log API helper writes this file. */
#include "api/api.h"

const struct rd_api_route rd_api_logs_routes[] = {{NULL, NULL, NULL, false}};
const size_t rd_api_logs_nroutes = 0;
