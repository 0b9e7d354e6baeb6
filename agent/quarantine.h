/* SPDX-License-Identifier: MIT */
/* The quarantine: infected files moved out of everyone's reach into
 * quarantine_dir (0700, the agent's), each kept as ID.data (mode 0400)
 * beside ID.json, the record of where it came from and what found it. */
#ifndef VSEP_QUARANTINE_H
#define VSEP_QUARANTINE_H

#include <stddef.h>
#include <sys/types.h>
#include <json-c/json.h>

/* 16 hex digits and a NUL. */
#define VSEP_QUARANTINE_ID_LEN 17

/* Remember `dir` (must outlive the agent) and create it, 0700; a failure
 * is logged and retried at first use. */
void vsep_quarantine_init(const char *dir);

/* Move the file the scan saw at `path` as (dev, ino) into the quarantine:
 * a rename when it is on the same filesystem, else a copy (fsync'd) and
 * an unlink, never when the path names another file any more (-ESTALE).
 * engine and signature may be NULL. 0 and `id`, or -errno. Thread-safe. */
int vsep_quarantine_file(const char *path, dev_t dev, ino_t ino, const char *engine,
			 const char *signature, char id[VSEP_QUARANTINE_ID_LEN]);

/* The directory holding absolute `path`, opened (O_PATH) without following
 * a symlink anywhere on the way (openat2 RESOLVE_NO_SYMLINKS, else one name
 * at a time): an fd and *base pointing at the last name in path, or -ELOOP
 * or -ENOTDIR (a directory there is a symlink now), -EINVAL (not absolute,
 * "." or ".." in it, or no last name), -errno. */
int vsep_open_parent(const char *path, const char **base);
/* Unlink `path` if it still names (dev, ino), its directory opened as by
 * vsep_open_parent: 0, -ESTALE (another file there now) or -errno. */
int vsep_unlink_if_same(const char *path, dev_t dev, ino_t ino);

/* Put ID back at its original path with its owner, mode and mtime;
 * refuses (-EEXIST) to replace a file there. The file is created as its
 * owner (setfsuid) in its directory resolved without symlinks: -EACCES when
 * the owner could not create it there, -ELOOP/-ENOTDIR when a directory on
 * the path is a symlink now. 0 and the path (malloc'd) in *path, or -errno
 * (-ENOENT: no such ID). Thread-safe. */
int vsep_quarantine_restore(const char *id, char **path);
/* Remove ID and its record for good. 0 or -errno. Thread-safe. */
int vsep_quarantine_delete(const char *id);
/* What is in the quarantine, oldest first: a new reference to an array
 * of {id, path, signature, engine, time, uid, gid, mode, size}, or NULL
 * and *err. Thread-safe. */
struct json_object *vsep_quarantine_list(int *err);

/* The control socket's quarantine-list, quarantine-restore and
 * quarantine-delete commands (any other "quarantine-*" is refused): a new
 * reference to the reply. */
struct json_object *vsep_quarantine_cmd(const char *cmd, struct json_object *req);

/* mkdir -p of an absolute dir: parents as /var/lib would be (0755), dir
 * itself 0700 (the quarantine, vsep's state_dir). 0 or -errno. */
int vsep_make_private_dir(const char *dir);

#endif
