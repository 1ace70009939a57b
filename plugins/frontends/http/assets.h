/* assets.h: the web assets compiled into the plugin, a fixed table generated
 * at build time by cmake/embed_assets.cmake from the list in
 * plugins/CMakeLists.txt (TB_HTTP_ASSETS: URL, content type, file). Requests
 * are answered from this table only: no path from a URL ever reaches the file
 * system. */
#ifndef TB_HTTP_ASSETS_H
#define TB_HTTP_ASSETS_H

#include <stddef.h>

typedef struct http_asset {
    const char *url;          /* exact request path, e.g. "/assets/uplot.js" */
    const char *content_type;
    const unsigned char *bytes;
    size_t size;
} http_asset;

extern const http_asset http_assets[];
extern const int http_asset_count;

#endif
