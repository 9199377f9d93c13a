/* The OpenAI-compatible route table, shared by openai and deepseek (and later
 * by azure with a path prefix): the same API shape, so the same data. */
#ifndef RD_PROVIDERS_OPENAI_ROUTES_H
#define RD_PROVIDERS_OPENAI_ROUTES_H

#include <stddef.h>

#include "providers/provider.h"

#define RD_OPENAI_ROUTES_V1 6   /* OpenAI: the /v1 routes */
#define RD_OPENAI_ROUTES_ALL 10 /* DeepSeek: the same, also without /v1 */
extern const struct rd_route rd_openai_routes[RD_OPENAI_ROUTES_ALL];

#endif
