/* SPDX-License-Identifier: MIT */
/* The quarantine (quarantine.h): every file operation on quarantine_dir.
 * A record is written before its content moves in and removed after the
 * content leaves, so whatever is in the directory is accounted for; a
 * record whose content never arrived (a crash) is not listed. */
#include "config.h"
#include "quarantine.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/openat2.h>

#include "log.h"

#define EPSEC_LOG_SRC "quarantine"

#define ID_DIGITS 16
#define NAME_MAX_Q 32 /* "ID.json" and "ID.data" */
#define COPY_CHUNK (64 * 1024)

static struct {
	pthread_mutex_t lock;
	const char *dir;
} Q = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* What restore gives back to the file. */
struct attrs {
	uid_t uid;
	gid_t gid;
	mode_t mode;
	struct timespec mtime;
};

/* ------------------------------------------------------------ the directory */

int vsep_make_private_dir(const char *dir)
{
	char buf[PATH_MAX];
	char *p;

	if (snprintf(buf, sizeof(buf), "%s", dir) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (p = buf + 1; (p = strchr(p, '/')); p++) {
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* Opened without following a symlink, and checked every time: ours and
 * closed to everyone else. A directory someone else made in its place is
 * refused, never adopted. */
static int open_dir(void)
{
	struct stat st;
	int fd, r;

	if (!Q.dir)
		return -EINVAL;
	r = vsep_make_private_dir(Q.dir);
	if (r < 0)
		return r;
	fd = open(Q.dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = fstat(fd, &st) < 0 ? -errno : 0;
	if (r == 0 && st.st_uid != geteuid())
		r = -EPERM;
	if (r == 0 && (st.st_mode & 077) && fchmod(fd, 0700) < 0)
		r = -errno;
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

void vsep_quarantine_init(const char *dir)
{
	int fd;

	if (!dir || dir[0] != '/') {
		EPSEC_ERR("quarantine_dir \"%s\" is not an absolute path: nothing can be "
			  "quarantined", dir ? dir : "");
		return;
	}
	Q.dir = dir;
	fd = open_dir();
	if (fd < 0)
		EPSEC_WARN("quarantine_dir %s: %s (tried again when a file is quarantined)", dir,
			   strerror(-fd));
	else
		close(fd);
}

/* ------------------------------------------------------------ names */

static bool valid_id(const char *id)
{
	size_t i;

	for (i = 0; i < ID_DIGITS; i++) {
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
			return false;
	}
	return id[ID_DIGITS] == '\0';
}

/* Seconds first, so IDs sort by age; random bits so two files quarantined
 * in one second never meet. */
static void new_id(char id[VSEP_QUARANTINE_ID_LEN])
{
	uint32_t rnd;
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd))
		rnd = (uint32_t)ts.tv_nsec ^ ((uint32_t)getpid() << 16);
	snprintf(id, VSEP_QUARANTINE_ID_LEN, "%08" PRIx32 "%08" PRIx32, (uint32_t)ts.tv_sec, rnd);
}

static void name_of(char buf[NAME_MAX_Q], const char *id, const char *ext)
{
	snprintf(buf, NAME_MAX_Q, "%s.%s", id, ext);
}

/* ------------------------------------------------------------ file I/O */

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;

	while (len) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int copy_fd(int in, int out)
{
	char buf[COPY_CHUNK];
	off_t off = 0;
	ssize_t n;
	int r;

	for (;;) {
		n = pread(in, buf, sizeof(buf), off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : 0;
		r = write_all(out, buf, (size_t)n);
		if (r < 0)
			return r;
		off += n;
	}
}

static bool same_file(const struct stat *st, dev_t dev, ino_t ino)
{
	return st->st_dev == dev && st->st_ino == ino;
}

/* The name may have been renamed over since it was checked: unlink only
 * what is still the scanned inode. */
static int unlink_same_at(int pfd, const char *base, dev_t dev, ino_t ino)
{
	struct stat st;

	if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (!same_file(&st, dev, ino))
		return -ESTALE;
	return unlinkat(pfd, base, 0) < 0 ? -errno : 0;
}

/* ------------------------------------------------------------ paths */

/* As /proc/self/fd gives a path: absolute, no "." or ".." names. */
static bool plain_path(const char *path)
{
	const char *p = path, *q;

	if (path[0] != '/')
		return false;
	while (*p) {
		while (*p == '/')
			p++;
		q = strchrnul(p, '/');
		if ((q - p == 1 && p[0] == '.') || (q - p == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		p = q;
	}
	return true;
}

/* Without openat2 (Linux < 5.6): one name at a time, none a symlink. */
static int walk_dirs(const char *dir)
{
	char buf[PATH_MAX], *name, *save = NULL;
	int fd, next;

	if (snprintf(buf, sizeof(buf), "%s", dir) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (name = strtok_r(buf, "/", &save); name; name = strtok_r(NULL, "/", &save)) {
		next = openat(fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(fd);
		if (next < 0)
			return -errno;
		fd = next;
	}
	return fd;
}

static int open_dir_nofollow(const char *dir)
{
#ifdef SYS_openat2
	struct open_how how = { .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
				.resolve = RESOLVE_NO_SYMLINKS };
	long fd = syscall(SYS_openat2, AT_FDCWD, dir, &how, sizeof(how));

	if (fd >= 0)
		return (int)fd;
	if (errno != ENOSYS)
		return -errno;
#endif
	return walk_dirs(dir);
}

/* Everything is then done relative to the directory fd: the owner of a
 * directory on the path can no longer swap it for a symlink (to /etc)
 * between a check and the rename, unlink or link that follows. */
int vsep_open_parent(const char *path, const char **base)
{
	char dir[PATH_MAX];
	const char *slash;
	size_t len;

	if (!path || !plain_path(path))
		return -EINVAL;
	slash = strrchr(path, '/');
	if (!slash[1])
		return -EINVAL;
	len = slash == path ? 1 : (size_t)(slash - path);
	if (len >= sizeof(dir))
		return -ENAMETOOLONG;
	memcpy(dir, path, len);
	dir[len] = '\0';
	*base = slash + 1;
	return open_dir_nofollow(dir);
}

int vsep_unlink_if_same(const char *path, dev_t dev, ino_t ino)
{
	const char *base;
	int pfd = vsep_open_parent(path, &base), r;

	if (pfd < 0)
		return pfd;
	r = unlink_same_at(pfd, base, dev, ino);
	close(pfd);
	return r;
}

/* ------------------------------------------------------------ records */

static void add_str(struct json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, json_object_new_string(v ? v : ""));
}

static void add_int(struct json_object *o, const char *k, int64_t v)
{
	json_object_object_add(o, k, json_object_new_int64(v));
}

static struct json_object *record_new(const char *id, const char *path, const struct stat *st,
				      const char *engine, const char *signature)
{
	struct json_object *o = json_object_new_object();
	char mode[16];

	snprintf(mode, sizeof(mode), "%04o", (unsigned)(st->st_mode & 07777));
	add_str(o, "id", id);
	add_str(o, "path", path);
	add_str(o, "signature", signature);
	add_str(o, "engine", engine);
	add_int(o, "time", (int64_t)time(NULL));
	add_int(o, "uid", (int64_t)st->st_uid);
	add_int(o, "gid", (int64_t)st->st_gid);
	add_str(o, "mode", mode);
	add_int(o, "size", (int64_t)st->st_size);
	add_int(o, "mtime", (int64_t)st->st_mtim.tv_sec);
	add_int(o, "mtime_nsec", (int64_t)st->st_mtim.tv_nsec);
	return o;
}

static int write_record(int dirfd, const char *name, struct json_object *rec)
{
	const char *text = json_object_to_json_string_ext(rec, JSON_C_TO_STRING_PRETTY |
							  JSON_C_TO_STRING_NOSLASHESCAPE);
	int fd, r;

	fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	r = write_all(fd, text, strlen(text));
	if (r == 0)
		r = write_all(fd, "\n", 1);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r < 0)
		unlinkat(dirfd, name, 0);
	return r;
}

static const char *rec_str(struct json_object *rec, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(rec, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static bool rec_int(struct json_object *rec, const char *key, int64_t *out)
{
	struct json_object *v;

	if (!json_object_object_get_ex(rec, key, &v) || !json_object_is_type(v, json_type_int))
		return false;
	*out = json_object_get_int64(v);
	return true;
}

static struct json_object *read_record(int dirfd, const char *id, int *err)
{
	char name[NAME_MAX_Q];
	struct json_object *rec;
	int fd;

	name_of(name, id, "json");
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		*err = -errno;
		return NULL;
	}
	rec = json_object_from_fd(fd);
	close(fd);
	if (!rec || !json_object_is_type(rec, json_type_object) || !rec_str(rec, "path")) {
		json_object_put(rec);
		*err = -EBADMSG;
		return NULL;
	}
	return rec;
}

static int rec_attrs(struct json_object *rec, struct attrs *a)
{
	const char *mode = rec_str(rec, "mode");
	int64_t uid, gid, sec, nsec;
	char *end;
	long m;

	if (!mode || !rec_int(rec, "uid", &uid) || !rec_int(rec, "gid", &gid) ||
	    !rec_int(rec, "mtime", &sec) || !rec_int(rec, "mtime_nsec", &nsec))
		return -EBADMSG;
	m = strtol(mode, &end, 8);
	/* (uid_t)-1 would mean "leave it" to chown. */
	if (*end || m < 0 || m > 07777 || uid < 0 || uid >= UINT32_MAX || gid < 0 ||
	    gid >= UINT32_MAX || nsec < 0 || nsec > 999999999)
		return -EBADMSG;
	a->uid = (uid_t)uid;
	a->gid = (gid_t)gid;
	a->mode = (mode_t)m;
	a->mtime.tv_sec = (time_t)sec;
	a->mtime.tv_nsec = (long)nsec;
	return 0;
}

/* ------------------------------------------------------------ moving in */

/* The content belongs to the agent and is readable by it only. The 0700
 * directory already keeps everyone else out: this keeps the agent itself
 * (and a careless root shell) from executing or writing it. */
static void lock_down(int dirfd, const char *name)
{
	if (fchownat(dirfd, name, geteuid(), getegid(), AT_SYMLINK_NOFOLLOW) < 0 ||
	    fchmodat(dirfd, name, 0400, 0) < 0)
		EPSEC_WARN("%s/%s: cannot make it 0400: %s", Q.dir, name, strerror(errno));
}

/* The file being moved in: its directory (opened without symlinks) and
 * name there, and what the scan saw. */
struct src {
	int pfd;
	const char *base, *path;
	dev_t dev;
	ino_t ino;
};

/* Something else was renamed in and cannot go back (a new file took its
 * name): it stays, recorded as what it is, for an admin to restore. */
static int keep_misplaced(int qfd, const struct src *s, const char *id, int err)
{
	char data[NAME_MAX_Q], rec[NAME_MAX_Q];
	struct json_object *o;
	struct stat st;

	name_of(data, id, "data");
	name_of(rec, id, "json");
	EPSEC_ERR("%s was renamed over while it was quarantined, and the file moved in by "
		  "mistake cannot be put back (%s): it is kept as quarantine ID %s, see "
		  "epsecctl quarantine restore", s->path, strerror(err), id);
	if (fstatat(qfd, data, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		o = record_new(id, s->path, &st, NULL, "(not scanned: moved in by mistake)");
		unlinkat(qfd, rec, 0);
		if (write_record(qfd, rec, o) < 0)
			EPSEC_ERR("%s/%s: cannot rewrite the record", Q.dir, rec);
		json_object_put(o);
	}
	lock_down(qfd, data);
	return -EUCLEAN;
}

/* Same filesystem. The name could have been renamed over between the
 * check and the rename: what arrived must be the scanned file, else it
 * goes back where it was, never over a file created there meanwhile. */
static int move_by_rename(int qfd, const struct src *s, const char *id, const char *data)
{
	struct stat st;

	if (renameat(s->pfd, s->base, qfd, data) < 0)
		return -errno;
	if (fstatat(qfd, data, &st, AT_SYMLINK_NOFOLLOW) == 0 && same_file(&st, s->dev, s->ino))
		return 0;
	if (renameat2(qfd, data, s->pfd, s->base, RENAME_NOREPLACE) < 0)
		return keep_misplaced(qfd, s, id, errno);
	return -ESTALE;
}

/* Another filesystem: copy what the name still holds (checked on the open
 * fd), make the copy durable, and only then unlink the original. */
static int move_by_copy(int qfd, const struct src *s, const char *data)
{
	struct stat st;
	int in, out, r;

	in = openat(s->pfd, s->base, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	r = fstat(in, &st) < 0 ? -errno : 0;
	if (r == 0 && !same_file(&st, s->dev, s->ino))
		r = -ESTALE;
	out = r == 0 ? openat(qfd, data, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			      0400) : -1;
	if (r == 0 && out < 0)
		r = -errno;
	if (r == 0)
		r = copy_fd(in, out);
	if (r == 0 && fsync(out) < 0)
		r = -errno;
	if (out >= 0 && close(out) < 0 && r == 0)
		r = -errno;
	if (r == 0)
		r = unlink_same_at(s->pfd, s->base, s->dev, s->ino);
	if (r < 0 && out >= 0)
		unlinkat(qfd, data, 0);
	close(in);
	return r;
}

static int quarantine_src(int qfd, const struct src *s, const char *engine,
			  const char *signature, char id[VSEP_QUARANTINE_ID_LEN])
{
	char data[NAME_MAX_Q], rec[NAME_MAX_Q];
	struct json_object *o;
	struct stat st;
	int r;

	if (fstatat(s->pfd, s->base, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (!same_file(&st, s->dev, s->ino))
		return -ESTALE;
	new_id(id);
	name_of(data, id, "data");
	name_of(rec, id, "json");
	o = record_new(id, s->path, &st, engine, signature);
	r = write_record(qfd, rec, o);
	json_object_put(o);
	if (r < 0)
		return r;
	r = move_by_rename(qfd, s, id, data);
	if (r == -EXDEV)
		r = move_by_copy(qfd, s, data);
	if (r == -EUCLEAN)
		return -ESTALE; /* kept, recorded and logged by keep_misplaced */
	if (r < 0) {
		unlinkat(qfd, rec, 0);
		return r;
	}
	lock_down(qfd, data);
	fsync(qfd);
	if (st.st_nlink > 1)
		EPSEC_WARN("%s had %lu other hard link(s): they still name the quarantined content",
			   s->path, (unsigned long)st.st_nlink - 1);
	return 0;
}

static int quarantine_at(int qfd, const char *path, dev_t dev, ino_t ino, const char *engine,
			 const char *signature, char id[VSEP_QUARANTINE_ID_LEN])
{
	struct src s = { .path = path, .dev = dev, .ino = ino };
	int r;

	s.pfd = vsep_open_parent(path, &s.base);
	if (s.pfd < 0)
		return s.pfd;
	r = quarantine_src(qfd, &s, engine, signature, id);
	close(s.pfd);
	return r;
}

int vsep_quarantine_file(const char *path, dev_t dev, ino_t ino, const char *engine,
			 const char *signature, char id[VSEP_QUARANTINE_ID_LEN])
{
	int dirfd, r;

	pthread_mutex_lock(&Q.lock);
	r = dirfd = open_dir();
	if (dirfd >= 0) {
		r = quarantine_at(dirfd, path, dev, ino, engine, signature, id);
		close(dirfd);
	}
	pthread_mutex_unlock(&Q.lock);
	return r;
}

/* ------------------------------------------------------------ moving out */

/* On the quarantined inode itself, before it is linked back. */
static int set_attrs_fd(int fd, const struct attrs *a)
{
	const struct timespec times[2] = { { .tv_nsec = UTIME_OMIT }, a->mtime };

	/* chown first: it clears set-id bits the mode may restore. */
	if (fchown(fd, a->uid, a->gid) < 0 || fchmod(fd, a->mode) < 0 || futimens(fd, times) < 0)
		return -errno;
	return 0;
}

/* The filesystem calls that follow act as the file's owner, so the kernel
 * lets a restore create only what the owner could have created there.
 * setfsuid is per thread (glibc does not broadcast it): other workers keep
 * running as root meanwhile. */
static void act_as_agent(void)
{
	setfsuid(geteuid());
	setfsgid(getegid());
}

static int act_as(uid_t uid, gid_t gid)
{
	setfsgid(gid);
	setfsuid(uid);
	if ((uid_t)setfsuid((uid_t)-1) != uid || (gid_t)setfsgid((gid_t)-1) != gid) {
		act_as_agent();
		return -EPERM;
	}
	return 0;
}

/* A name beside the target that nobody else is using. */
static int open_tmp(int pfd, const char *base, char tmp[NAME_MAX + 1])
{
	char id[VSEP_QUARANTINE_ID_LEN];
	int i, fd;

	for (i = 0; i < 8; i++) {
		new_id(id);
		if (snprintf(tmp, NAME_MAX + 1, "%s.epsec-restore-%s", base, id + 8) > NAME_MAX)
			return -ENAMETOOLONG;
		fd = openat(pfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0 || errno != EEXIST)
			return fd < 0 ? -errno : fd;
	}
	return -EEXIST;
}

/* Another filesystem: a hidden copy beside the target, then link(), which
 * (unlike rename) never replaces a file that appeared meanwhile. */
static int restore_by_copy(int in, int pfd, const char *base, const struct attrs *a)
{
	const struct timespec times[2] = { { .tv_nsec = UTIME_OMIT }, a->mtime };
	char tmp[NAME_MAX + 1];
	int out, r;

	out = open_tmp(pfd, base, tmp);
	if (out < 0)
		return out;
	r = copy_fd(in, out);
	if (r == 0 && (fchown(out, a->uid, a->gid) < 0 || fchmod(out, a->mode) < 0 ||
		       futimens(out, times) < 0 || fsync(out) < 0))
		r = -errno;
	if (close(out) < 0 && r == 0)
		r = -errno;
	if (r == 0 && linkat(pfd, tmp, pfd, base, 0) < 0)
		r = -errno;
	unlinkat(pfd, tmp, 0);
	return r;
}

/* Same filesystem: a new name for the quarantined inode. Through
 * /proc/self/fd, since the owner may not look into the quarantine; no
 * /proc (or another mount) means a copy. */
static int restore_by_link(int in, int pfd, const char *base)
{
	char proc[64];

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", in);
	if (linkat(AT_FDCWD, proc, pfd, base, AT_SYMLINK_FOLLOW) == 0)
		return 0;
	return errno == ENOENT ? -EXDEV : -errno;
}

/* As the owner: the directory, resolved without symlinks, must be one the
 * owner can reach and write, and the name free. */
static int create_as_owner(int in, const char *path, const struct attrs *a)
{
	const char *base;
	struct stat st;
	int pfd, r;

	pfd = vsep_open_parent(path, &base);
	if (pfd < 0)
		return pfd;
	if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0)
		r = -EEXIST;
	else
		r = errno == ENOENT ? restore_by_link(in, pfd, base) : -errno;
	if (r == -EXDEV)
		r = restore_by_copy(in, pfd, base, a);
	close(pfd);
	return r;
}

static int put_back(int qfd, const char *data, const char *path, const struct attrs *a)
{
	int in, r;

	in = openat(qfd, data, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (in < 0)
		return -errno;
	r = set_attrs_fd(in, a);
	if (r == 0)
		r = act_as(a->uid, a->gid);
	if (r == 0) {
		r = create_as_owner(in, path, a);
		act_as_agent();
	}
	if (r < 0)
		lock_down(qfd, data);
	close(in);
	return r;
}

static int restore_at(int dirfd, const char *id, char **out)
{
	char data[NAME_MAX_Q], rec[NAME_MAX_Q];
	struct json_object *o;
	struct attrs a;
	char *path;
	int r = 0;

	o = read_record(dirfd, id, &r);
	if (!o)
		return r;
	/* Copied first: nothing can fail once the file is back. */
	path = strdup(rec_str(o, "path"));
	r = !path ? -ENOMEM : plain_path(path) ? rec_attrs(o, &a) : -EBADMSG;
	json_object_put(o);
	name_of(data, id, "data");
	name_of(rec, id, "json");
	if (r == 0)
		r = put_back(dirfd, data, path, &a);
	if (r < 0) {
		free(path);
		return r;
	}
	unlinkat(dirfd, data, 0);
	unlinkat(dirfd, rec, 0);
	fsync(dirfd);
	*out = path;
	return 0;
}

int vsep_quarantine_restore(const char *id, char **path)
{
	int dirfd, r;

	*path = NULL;
	if (!id || !valid_id(id))
		return -EINVAL;
	pthread_mutex_lock(&Q.lock);
	r = dirfd = open_dir();
	if (dirfd >= 0) {
		r = restore_at(dirfd, id, path);
		close(dirfd);
	}
	pthread_mutex_unlock(&Q.lock);
	return r;
}

static int delete_at(int dirfd, const char *id)
{
	char data[NAME_MAX_Q], rec[NAME_MAX_Q];
	int a, b;

	name_of(data, id, "data");
	name_of(rec, id, "json");
	a = unlinkat(dirfd, data, 0) < 0 ? -errno : 0;
	b = unlinkat(dirfd, rec, 0) < 0 ? -errno : 0;
	if (a == -ENOENT && b == -ENOENT)
		return -ENOENT;
	if (a < 0 && a != -ENOENT)
		return a;
	if (b < 0 && b != -ENOENT)
		return b;
	fsync(dirfd);
	return 0;
}

int vsep_quarantine_delete(const char *id)
{
	int dirfd, r;

	if (!id || !valid_id(id))
		return -EINVAL;
	pthread_mutex_lock(&Q.lock);
	r = dirfd = open_dir();
	if (dirfd >= 0) {
		r = delete_at(dirfd, id);
		close(dirfd);
	}
	pthread_mutex_unlock(&Q.lock);
	return r;
}

/* ------------------------------------------------------------ listing */

/* "ID.json" with a valid ID: copies the ID out. */
static bool record_name(const char *name, char id[VSEP_QUARANTINE_ID_LEN])
{
	if (strlen(name) != ID_DIGITS + 5 || strcmp(name + ID_DIGITS, ".json") != 0)
		return false;
	memcpy(id, name, ID_DIGITS);
	id[ID_DIGITS] = '\0';
	return valid_id(id);
}

static int by_age(const void *x, const void *y)
{
	struct json_object *a = *(struct json_object *const *)x;
	struct json_object *b = *(struct json_object *const *)y;
	int64_t ta = 0, tb = 0;

	rec_int(a, "time", &ta);
	rec_int(b, "time", &tb);
	if (ta != tb)
		return ta < tb ? -1 : 1;
	/* list_one set both ids */
	return strcmp(rec_str(a, "id"), rec_str(b, "id"));
}

/* Only records whose content is there: see the top of this file. */
static void list_one(int dirfd, const char *id, struct json_object *items)
{
	char data[NAME_MAX_Q];
	struct json_object *o;
	struct stat st;
	int err;

	name_of(data, id, "data");
	if (fstatat(dirfd, data, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return;
	o = read_record(dirfd, id, &err);
	if (!o)
		return;
	add_str(o, "id", id);
	json_object_array_add(items, o);
}

static struct json_object *list_at(int dirfd, int *err)
{
	char id[VSEP_QUARANTINE_ID_LEN];
	struct json_object *items;
	struct dirent *de;
	DIR *d;
	int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);

	d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		*err = -errno;
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	items = json_object_new_array();
	while ((de = readdir(d))) {
		if (record_name(de->d_name, id))
			list_one(dirfd, id, items);
	}
	closedir(d);
	json_object_array_sort(items, by_age);
	return items;
}

struct json_object *vsep_quarantine_list(int *err)
{
	struct json_object *items = NULL;
	int dirfd;

	pthread_mutex_lock(&Q.lock);
	dirfd = open_dir();
	if (dirfd < 0) {
		*err = dirfd;
	} else {
		items = list_at(dirfd, err);
		close(dirfd);
	}
	pthread_mutex_unlock(&Q.lock);
	return items;
}

/* ------------------------------------------------------------ control */

static struct json_object *reply(bool ok, const char *error)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "ok", json_object_new_boolean(ok));
	if (!ok)
		add_str(o, "error", error);
	return o;
}

#define NO_DIR "no quarantine: quarantine_dir is unset or not an absolute path in vsep.conf"

static const char *why(int err, const char *id)
{
	switch (err) {
	case -EINVAL:
		if (!id || !valid_id(id))
			return "bad quarantine ID (16 hex digits expected)";
		return Q.dir ? strerror(EINVAL) : NO_DIR;
	case -ENOENT:
		return "no such quarantine ID";
	case -EEXIST:
		return "a file exists at the original path: not overwritten";
	case -EBADMSG:
		return "the quarantine record is damaged";
	case -EACCES:
		return "the file's owner may not create it in that directory: not restored";
	case -ELOOP:
	case -ENOTDIR:
		return "a directory on the original path is now a symlink or not a directory: "
		       "not restored";
	default:
		return strerror(-err);
	}
}

static struct json_object *cmd_list(void)
{
	struct json_object *o, *items;
	int err = 0;

	items = vsep_quarantine_list(&err);
	if (!items)
		return reply(false, Q.dir ? strerror(-err) : NO_DIR);
	o = reply(true, NULL);
	add_str(o, "dir", Q.dir);
	json_object_object_add(o, "items", items);
	return o;
}

static const char *req_id(struct json_object *req)
{
	struct json_object *v;

	if (!json_object_object_get_ex(req, "id", &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static struct json_object *cmd_restore(struct json_object *req)
{
	const char *id = req_id(req);
	struct json_object *o;
	char *path = NULL;
	int r = vsep_quarantine_restore(id, &path);

	if (r < 0)
		return reply(false, why(r, id));
	EPSEC_NOTICE("restored %s from the quarantine to %s", id, path);
	o = reply(true, NULL);
	add_str(o, "id", id);
	add_str(o, "path", path);
	free(path);
	return o;
}

static struct json_object *cmd_delete(struct json_object *req)
{
	const char *id = req_id(req);
	struct json_object *o;
	int r = vsep_quarantine_delete(id);

	if (r < 0)
		return reply(false, why(r, id));
	EPSEC_NOTICE("deleted %s from the quarantine", id);
	o = reply(true, NULL);
	add_str(o, "id", id);
	return o;
}

struct json_object *vsep_quarantine_cmd(const char *cmd, struct json_object *req)
{
	if (strcmp(cmd, "quarantine-list") == 0)
		return cmd_list();
	if (strcmp(cmd, "quarantine-restore") == 0)
		return cmd_restore(req);
	if (strcmp(cmd, "quarantine-delete") == 0)
		return cmd_delete(req);
	return reply(false, "unknown command");
}
