/*
 * model_path.c - admin-API model paths confined to the models directory
 * (see model_path.h).
 *
 * Containment is decided on canonical paths only: realpath() of the
 * directory (once, at start) and of the candidate (per request), then a
 * prefix test that requires a '/' right after the directory so that
 * "/models-old/x" is not inside "/models". The store's files are compared
 * the same way, as canonical paths, plus any name that starts with the
 * database's canonical path (SQLite's siblings are "<db>-wal", "<db>-shm",
 * "<db>-journal"), and by device and inode (a hard link to the database
 * is the database). Only regular files pass: a directory, a FIFO (which
 * would block the loading thread) or a device is refused with the same
 * words as a missing file.
 */
#define _GNU_SOURCE /* realpath with a NULL buffer */
#include "platform/model_path.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nuage/nuage.h"

static int nuage__path_refuse(const char *path, char *err, size_t errlen) {
    snprintf(err, errlen,
             "model '%.120s' is not an allowed model file: give a .gguf file inside the server's models "
             "directory (--models-dir)", path);
    return NUAGE_E_INVAL;
}

/* Is canonical path p inside canonical directory dir (strictly below it)? */
static bool nuage__path_inside(const char *dir, const char *p) {
    size_t n = strlen(dir);
    if (n == 1 && dir[0] == '/') return p[0] == '/' && p[1] != 0;
    return !strncmp(p, dir, n) && p[n] == '/' && p[n + 1] != 0;
}

int nuage_model_path_confine(const char *models_dir, const char *store_path, const char *path, char *out,
                             size_t cap, char *err, size_t errlen) {
    if (!path || !*path || !models_dir || !*models_dir) return nuage__path_refuse(path ? path : "", err, errlen);
    char joined[PATH_MAX + 2];
    if (path[0] == '/') {
        if (strlen(path) >= sizeof joined) return nuage__path_refuse(path, err, errlen);
        snprintf(joined, sizeof joined, "%s", path);
    } else if ((size_t)snprintf(joined, sizeof joined, "%s/%s", models_dir, path) >= sizeof joined) {
        return nuage__path_refuse(path, err, errlen);
    }
    char *real = realpath(joined, NULL);
    if (!real) return nuage__path_refuse(path, err, errlen);
    int rc = 0;
    struct stat sb;
    if (!nuage__path_inside(models_dir, real) || stat(real, &sb) || !S_ISREG(sb.st_mode)) rc = -1;
    if (!rc && store_path && *store_path) {
        char *db = realpath(store_path, NULL);
        const char *cmp = db ? db : store_path;
        size_t n = strlen(cmp);
        if (!strncmp(real, cmp, n) && (real[n] == 0 || real[n] == '-')) rc = -1;
        free(db);
        /* A hard link to one of them is the same file under another name. */
        static const char *const sib[] = {"", "-wal", "-shm", "-journal"};
        for (size_t i = 0; !rc && i < sizeof sib / sizeof sib[0]; i++) {
            char f[PATH_MAX + 16];
            struct stat fb;
            snprintf(f, sizeof f, "%s%s", store_path, sib[i]);
            if (!stat(f, &fb) && fb.st_dev == sb.st_dev && fb.st_ino == sb.st_ino) rc = -1;
        }
    }
    if (!rc && strlen(real) >= cap) rc = -1;
    if (rc) {
        free(real);
        return nuage__path_refuse(path, err, errlen);
    }
    snprintf(out, cap, "%s", real);
    free(real);
    return 0;
}

int nuage_model_path_dir(const char *dir, char *out, size_t cap) {
    char *real = realpath(dir && *dir ? dir : ".", NULL);
    struct stat sb;
    int rc = real && !stat(real, &sb) && S_ISDIR(sb.st_mode) && strlen(real) < cap ? 0 : NUAGE_E_IO;
    if (!rc) snprintf(out, cap, "%s", real);
    free(real);
    return rc;
}

void nuage_model_path_dirname(const char *file, char *out, size_t cap) {
    const char *slash = file ? strrchr(file, '/') : NULL;
    if (!slash) {
        snprintf(out, cap, ".");
        return;
    }
    int n = slash == file ? 1 : (int)(slash - file);
    snprintf(out, cap, "%.*s", n, file);
}
