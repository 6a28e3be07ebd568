/* The web UI's files (the folder inbox/web), built into the binary by inbox/embed.sh,
 * which writes the table below into a generated C file. */
#ifndef IB_ASSETS_H
#define IB_ASSETS_H

#include <stddef.h>

typedef struct ib_asset {
    const char *path;         /* "/index.html" */
    const char *content_type; /* "text/html; charset=utf-8" */
    const unsigned char *data;
    size_t len;
} ib_asset;

extern const ib_asset ib_assets[]; /* ends with an entry whose path is NULL */

#endif
