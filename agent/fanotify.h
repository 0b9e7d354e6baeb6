/* Every fanotify call vsep makes: the group, the marks on the protected
 * trees, reading events and writing the one answer each permission event
 * gets. */
#ifndef VSEP_FANOTIFY_H
#define VSEP_FANOTIFY_H

#include <stdbool.h>
#include "vsep.h"

/* How a protected path is watched, for status. */
struct vsep_mark {
	const char *path;
	bool mount;     /* a mount mark (the path is a mount point) */
	unsigned dirs;  /* inode marks placed (0 for a mount mark) */
};

/* The fanotify group. 0 and *fanfd, or -errno (-EPERM without
 * CAP_SYS_ADMIN). */
int vsep_fan_init(int *fanfd);
/* Watch one protected directory: a mount mark when it is a mount point,
 * else inode marks on every directory of its tree (this mount only).
 * -ENOENT / -ENOTDIR when the path is not a directory. */
int vsep_fan_mark(int fanfd, const char *path, struct vsep_mark *out);

/* After FAN_MARK_FLUSH of the group's inode marks (which drops every
 * ignore mark, on a new signature generation): place the inode marks of
 * every inode-marked protected tree again. Thread-safe. 0 or -errno. */
int vsep_fan_remark(int fanfd);

typedef void (*vsep_fan_event_fn)(const struct vsep_event *ev, void *arg);
/* One read() of the group: fn once per event (fn owns ev->fd). 0 after
 * events or nothing pending, -errno on failure. */
int vsep_fan_read(int fanfd, vsep_fan_event_fn fn, void *arg);
/* The answer the opener waits for. 0 or -errno. */
int vsep_fan_respond(int fanfd, int fd, bool allow);

#endif
