/*
 * api.h - how libdsm's sources see the public API.
 *
 * The library is built with -fvisibility=hidden; DSM_API marks the definitions of the
 * functions declared in <dsm/dsm.h>, the only symbols libdsm.so exports.
 */
#ifndef DSM_API_H
#define DSM_API_H

#include <dsm/dsm.h>

#define DSM_API __attribute__((visibility("default")))

#endif
