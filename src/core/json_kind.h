/* What a JSON value is, for messages about config and checkpoint fields (the config parser
 * and the checkpoint readers both say "is a string, not an object"). Internal. */
#ifndef DSC_CORE_JSON_KIND_H
#define DSC_CORE_JSON_KIND_H

#include <jansson.h>

/* "an object", "an array", "a string", "an integer", "a real number", "a boolean", "null";
 * "missing" for NULL. */
const char *dsc__json_kind(const json_t *v);

#endif
