/* SPDX-License-Identifier: MIT */
/* Every fanotify call vsep makes: the group, the marks on the protected
 * trees (and what keeps them right as directories and mounts come and go),
 * reading events and writing the one answer each permission event gets. */
#ifndef VSEP_FANOTIFY_H
#define VSEP_FANOTIFY_H

#include <stdbool.h>
#include "vsep.h"

/* How a protected path is watched, for status. */
struct vsep_mark {
	const char *path;
	bool mount;     /* a mount mark (the path is a mount point) */
	unsigned dirs;  /* inode marks placed (0 for a mount mark); as at start:
			 * vsep_fan_mark_status() has the current count */
};

/* The fanotify group (and, best effort, the second group that reports new
 * directories of inode-marked trees). 0 and *fanfd, or -errno (-EPERM
 * without CAP_SYS_ADMIN). */
int vsep_fan_init(int *fanfd);
/* Watch one protected directory: a mount mark when it is a mount point,
 * else inode marks on every directory of its tree (this mount only).
 * -ENOENT / -ENOTDIR when the path is not a directory. `out` is kept: it
 * names the tree in vsep_fan_mark_status. Marking a path again re-places
 * its marks. */
int vsep_fan_mark(int fanfd, const char *path, struct vsep_mark *out);
/* Frees what vsep_fan_init and vsep_fan_mark keep. */
void vsep_fan_fini(void);

/* After FAN_MARK_FLUSH of the group's inode marks (which drops every
 * ignore mark, on a new signature generation): place the inode marks of
 * every inode-marked protected tree again. Thread-safe. 0 or -errno. */
int vsep_fan_remark(int fanfd);
/* Remove every ignore mark of the group, one by one through the file
 * handles its fdinfo lists, leaving every other mark in place: no moment
 * in which the protected trees are unmarked. *cleared counts them. 0, or
 * the first -errno (a mark that could not be reached; the caller may then
 * fall back to FAN_MARK_FLUSH and vsep_fan_remark). */
int vsep_fan_clear_ignores(int fanfd, size_t *cleared);

typedef void (*vsep_fan_event_fn)(const struct vsep_event *ev, void *arg);
/* One read() of the group: fn once per event (fn owns ev->fd). 0 after
 * events or nothing pending, -errno on failure. */
int vsep_fan_read(int fanfd, vsep_fan_event_fn fn, void *arg);
/* The answer the opener waits for. 0 or -errno. */
int vsep_fan_respond(int fanfd, int fd, bool allow);
/* The path an event's fd was opened by (from /proc/self/fd), 0 or -errno. */
int vsep_fan_fd_path(int fd, char *buf, size_t len);

/* ---- keeping the marks right (agent/watch.c drives these) ---- */

/* A regular file found in a directory marked just now (dirfd open, name
 * inside it), for the caller to scan. */
typedef void (*vsep_fan_file_fn)(int dirfd, const char *name, void *arg);

/* The group reporting directory entries created in, moved into and out
 * of inode-marked trees: poll it for POLLIN. -1 when the kernel has none
 * (new directories are then not marked). */
int vsep_fan_dirent_fd(void);
/* Drain it: every new directory is marked (with its subtree), then its
 * files go to `sweep`; directories deleted or moved out of their tree are
 * forgotten (moved out: unmarked). 0 or -errno. */
int vsep_fan_dirent_read(int fanfd, vsep_fan_file_fn sweep, void *arg);

/* One line of the mount table. */
struct vsep_mount {
	int id;
	const char *path;
	const char *fstype;
};
/* The mount table now: every mount at or under a protected path (other
 * than the one that path is itself) gets its own mount mark; mounts gone
 * are forgotten. With `sweep`, the files of a new in-memory mount (tmpfs,
 * ramfs: it held nothing before it appeared) go to sweep once. */
void vsep_fan_mounts_update(int fanfd, const struct vsep_mount *m, size_t n,
			    vsep_fan_file_fn sweep, void *arg);

/* For status, consistent at the time of the call: the tree's current
 * directory count, and fn once per mount picked up under it. */
typedef void (*vsep_fan_mount_fn)(const char *path, void *arg);
unsigned vsep_fan_mark_status(const struct vsep_mark *m, vsep_fan_mount_fn fn, void *arg);

#endif
