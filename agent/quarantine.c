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
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

/* Parents as /var/lib would be (0755); the quarantine itself 0700. */
static int make_dirs(const char *dir)
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
	r = make_dirs(Q.dir);
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

/* The path may have been renamed over since it was checked: unlink only
 * what is still the scanned inode. */
static int unlink_if_same(const char *path, dev_t dev, ino_t ino)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return -errno;
	if (!same_file(&st, dev, ino))
		return -ESTALE;
	return unlink(path) < 0 ? -errno : 0;
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
	if (*end || m < 0 || m > 07777 || uid < 0 || gid < 0 || nsec < 0 || nsec > 999999999)
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

/* Same filesystem. The path could have been renamed over between the
 * check and the rename: what arrived must be the scanned file, else it
 * goes back where it was. */
static int move_by_rename(int dirfd, const char *path, dev_t dev, ino_t ino, const char *data)
{
	struct stat st;

	if (renameat(AT_FDCWD, path, dirfd, data) < 0)
		return -errno;
	if (fstatat(dirfd, data, &st, AT_SYMLINK_NOFOLLOW) == 0 && same_file(&st, dev, ino))
		return 0;
	if (renameat(dirfd, data, AT_FDCWD, path) < 0)
		return 0; /* cannot give it back: keeping it quarantined is safer */
	return -ESTALE;
}

/* Another filesystem: copy what the path still names (checked on the open
 * fd), make the copy durable, and only then unlink the original. */
static int move_by_copy(int dirfd, const char *path, dev_t dev, ino_t ino, const char *data)
{
	struct stat st;
	int in, out, r;

	in = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	r = fstat(in, &st) < 0 ? -errno : 0;
	if (r == 0 && !same_file(&st, dev, ino))
		r = -ESTALE;
	out = r == 0 ? openat(dirfd, data, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
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
		r = unlink_if_same(path, dev, ino);
	if (r < 0 && out >= 0)
		unlinkat(dirfd, data, 0);
	close(in);
	return r;
}

static int quarantine_at(int dirfd, const char *path, dev_t dev, ino_t ino, const char *engine,
			 const char *signature, char id[VSEP_QUARANTINE_ID_LEN])
{
	char data[NAME_MAX_Q], rec[NAME_MAX_Q];
	struct json_object *o;
	struct stat st;
	int r;

	if (lstat(path, &st) < 0)
		return -errno;
	if (!same_file(&st, dev, ino))
		return -ESTALE;
	new_id(id);
	name_of(data, id, "data");
	name_of(rec, id, "json");
	o = record_new(id, path, &st, engine, signature);
	r = write_record(dirfd, rec, o);
	json_object_put(o);
	if (r < 0)
		return r;
	r = move_by_rename(dirfd, path, dev, ino, data);
	if (r == -EXDEV)
		r = move_by_copy(dirfd, path, dev, ino, data);
	if (r < 0) {
		unlinkat(dirfd, rec, 0);
		return r;
	}
	lock_down(dirfd, data);
	fsync(dirfd);
	if (st.st_nlink > 1)
		EPSEC_WARN("%s had %lu other hard link(s): they still name the quarantined content",
			   path, (unsigned long)st.st_nlink - 1);
	return 0;
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

static int set_attrs_at(int dirfd, const char *name, const struct attrs *a)
{
	const struct timespec times[2] = { { .tv_nsec = UTIME_OMIT }, a->mtime };

	/* chown first: it clears set-id bits the mode may restore. */
	if (fchownat(dirfd, name, a->uid, a->gid, AT_SYMLINK_NOFOLLOW) < 0 ||
	    fchmodat(dirfd, name, a->mode, 0) < 0 ||
	    utimensat(dirfd, name, times, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return 0;
}

/* Another filesystem: a hidden copy beside the target, then link(), which
 * (unlike rename) never replaces a file that appeared meanwhile. */
static int restore_by_copy(int dirfd, const char *data, const char *path, const struct attrs *a)
{
	const struct timespec times[2] = { { .tv_nsec = UTIME_OMIT }, a->mtime };
	char tmp[PATH_MAX];
	int in, out, r;

	if (snprintf(tmp, sizeof(tmp), "%s.epsec-restore-XXXXXX", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	in = openat(dirfd, data, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (in < 0)
		return -errno;
	out = mkostemp(tmp, O_CLOEXEC);
	r = out < 0 ? -errno : copy_fd(in, out);
	close(in);
	if (out < 0)
		return r;
	if (r == 0 && (fchown(out, a->uid, a->gid) < 0 || fchmod(out, a->mode) < 0 ||
		       futimens(out, times) < 0 || fsync(out) < 0))
		r = -errno;
	if (close(out) < 0 && r == 0)
		r = -errno;
	if (r == 0 && link(tmp, path) < 0)
		r = -errno;
	unlink(tmp);
	return r;
}

static int put_back(int dirfd, const char *data, const char *path, const struct attrs *a)
{
	struct stat st;
	int r;

	if (lstat(path, &st) == 0)
		return -EEXIST;
	if (errno != ENOENT)
		return -errno;
	r = set_attrs_at(dirfd, data, a);
	if (r == 0 && linkat(dirfd, data, AT_FDCWD, path, 0) < 0)
		r = -errno;
	if (r == -EXDEV)
		r = restore_by_copy(dirfd, data, path, a);
	if (r < 0)
		lock_down(dirfd, data);
	return r;
}

static int restore_at(int dirfd, const char *id, char **out)
{
	char data[NAME_MAX_Q], rec[NAME_MAX_Q];
	struct json_object *o;
	struct attrs a;
	const char *path;
	int r = 0;

	o = read_record(dirfd, id, &r);
	if (!o)
		return r;
	path = rec_str(o, "path");
	name_of(data, id, "data");
	name_of(rec, id, "json");
	r = path[0] == '/' ? rec_attrs(o, &a) : -EBADMSG;
	if (r == 0)
		r = put_back(dirfd, data, path, &a);
	if (r == 0) {
		unlinkat(dirfd, data, 0);
		unlinkat(dirfd, rec, 0);
		fsync(dirfd);
		*out = strdup(path);
		if (!*out)
			r = -ENOMEM;
	}
	json_object_put(o);
	return r;
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

static const char *why(int err)
{
	switch (err) {
	case -EINVAL:
		return "bad quarantine ID (16 hex digits expected)";
	case -ENOENT:
		return "no such quarantine ID";
	case -EEXIST:
		return "a file exists at the original path: not overwritten";
	case -EBADMSG:
		return "the quarantine record is damaged";
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
		return reply(false, strerror(-err));
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
		return reply(false, why(r));
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
		return reply(false, why(r));
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
