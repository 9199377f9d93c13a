/* STUB: the live-stream helper writes this file. */
#include "api/api.h"

const struct rd_api_route rd_api_log_stream_routes[] = {{NULL, NULL, NULL, false}};
const size_t rd_api_log_stream_nroutes = 0;
