/* SPDX-License-Identifier: MIT */
/* All of fanotify for vsep: the group, marks that cover only the protected
 * trees (so the rest of the machine never waits on us) and keep covering
 * them as directories and mounts come and go, reading events and writing
 * answers. Nothing else in vsep includes <sys/fanotify.h>. */
#include "config.h"
#include "fanotify.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "log.h"

#define EPSEC_LOG_SRC "fanotify"

#if HAVE_DECL_FAN_OPEN_EXEC_PERM
#define VSEP_EXEC_PERM FAN_OPEN_EXEC_PERM
#else
#define VSEP_EXEC_PERM 0
#endif
#ifndef FAN_REPORT_TARGET_FID
#define FAN_REPORT_TARGET_FID 0x00001000
#endif
#ifndef AT_HANDLE_FID
#define AT_HANDLE_FID 0x200
#endif

/* What the second group hears on every marked directory: entries that may
 * be new directories, directories leaving, and the directory's own end. */
#define DIRENT_MASK (FAN_CREATE | FAN_MOVED_TO | FAN_MOVED_FROM | FAN_DELETE_SELF | FAN_ONDIR)
#define HANDLE_MAX 128

/* Dropped to the open/close events alone the first time the kernel refuses
 * the exec permission event (kernels before 5.0); marks are placed from
 * several threads. */
static _Atomic uint64_t fan_mask = FAN_OPEN_PERM | FAN_CLOSE_WRITE | VSEP_EXEC_PERM;

/* A directory's file handle, as name_to_handle_at and the dirent group's
 * events both spell it: the key of a tree's set of marked directories. */
struct fh {
	struct fh *next;
	uint32_t hash;
	int type;
	unsigned len;
	unsigned char b[];
};

struct dirset {
	struct fh **b;
	size_t mask, n;
};

struct mnt_mark {
	int id;
	char *path;
};

struct tree {
	struct vsep_mark *out; /* the caller's record, for status */
	char *path;            /* as configured */
	char *real;            /* resolved: what mount points are compared with */
	bool mount;
	dev_t dev;
	uint64_t mnt_id;       /* the mount the path itself lies on */
	int fsid[2];
	struct dirset dirs;
	unsigned untracked;    /* marked, but the fs gives no handle */
	struct mnt_mark *mounts;
	size_t nmounts;
};

/* Trees are added at start-up and freed at vsep_fan_fini only, so a tree
 * pointer stays valid without the lock; what is inside it does not. */
static struct {
	pthread_mutex_t lock;
	struct tree **t;
	size_t n;
	int dirent_fd;
} M = { .lock = PTHREAD_MUTEX_INITIALIZER, .dirent_fd = -1 };

/* ------------------------------------------------------------ groups */

static int dirent_init(void)
{
	unsigned base = FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK | FAN_UNLIMITED_QUEUE |
			FAN_UNLIMITED_MARKS | FAN_REPORT_DFID_NAME;
	int fd = fanotify_init(base | FAN_REPORT_FID | FAN_REPORT_TARGET_FID, O_RDONLY | O_CLOEXEC);

	if (fd < 0 && errno == EINVAL) {
		fd = fanotify_init(base, O_RDONLY | O_CLOEXEC);
		if (fd >= 0)
			EPSEC_NOTICE("no FAN_REPORT_TARGET_FID (Linux < 5.17): a directory moved out "
				     "of a protected tree keeps its marks");
	}
	if (fd < 0)
		return -errno;
	M.dirent_fd = fd;
	return 0;
}

int vsep_fan_init(int *fanfd)
{
	unsigned flags = FAN_CLASS_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK;
	unsigned ev = O_RDONLY | O_LARGEFILE | O_CLOEXEC | O_NOATIME;
	/* An unlimited queue: a full one (16,384 events) makes the kernel
	 * let opens through unscanned and drop close-after-write events, and
	 * any user can fill it by closing files of their own. Every pending
	 * permission event holds an opener, so it cannot grow past them.
	 * Unlimited marks: every directory of an inode-marked tree is a mark,
	 * and the per-user limit would cap the trees we can protect. */
	int fd = fanotify_init(flags | FAN_UNLIMITED_QUEUE | FAN_UNLIMITED_MARKS, ev), r;

	if (fd < 0 && (errno == EINVAL || errno == EPERM)) {
		EPSEC_WARN("fanotify: no unlimited queue and marks (%s): a burst of events may "
			   "overflow the kernel's queue", strerror(errno));
		fd = fanotify_init(flags, ev);
	}
	if (fd < 0)
		return -errno;
	*fanfd = fd;
	r = dirent_init();
	if (r < 0)
		EPSEC_WARN("no directory entry events (%s): new directories under inode-marked "
			   "paths will not be marked", strerror(-r));
	return 0;
}

int vsep_fan_dirent_fd(void)
{
	return M.dirent_fd;
}

static int mark_add(int fanfd, unsigned flags, uint64_t extra, int dirfd, const char *path)
{
	if (fanotify_mark(fanfd, FAN_MARK_ADD | flags, fan_mask | extra, dirfd, path) == 0)
		return 0;
	if (errno != EINVAL || !(fan_mask & VSEP_EXEC_PERM))
		return -errno;
	fan_mask &= ~(uint64_t)VSEP_EXEC_PERM;
	EPSEC_WARN("kernel refuses FAN_OPEN_EXEC_PERM: exec is checked as a plain open");
	if (fanotify_mark(fanfd, FAN_MARK_ADD | flags, fan_mask | extra, dirfd, path) == 0)
		return 0;
	return -errno;
}

