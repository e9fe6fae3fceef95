/*
 * console.h - the web console's files, built into the binary.
 *
 * The build turns every file of console/ into a byte array
 * (scripts/embed_console.cmake writes console_assets.c in the build
 * folder); console.c serves them under /console/ and index.html at /.
 */
#ifndef NUAGE_SERVER_CONSOLE_H
#define NUAGE_SERVER_CONSOLE_H

#include <stddef.h>

typedef struct {
    const char *path;          /* URL path, "/console/app.js"; NULL ends the table */
    const char *content_type;  /* static */
    const char *etag;          /* quoted strong validator (content hash) */
    const unsigned char *data; /* (size) bytes, NUL-terminated */
    size_t size;
} nuage__console_asset;

/* The table, ended by a NULL path (generated). */
extern const nuage__console_asset nuage__console_assets[];

#endif
