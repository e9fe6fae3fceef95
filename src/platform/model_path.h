/*
 * model_path.h - confine the model paths that arrive through the admin API
 * to the operator's models directory.
 *
 * The configuration file and the command line are the operator's: their
 * paths are trusted as given. A path in `POST /admin/deployments` comes
 * over the network (an admin key may be leaked or shared with a
 * deployment tool), so it is resolved (realpath: symbolic links and ".."
 * followed) and must land inside the models directory (--models-dir,
 * default the configuration file's folder) and must not be one of the
 * store's files (the database and its -wal / -shm / -journal siblings):
 * opening and closing a descriptor of the database file would drop
 * SQLite's POSIX locks on it, after which `nuage admin` deletes the live
 * WAL. A refusal says only that the path is not an allowed model file --
 * the same words whether it does not exist, lies outside, or is the store
 * -- so the API cannot be used to probe the machine's files.
 */
#ifndef NUAGE_PLATFORM_MODEL_PATH_H
#define NUAGE_PLATFORM_MODEL_PATH_H

#include <stddef.h>

/*
 * Resolve `path` (relative: to models_dir) and check it. models_dir and
 * store_path (may be NULL: no store) should be absolute, canonical paths
 * (nuage_model_path_dir makes one). Returns 0 with the canonical path in
 * out (cap bytes), or NUAGE_E_INVAL with a message in err that names
 * only `path` as given (truncated) -- never anything found on disk.
 */
int nuage_model_path_confine(const char *models_dir, const char *store_path, const char *path, char *out,
                             size_t cap, char *err, size_t errlen);

/* The canonical form of a directory (realpath) into out: 0, or
 * NUAGE_E_IO when it does not exist or is not a directory. */
int nuage_model_path_dir(const char *dir, char *out, size_t cap);

/* The folder of a file path ("." when it has none) into out. */
void nuage_model_path_dirname(const char *file, char *out, size_t cap);

#endif