/* ------------------------------------------------------------ events */

static bool event_kind(uint64_t mask, enum vsep_kind *kind)
{
	if (mask & VSEP_EXEC_PERM)
		*kind = VSEP_KIND_EXEC;
	else if (mask & FAN_OPEN_PERM)
		*kind = VSEP_KIND_OPEN;
	else if (mask & FAN_CLOSE_WRITE)
		*kind = VSEP_KIND_CLOSE_WRITE;
	else
		return false;
	return true;
}

static void one_event(const struct fanotify_event_metadata *m, vsep_fan_event_fn fn, void *arg)
{
	struct vsep_event ev = { .fd = m->fd, .pid = m->pid };

	if (m->fd == FAN_NOFD) {
		if (m->mask & FAN_Q_OVERFLOW)
			EPSEC_WARN("kernel event queue overflowed: close-after-write events were lost");
		return;
	}
	if (!event_kind(m->mask, &ev.kind)) {
		close(m->fd);
		return;
	}
	fn(&ev, arg);
}

int vsep_fan_read(int fanfd, vsep_fan_event_fn fn, void *arg)
{
	static _Thread_local char buf[64 * 1024]
		__attribute__((aligned(__alignof__(struct fanotify_event_metadata))));
	const struct fanotify_event_metadata *m = (const void *)buf;
	ssize_t n = read(fanfd, buf, sizeof(buf));

	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	for (; FAN_EVENT_OK(m, n); m = FAN_EVENT_NEXT(m, n)) {
		/* A future layout: its fds must still be closed, which we
		 * cannot do safely; the group is unusable. */
		if (m->vers != FANOTIFY_METADATA_VERSION)
			return -EPROTO;
		one_event(m, fn, arg);
	}
	return 0;
}

int vsep_fan_respond(int fanfd, int fd, bool allow)
{
	struct fanotify_response r = { .fd = fd, .response = allow ? FAN_ALLOW : FAN_DENY };

	while (write(fanfd, &r, sizeof(r)) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

/* ------------------------------------------------------------ handles */

/* A handle as found in an event or in a set entry. */
struct key {
	int type;
	unsigned len;
	const unsigned char *b;
};

union handle_buf {
	struct file_handle h;
	unsigned char buf[sizeof(struct file_handle) + HANDLE_MAX];
};

static uint32_t key_hash(const struct key *k)
{
	uint32_t h = 2166136261u ^ (uint32_t)k->type;
	unsigned i;

	for (i = 0; i < k->len; i++)
		h = (h ^ k->b[i]) * 16777619u;
	return h;
}

static struct key key_of(const struct fh *f)
{
	return (struct key){ f->type, f->len, f->b };
}

static struct file_handle *key_handle(const struct key *k, union handle_buf *u)
{
	u->h.handle_bytes = k->len;
	u->h.handle_type = k->type;
	memcpy(u->h.f_handle, k->b, k->len);
	return &u->h;
}

/* The handle of an open directory, in the encoding fanotify reports. */
static struct fh *fh_of(int fd)
{
	union handle_buf u;
	struct fh *f;
	int mnt;

	u.h.handle_bytes = HANDLE_MAX;
	if (name_to_handle_at(fd, "", &u.h, &mnt, AT_EMPTY_PATH) < 0) {
		u.h.handle_bytes = HANDLE_MAX;
		if (name_to_handle_at(fd, "", &u.h, &mnt, AT_EMPTY_PATH | AT_HANDLE_FID) < 0)
			return NULL;
	}
	f = malloc(sizeof(*f) + u.h.handle_bytes);
	if (!f)
		return NULL;
	f->type = u.h.handle_type;
	f->len = u.h.handle_bytes;
	memcpy(f->b, u.h.f_handle, f->len);
	f->hash = key_hash(&(struct key){ f->type, f->len, f->b });
	return f;
}

/* Where k is, or where it would go; NULL while the set is empty. */
static struct fh **set_slot(const struct dirset *s, const struct key *k)
{
	uint32_t hash = key_hash(k);
	struct fh **p;

	if (!s->b)
		return NULL;
	for (p = &s->b[hash & s->mask]; *p; p = &(*p)->next) {
		if ((*p)->hash == hash && (*p)->type == k->type && (*p)->len == k->len &&
		    memcmp((*p)->b, k->b, k->len) == 0)
			break;
	}
	return p;
}

static bool set_has(const struct dirset *s, const struct key *k)
{
	struct fh **p = set_slot(s, k);

	return p && *p;
}

static int set_grow(struct dirset *s)
{
	size_t n = s->b ? (s->mask + 1) * 2 : 256, i;
	struct fh **b = calloc(n, sizeof(*b)), *f;

	if (!b)
		return -ENOMEM;
	for (i = 0; s->b && i <= s->mask; i++) {
		while ((f = s->b[i])) {
			s->b[i] = f->next;
			f->next = b[f->hash & (n - 1)];
			b[f->hash & (n - 1)] = f;
		}
	}
	free(s->b);
	s->b = b;
	s->mask = n - 1;
	return 0;
}

/* Takes f. */
static void set_add(struct dirset *s, struct fh *f)
{
	if ((!s->b || s->n >= s->mask) && set_grow(s) < 0 && !s->b) {
		free(f);
		return;
	}
	f->next = s->b[f->hash & s->mask];
	s->b[f->hash & s->mask] = f;
	s->n++;
}

static bool set_del(struct dirset *s, const struct key *k)
{
	struct fh **p = set_slot(s, k), *f;

	if (!p || !*p)
		return false;
	f = *p;
	*p = f->next;
	free(f);
	s->n--;
	return true;
}

static void set_free(struct dirset *s)
{
	struct fh *f;
	size_t i;

	for (i = 0; s->b && i <= s->mask; i++) {
		while ((f = s->b[i])) {
			s->b[i] = f->next;
			free(f);
		}
	}
	free(s->b);
	*s = (struct dirset){ 0 };
}

/* ------------------------------------------------------------ trees */

/* Caller holds the lock. */
static void tree_count(struct tree *t)
{
	t->out->dirs = (unsigned)t->dirs.n + t->untracked;
}

/* Caller holds the lock. The inode-marked tree that has marked k. */
static struct tree *tree_of(const int fsid[2], const struct key *k)
{
	size_t i;

	for (i = 0; i < M.n; i++) {
		struct tree *t = M.t[i];

		if (!t->mount && t->fsid[0] == fsid[0] && t->fsid[1] == fsid[1] &&
		    set_has(&t->dirs, k))
			return t;
	}
	return NULL;
}

/* path is `root` or inside it. */
static bool under(const char *root, const char *path)
{
	size_t n = strlen(root);

	if (n == 1 && root[0] == '/')
		return path[0] == '/';
	return strncmp(path, root, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

int vsep_fan_fd_path(int fd, char *buf, size_t len)
{
	char link[64];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, buf, len - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

/* A directory of t's filesystem by handle, wherever it is now. fd or
 * -errno (-ESTALE: it is gone). */
static int open_key(const struct tree *t, const struct key *k)
{
	union handle_buf u;
	int mfd = open(t->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), fd;

	if (mfd < 0)
		return -errno;
	fd = open_by_handle_at(mfd, key_handle(k, &u), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		fd = -errno;
	close(mfd);
	return fd;
}

/* ------------------------------------------------------------ walking */

/* How one walk over a tree (or part of it) goes. */
struct walk {
	struct tree *t;
	int fanfd;
	dev_t dev;       /* stay on this filesystem: other mounts get their own mark */
	bool mark;       /* inode tree: place marks, track the directories */
	bool unmark;     /* the opposite: the subtree left its tree */
	bool fresh;      /* a new subtree: a directory already marked was walked before */
	vsep_fan_file_fn sweep;
	void *arg;
	int err;         /* of the top directory only */
};

/* Directory names, NUL-separated: the walk recurses after closing each
 * directory, so a walk holds one directory fd at a time. */
struct names {
	char *buf;
	size_t len, cap;
};

static void names_add(struct names *n, const char *name)
{
	size_t l = strlen(name) + 1, cap = n->cap * 2 + l + 256;
	char *b;

	if (n->len + l > n->cap) {
		b = realloc(n->buf, cap);
		if (!b)
			return;
		n->buf = b;
		n->cap = cap;
	}
	memcpy(n->buf + n->len, name, l);
	n->len += l;
}

/* Caller holds the lock. Inode marks in both groups on an open directory. */
static int mark_dir(int fanfd, int fd)
{
	static bool warned; /* a filesystem without file handles: every directory */
	int r = mark_add(fanfd, 0, FAN_EVENT_ON_CHILD, fd, NULL);

	if (r == 0 && M.dirent_fd >= 0 &&
	    fanotify_mark(M.dirent_fd, FAN_MARK_ADD, DIRENT_MASK, fd, NULL) < 0 && !warned) {
		EPSEC_WARN("cannot watch for new directories here: %s", strerror(errno));
		warned = true;
	}
	return r;
}

/* Marks fd unless it is marked already (*known). Marks go on before the
 * walk lists the directory: whatever is created after the listing raises
 * an event, whatever was created before is in the listing. */
static int track_dir(struct walk *w, int fd, bool *known)
{
	struct fh *f = fh_of(fd);
	struct key k = { 0 };
	int r = 0;

	pthread_mutex_lock(&M.lock);
	if (f)
		k = key_of(f);
	*known = f && set_has(&w->t->dirs, &k);
	if (!*known) {
		r = mark_dir(w->fanfd, fd);
		if (r == 0 && f) {
			set_add(&w->t->dirs, f);
			f = NULL;
		} else if (r == 0) {
			w->t->untracked++;
		}
		tree_count(w->t);
	}
	pthread_mutex_unlock(&M.lock);
	free(f);
	return r;
}

/* The subtree left its tree: its marks go, and it leaves the set. */
static void untrack_dir(struct walk *w, int fd)
{
	struct fh *f = fh_of(fd);
	struct key k;

	if (!f)
		return;
	k = key_of(f);
	pthread_mutex_lock(&M.lock);
	if (set_del(&w->t->dirs, &k)) {
		fanotify_mark(w->fanfd, FAN_MARK_REMOVE, fan_mask | FAN_EVENT_ON_CHILD, fd, NULL);
		if (M.dirent_fd >= 0)
			fanotify_mark(M.dirent_fd, FAN_MARK_REMOVE, DIRENT_MASK, fd, NULL);
		tree_count(w->t);
	}
	pthread_mutex_unlock(&M.lock);
	free(f);
}

static unsigned char entry_type(int dfd, const struct dirent *e)
{
	struct stat st;

	if (e->d_type != DT_UNKNOWN)
		return e->d_type;
	if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return DT_UNKNOWN;
	return S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : DT_UNKNOWN;
}

/* Takes fd. Subdirectories into *dirs; files to the sweep when asked. */
static void list_dir(struct walk *w, int fd, bool sweep, struct names *dirs)
{
	DIR *d = fdopendir(fd);
	struct dirent *e;
	unsigned char type;

	if (!d) {
		close(fd);
		return;
	}
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' &&
		    (e->d_name[1] == '\0' || (e->d_name[1] == '.' && e->d_name[2] == '\0')))
			continue;
		type = entry_type(dirfd(d), e);
		if (type == DT_DIR)
			names_add(dirs, e->d_name);
		else if (type == DT_REG && sweep)
			w->sweep(dirfd(d), e->d_name, w->arg);
	}
	closedir(d);
}

/* 0 to list the directory; 1 to leave it (and its subtree) alone. */
static int visit(struct walk *w, int fd, int level, bool *sweep)
{
	bool known = false;
	int r;

	*sweep = w->sweep != NULL;
	if (w->unmark) {
		untrack_dir(w, fd);
		return 0;
	}
	if (!w->mark)
		return 0;
	r = track_dir(w, fd, &known);
	if (r < 0 && level == 0)
		w->err = r;
	else if (r < 0)
		EPSEC_WARN("cannot watch a directory under %s: %s", w->t->path, strerror(-r));
	if (r < 0 || (known && w->fresh))
		return 1;
	*sweep = *sweep && !known;
	return 0;
}

static void walk_dir(struct walk *w, char *path, size_t len, int level)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | (level ? O_NOFOLLOW : 0));
	struct names dirs = { 0 };
	struct stat st;
	size_t off, l, sep;
	bool sweep;

	if (fd < 0) {
		if (level == 0)
			w->err = -errno;
		return;
	}
	if (fstat(fd, &st) < 0 || (level > 0 && st.st_dev != w->dev) || visit(w, fd, level, &sweep)) {
		close(fd);
		return;
	}
	list_dir(w, fd, sweep, &dirs);
	for (off = 0; off < dirs.len; off += l + 1) {
		l = strlen(dirs.buf + off);
		if (len + 1 + l >= PATH_MAX)
			continue;
		/* "/" + name, or just name when the walk starts at "/" */
		sep = len > 0 && path[len - 1] != '/';
		path[len] = '/';
		memcpy(path + len + sep, dirs.buf + off, l + 1);
		walk_dir(w, path, len + sep + l, level + 1);
		path[len] = '\0';
	}
	free(dirs.buf);
}

static int walk(struct walk *w, const char *top)
{
	char path[PATH_MAX];
	size_t len = strlen(top);

	if (len >= sizeof(path))
		return -ENAMETOOLONG;
	memcpy(path, top, len + 1);
	while (len > 1 && path[len - 1] == '/')
		path[--len] = '\0';
	w->err = 0;
	walk_dir(w, path, len, 0);
	return w->err;
}

/* ------------------------------------------------------------ protected paths */

/* A bind mount of a directory of the same filesystem keeps st_dev: the
 * kernel's own word (5.8+) comes first. */
static bool is_mount_point(const char *path, const struct stat *st)
{
	char parent[PATH_MAX];
	struct statx sx;
	struct stat pst;

	if (statx(AT_FDCWD, path, 0, STATX_BASIC_STATS, &sx) == 0 &&
	    (sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT))
		return (sx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
	if (snprintf(parent, sizeof(parent), "%s/..", path) >= (int)sizeof(parent))
		return false;
	return stat(parent, &pst) == 0 &&
	       (pst.st_dev != st->st_dev || pst.st_ino == st->st_ino);
}

static void tree_free(struct tree *t)
{
	size_t i;

	for (i = 0; i < t->nmounts; i++)
		free(t->mounts[i].path);
	free(t->mounts);
	set_free(&t->dirs);
	free(t->real);
	free(t->path);
	free(t);
}

static struct tree *tree_new(const char *path, struct vsep_mark *out, const struct stat *st)
{
	struct tree *t = calloc(1, sizeof(*t));
	struct statfs sf;
	struct statx sx;

	if (!t)
		return NULL;
	t->out = out;
	t->mount = out->mount;
	t->dev = st->st_dev;
	t->path = strdup(path);
	t->real = realpath(path, NULL);
	if (!t->path || !t->real) {
		tree_free(t);
		return NULL;
	}
	if (statx(AT_FDCWD, path, 0, STATX_MNT_ID, &sx) == 0 && (sx.stx_mask & STATX_MNT_ID))
		t->mnt_id = sx.stx_mnt_id;
	if (statfs(path, &sf) == 0)
		memcpy(t->fsid, &sf.f_fsid, sizeof(t->fsid));
	return t;
}

static int tree_add(struct tree *t)
{
	struct tree **a;

	pthread_mutex_lock(&M.lock);
	a = realloc(M.t, (M.n + 1) * sizeof(*a));
	if (a) {
		M.t = a;
		M.t[M.n++] = t;
	}
	pthread_mutex_unlock(&M.lock);
	return a ? 0 : -ENOMEM;
}

/* Trees are never removed before vsep_fan_fini: the pointer outlives the
 * lock. NULL past the end. */
static struct tree *tree_at(size_t i)
{
	struct tree *t;

	pthread_mutex_lock(&M.lock);
	t = i < M.n ? M.t[i] : NULL;
	pthread_mutex_unlock(&M.lock);
	return t;
}

static struct tree *tree_named(const char *path)
{
	struct tree *t;
	size_t i;

	for (i = 0; (t = tree_at(i)); i++) {
		if (strcmp(t->path, path) == 0)
			return t;
	}
	return NULL;
}

/* Caller holds the lock. One marked directory, by its handle. */
static int remark_one(int fanfd, int mfd, const struct fh *f)
{
	struct key k = key_of(f);
	union handle_buf u;
	int fd = open_by_handle_at(mfd, key_handle(&k, &u), O_RDONLY | O_DIRECTORY | O_CLOEXEC), r;

	/* Gone: its DELETE_SELF is on its way. */
	if (fd < 0)
		return errno == ESTALE || errno == ENOENT ? 0 : -errno;
	r = mark_add(fanfd, 0, FAN_EVENT_ON_CHILD, fd, NULL);
	close(fd);
	return r;
}

/* Caller holds the lock. From the set, not by walking the tree again: the
 * flush comes every ignore_marks_max clean opens, and listing every
 * directory each time would cost what the ignore marks saved. */
static int remark_tree(int fanfd, struct tree *t)
{
	int mfd = open(t->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r = 0, e;
	struct fh *f;
	size_t i;

	if (mfd < 0)
		return -errno;
	for (i = 0; t->dirs.b && i <= t->dirs.mask; i++) {
		for (f = t->dirs.b[i]; f; f = f->next) {
			e = remark_one(fanfd, mfd, f);
			if (e < 0 && r == 0)
				r = e;
		}
	}
	close(mfd);
	return r;
}

/* Directories the filesystem gives no handle for are found by walking. */
static int remark_walk(int fanfd, struct tree *t)
{
	pthread_mutex_lock(&M.lock);
	t->untracked = 0;
	pthread_mutex_unlock(&M.lock);
	return walk(&(struct walk){ .t = t, .fanfd = fanfd, .dev = t->dev, .mark = true }, t->path);
}

static int remark(int fanfd, struct tree *t)
{
	bool untracked;
	int r;

	if (t->mount)
		return mark_add(fanfd, FAN_MARK_MOUNT, 0, AT_FDCWD, t->path);
	pthread_mutex_lock(&M.lock);
	r = remark_tree(fanfd, t);
	untracked = t->untracked > 0;
	pthread_mutex_unlock(&M.lock);
	if (untracked && r == 0)
		r = remark_walk(fanfd, t);
	return r;
}

int vsep_fan_remark(int fanfd)
{
	struct tree *t;
	size_t i;
	int r = 0, e;

	for (i = 0; (t = tree_at(i)); i++) {
		e = t->mount ? 0 : remark(fanfd, t);
		if (e < 0 && r == 0)
			r = e;
	}
	return r;
}

/* ------------------------------------------------------------ ignore marks */

/* One inode mark as the group's fdinfo lists it. */
struct fdinfo_mark {
	unsigned long ino;
	unsigned sdev, mask, ignored;
	int bytes, type;
	unsigned char handle[HANDLE_MAX];
};

static int hex_byte(const char *p)
{
	unsigned v;

	return sscanf(p, "%2x", &v) == 1 ? (int)v : -1;
}

static bool parse_mark(const char *line, struct fdinfo_mark *m)
{
	unsigned mflags, bytes, type;
	int off = 0;

	if (sscanf(line, "fanotify ino:%lx sdev:%x mflags:%x mask:%x ignored_mask:%x "
			 "fhandle-bytes:%x fhandle-type:%x f_handle:%n",
		   &m->ino, &m->sdev, &mflags, &m->mask, &m->ignored, &bytes, &type, &off) < 7 ||
	    !off || bytes > HANDLE_MAX)
		return false;
	m->bytes = (int)bytes;
	m->type = (int)type;
	for (int i = 0; i < m->bytes; i++) {
		int b = hex_byte(line + off + 2 * i);

		if (b < 0)
			return false;
		m->handle[i] = (unsigned char)b;
	}
	return true;
}

/* The kernel prints a superblock's dev_t as it keeps it: major << 20. */
static dev_t user_dev(unsigned sdev)
{
	return makedev(sdev >> 20, sdev & 0xfffff);
}

/* An fd on the filesystem `dev` for open_by_handle_at: a protected tree
 * or a mount under one. -1 when none lies there. */
static int fs_fd(dev_t dev)
{
	struct stat st;
	struct tree *t;
	int fd;

	for (size_t i = 0; (t = tree_at(i)); i++) {
		if (t->dev == dev)
			return open(t->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		pthread_mutex_lock(&M.lock);
		for (size_t j = 0; j < t->nmounts; j++) {
			fd = open(t->mounts[j].path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (fd >= 0 && fstat(fd, &st) == 0 && st.st_dev == dev) {
				pthread_mutex_unlock(&M.lock);
				return fd;
			}
			if (fd >= 0)
				close(fd);
		}
		pthread_mutex_unlock(&M.lock);
	}
	return -1;
}

/* 0 removed (or the file is gone), -errno when it could not be reached. */
static int clear_mark(int fanfd, const struct fdinfo_mark *m)
{
	union handle_buf u;
	char link[64];
	int mfd = fs_fd(user_dev(m->sdev)), fd, r = 0;

	if (mfd < 0)
		return -ENODEV;
	u.h.handle_bytes = (unsigned)m->bytes;
	u.h.handle_type = m->type;
	memcpy(u.h.f_handle, m->handle, (size_t)m->bytes);
	/* O_PATH: the file is not opened (no open event, no wait on its
	 * filesystem); fanotify_mark takes no O_PATH fd, but its magic link. */
	fd = open_by_handle_at(mfd, &u.h, O_PATH | O_CLOEXEC);
	close(mfd);
	if (fd < 0)
		return errno == ESTALE || errno == ENOENT ? 0 : -errno;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	if (fanotify_mark(fanfd, FAN_MARK_REMOVE | FAN_MARK_IGNORED_MASK, m->ignored, AT_FDCWD,
			  link) < 0 && errno != ENOENT)
		r = -errno;
	close(fd);
	return r;
}

int vsep_fan_clear_ignores(int fanfd, size_t *cleared)
{
	char path[64], line[1024];
	struct fdinfo_mark m;
	int r = 0, e;
	FILE *f;

	*cleared = 0;
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fanfd);
	if (!(f = fopen(path, "re")))
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		/* A pure ignore mark: no events of its own (the directories'
		 * marks have them, and stay). */
		if (!parse_mark(line, &m) || !m.ignored || m.mask)
			continue;
		if ((e = clear_mark(fanfd, &m)) < 0 && r == 0)
			r = e;
		else if (e == 0)
			(*cleared)++;
	}
	fclose(f);
	return r;
}

/* The path is marked already: place its marks again, report as before. */
static int mark_again(int fanfd, struct tree *t, struct vsep_mark *out)
{
	int r = remark(fanfd, t);

	pthread_mutex_lock(&M.lock);
	out->path = t->out->path;
	out->mount = t->mount;
	out->dirs = (unsigned)t->dirs.n + t->untracked;
	pthread_mutex_unlock(&M.lock);
	return r;
}

int vsep_fan_mark(int fanfd, const char *path, struct vsep_mark *out)
{
	struct stat st;
	struct tree *t;
	int r;

	if (stat(path, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	t = tree_named(path);
	if (t)
		return mark_again(fanfd, t, out);
	out->path = path;
	out->dirs = 0;
	out->mount = is_mount_point(path, &st);
	t = tree_new(path, out, &st);
	if (!t)
		return -ENOMEM;
	if (out->mount)
		r = mark_add(fanfd, FAN_MARK_MOUNT, 0, AT_FDCWD, path);
	else
		r = walk(&(struct walk){ .t = t, .fanfd = fanfd, .dev = st.st_dev, .mark = true }, path);
	if (r == 0)
		r = tree_add(t);
	if (r < 0)
		tree_free(t);
	return r;
}

void vsep_fan_fini(void)
{
	size_t i;

	pthread_mutex_lock(&M.lock);
	for (i = 0; i < M.n; i++)
		tree_free(M.t[i]);
	free(M.t);
	M.t = NULL;
	M.n = 0;
	if (M.dirent_fd >= 0)
		close(M.dirent_fd);
	M.dirent_fd = -1;
	pthread_mutex_unlock(&M.lock);
}

/* ------------------------------------------------------------ directory events */

/* One event of the dirent group, its records unpacked. */
struct dirent_ev {
	uint64_t mask;
	int fsid[2];
	struct key dir;   /* the directory the entry is in (or, self events, the object) */
	struct key obj;   /* the entry itself (FAN_REPORT_TARGET_FID) */
	const char *name;
	bool has_dir, has_obj;
};

static bool parse_record(const char *p, size_t len, struct dirent_ev *e)
{
	const struct fanotify_event_info_fid *fid = (const void *)p;
	const struct file_handle *h = (const void *)fid->handle;
	size_t fixed = sizeof(*fid) + sizeof(*h);
	struct key k;

	if (len < fixed || h->handle_bytes > len - fixed)
		return false;
	k = (struct key){ h->handle_type, h->handle_bytes, h->f_handle };
	memcpy(e->fsid, &fid->fsid, sizeof(e->fsid));
	switch (fid->hdr.info_type) {
	case FAN_EVENT_INFO_TYPE_DFID_NAME:
		e->name = (const char *)h->f_handle + h->handle_bytes;
		if (!memchr(e->name, '\0', len - fixed - h->handle_bytes))
			return false;
		/* fallthrough */
	case FAN_EVENT_INFO_TYPE_DFID:
		e->dir = k;
		e->has_dir = true;
		break;
	case FAN_EVENT_INFO_TYPE_FID:
		e->obj = k;
		e->has_obj = true;
		break;
	default:
		break;
	}
	return true;
}

static bool parse_event(const struct fanotify_event_metadata *m, struct dirent_ev *e)
{
	const char *p = (const char *)m + m->metadata_len, *end = (const char *)m + m->event_len;
	const struct fanotify_event_info_header *hdr;

	*e = (struct dirent_ev){ .mask = m->mask };
	while (p + sizeof(*hdr) <= end) {
		hdr = (const void *)p;
		if (hdr->len < sizeof(*hdr) || hdr->len > (size_t)(end - p) ||
		    !parse_record(p, hdr->len, e))
			return false;
		p += hdr->len;
	}
	return e->has_dir || e->has_obj;
}

/* A new entry by name in a marked directory (no TARGET_FID). */
static int open_entry(const struct tree *t, const struct dirent_ev *e)
{
	int pfd = open_key(t, &e->dir), fd;

	if (pfd < 0)
		return pfd;
	fd = openat(pfd, e->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		fd = -errno;
	close(pfd);
	return fd;
}

/* Takes fd. 1 when the directory is inside t now, 0 when it is
 * elsewhere (*path says where), -1 when it is gone. */
static int located(const struct tree *t, int fd, char *path, size_t len)
{
	int r;

	if (fd < 0)
		return -1;
	r = vsep_fan_fd_path(fd, path, len);
	close(fd);
	if (r < 0 || strstr(path, " (deleted)"))
		return -1;
	return under(t->real, path) ? 1 : 0;
}

static void new_dir(int fanfd, const struct dirent_ev *e, vsep_fan_file_fn sweep, void *arg)
{
	char path[PATH_MAX];
	struct tree *t;
	bool known;

	if (!e->has_dir || (!e->has_obj && !e->name))
		return;
	pthread_mutex_lock(&M.lock);
	t = tree_of(e->fsid, &e->dir);
	known = t && e->has_obj && set_has(&t->dirs, &e->obj);
	pthread_mutex_unlock(&M.lock);
	if (!t || known)
		return;
	if (located(t, e->has_obj ? open_key(t, &e->obj) : open_entry(t, e), path,
		    sizeof(path)) != 1)
		return;
	walk(&(struct walk){ .t = t, .fanfd = fanfd, .dev = t->dev, .mark = true, .fresh = true,
			     .sweep = sweep, .arg = arg }, path);
}

/* Marks are on inodes: a directory moved out of its tree would take them
 * along, and the agent would hold opens it was never asked to. */
static void moved_out(int fanfd, const struct dirent_ev *e)
{
	char path[PATH_MAX];
	struct tree *t;

	if (!e->has_obj)
		return;
	pthread_mutex_lock(&M.lock);
	t = tree_of(e->fsid, &e->obj);
	pthread_mutex_unlock(&M.lock);
	if (!t || located(t, open_key(t, &e->obj), path, sizeof(path)) != 0)
		return;
	EPSEC_INFO("%s left %s: its marks are removed", path, t->path);
	walk(&(struct walk){ .t = t, .fanfd = fanfd, .dev = t->dev, .unmark = true }, path);
}

static void deleted(const struct dirent_ev *e)
{
	const struct key *k = e->has_obj ? &e->obj : &e->dir;
	struct tree *t;

	pthread_mutex_lock(&M.lock);
	t = tree_of(e->fsid, k);
	if (t) {
		set_del(&t->dirs, k);
		tree_count(t);
	}
	pthread_mutex_unlock(&M.lock);
}

/* Events were lost: every inode tree is walked again; directories found
 * unmarked are marked and swept. */
static void rescan(int fanfd, vsep_fan_file_fn sweep, void *arg)
{
	struct tree *t;
	size_t i;

	EPSEC_WARN("directory events were lost: walking the inode-marked trees again");
	for (i = 0; (t = tree_at(i)); i++) {
		if (!t->mount)
			walk(&(struct walk){ .t = t, .fanfd = fanfd, .dev = t->dev, .mark = true,
					     .sweep = sweep, .arg = arg }, t->path);
	}
}

static void dirent_event(int fanfd, const struct fanotify_event_metadata *m,
			 vsep_fan_file_fn sweep, void *arg)
{
	struct dirent_ev e;

	if (m->fd >= 0)
		close(m->fd);
	if (m->mask & FAN_Q_OVERFLOW) {
		rescan(fanfd, sweep, arg);
		return;
	}
	if (!parse_event(m, &e))
		return;
	if (m->mask & FAN_DELETE_SELF)
		deleted(&e);
	if (!(m->mask & FAN_ONDIR))
		return;
	if (m->mask & (FAN_CREATE | FAN_MOVED_TO))
		new_dir(fanfd, &e, sweep, arg);
	if (m->mask & FAN_MOVED_FROM)
		moved_out(fanfd, &e);
}

/* Events with names are only 4-byte aligned in the buffer: each is copied
 * out whole before its 8-byte fields are read. -EPROTO when malformed. */
static int copy_event(char *out, size_t cap, const char *in, size_t avail)
{
	struct fanotify_event_metadata md;

	memcpy(&md, in, sizeof(md));
	if (md.vers != FANOTIFY_METADATA_VERSION || md.event_len < FAN_EVENT_METADATA_LEN ||
	    md.event_len > avail || md.event_len > cap)
		return -EPROTO;
	memcpy(out, in, md.event_len);
	return 0;
}

int vsep_fan_dirent_read(int fanfd, vsep_fan_file_fn sweep, void *arg)
{
	static char buf[64 * 1024]
		__attribute__((aligned(__alignof__(struct fanotify_event_metadata))));
	static char one[4096]
		__attribute__((aligned(__alignof__(struct fanotify_event_metadata))));
	const struct fanotify_event_metadata *m = (const void *)buf;
	ssize_t n;

	if (M.dirent_fd < 0)
		return 0;
	n = read(M.dirent_fd, buf, sizeof(buf));
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	while (n >= (ssize_t)FAN_EVENT_METADATA_LEN) {
		if (copy_event(one, sizeof(one), (const char *)m, (size_t)n) < 0)
			return -EPROTO;
		dirent_event(fanfd, (const void *)one, sweep, arg);
		n -= (ssize_t)((const struct fanotify_event_metadata *)(const void *)one)->event_len;
		m = (const void *)((const char *)m +
				   ((const struct fanotify_event_metadata *)(const void *)one)->event_len);
	}
	return 0;
}

/* ------------------------------------------------------------ mounts */

/* The path's own mount is the tree's mark (or holds its inode marks). */
static bool covers(const struct tree *t, const struct vsep_mount *m)
{
	return under(t->real, m->path) && (uint64_t)m->id != t->mnt_id;
}

static bool listed(const struct vsep_mount *m, size_t n, const struct mnt_mark *mm)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (m[i].id == mm->id && strcmp(m[i].path, mm->path) == 0)
			return true;
	}
	return false;
}

/* Caller holds the lock. The kernel dropped the mark with the mount. */
static void drop_gone(struct tree *t, const struct vsep_mount *m, size_t n)
{
	size_t i = 0;

	while (i < t->nmounts) {
		if (listed(m, n, &t->mounts[i])) {
			i++;
			continue;
		}
		EPSEC_NOTICE("%s is no longer mounted under %s", t->mounts[i].path, t->path);
		free(t->mounts[i].path);
		t->mounts[i] = t->mounts[--t->nmounts];
	}
}

/* Caller holds the lock. 1 when m got its mark now. */
static int add_mount(int fanfd, struct tree *t, const struct vsep_mount *m)
{
	struct mnt_mark *a;
	size_t i;
	char *p;
	int r;

	if (!covers(t, m))
		return 0;
	for (i = 0; i < t->nmounts; i++) {
		if (t->mounts[i].id == m->id && strcmp(t->mounts[i].path, m->path) == 0)
			return 0;
	}
	r = mark_add(fanfd, FAN_MARK_MOUNT, 0, AT_FDCWD, m->path);
	a = r == 0 ? realloc(t->mounts, (t->nmounts + 1) * sizeof(*a)) : NULL;
	p = a ? strdup(m->path) : NULL;
	if (a)
		t->mounts = a;
	if (!p) {
		EPSEC_WARN("cannot mark %s, mounted under %s: %s", m->path, t->path,
			   strerror(r < 0 ? -r : ENOMEM));
		return r < 0 ? r : -ENOMEM;
	}
	t->mounts[t->nmounts++] = (struct mnt_mark){ m->id, p };
	EPSEC_NOTICE("%s (%s) mounted under %s: mount mark placed", m->path, m->fstype, t->path);
	return 1;
}

/* A filesystem that lives in memory held nothing before it was mounted:
 * what is in it now was written before its mark landed. */
static bool in_memory(const char *fstype)
{
	return strcmp(fstype, "tmpfs") == 0 || strcmp(fstype, "ramfs") == 0;
}

static void sweep_mount(const char *path, vsep_fan_file_fn sweep, void *arg)
{
	struct stat st;

	if (stat(path, &st) == 0)
		walk(&(struct walk){ .dev = st.st_dev, .sweep = sweep, .arg = arg }, path);
}

void vsep_fan_mounts_update(int fanfd, const struct vsep_mount *m, size_t n,
			    vsep_fan_file_fn sweep, void *arg)
{
	bool *fresh = calloc(n ? n : 1, sizeof(*fresh));
	size_t i, j;

	if (!fresh)
		return;
	pthread_mutex_lock(&M.lock);
	for (i = 0; i < M.n; i++) {
		drop_gone(M.t[i], m, n);
		for (j = 0; j < n; j++) {
			if (add_mount(fanfd, M.t[i], &m[j]) > 0 && in_memory(m[j].fstype))
				fresh[j] = true;
		}
	}
	pthread_mutex_unlock(&M.lock);
	for (j = 0; sweep && j < n; j++) {
		if (fresh[j])
			sweep_mount(m[j].path, sweep, arg);
	}
	free(fresh);
}

unsigned vsep_fan_mark_status(const struct vsep_mark *mark, vsep_fan_mount_fn fn, void *arg)
{
	unsigned dirs = 0;
	size_t i, j;

	pthread_mutex_lock(&M.lock);
	for (i = 0; i < M.n; i++) {
		if (M.t[i]->out != mark)
			continue;
		dirs = (unsigned)M.t[i]->dirs.n + M.t[i]->untracked;
		for (j = 0; fn && j < M.t[i]->nmounts; j++)
			fn(M.t[i]->mounts[j].path, arg);
	}
	pthread_mutex_unlock(&M.lock);
	return dirs;
}
