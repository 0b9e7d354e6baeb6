/* SPDX-License-Identifier: MIT */
/* CURVE for the tcp transport: key files, their options, and the one ZAP
 * handler of the process (ZeroMQ allows one per context), which answers
 * for every CURVE listener by ZAP domain. It runs in its own thread: the
 * handshake of a client waits on it, not on the host's loop. */
#include "config.h"
#include "curve.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define SRC "tcp"
#define KEY_FILE_MAX 4096
#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define ZAP_FRAMES 8

/* ------------------------------------------------------------ key files */

bool curve_z85_key(const char *z85, uint8_t out[32])
{
	uint8_t tmp[32];

	if (!z85 || strlen(z85) != CURVE_Z85)
		return false;
	return zmq_z85_decode(out ? out : tmp, z85) != NULL;
}

static const char *next_line(const char *s)
{
	const char *nl = strchr(s, '\n');

	return nl ? nl + 1 : NULL;
}

int curve_key_field(const char *text, const char *name, char out[CURVE_Z85 + 1])
{
	size_t n = strlen(name);
	const char *line, *p;

	for (line = text; line && *line; line = next_line(line)) {
		p = line + strspn(line, " \t");
		if (strncmp(p, name, n))
			continue;
		p += n;
		p += strspn(p, " \t");
		if (*p++ != '=')
			continue;
		p += strspn(p, " \t");
		if (*p++ != '"' || strcspn(p, "\"\n") != CURVE_Z85 || p[CURVE_Z85] != '"')
			return -EINVAL;
		memcpy(out, p, CURVE_Z85);
		out[CURVE_Z85] = '\0';
		return curve_z85_key(out, NULL) ? 0 : -EINVAL;
	}
	return -EINVAL;
}

/* A small regular file into buf (NUL-terminated). A secret one must not be
 * readable by others: -EPERM. */
static int read_small(const char *path, bool secret, char *buf, size_t len)
{
	struct stat st;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC), r = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		r = -errno;
	else if (S_ISDIR(st.st_mode))
		r = -EISDIR;
	else if (!S_ISREG(st.st_mode) || st.st_size >= (off_t)len)
		r = -EFBIG;
	else if (secret && (st.st_mode & S_IROTH))
		r = -EPERM;
	else if ((n = read(fd, buf, len - 1)) < 0)
		r = -errno;
	else
		buf[n] = '\0';
	close(fd);
	return r;
}

/* A key pair file: the secret key, and the public key checked against it. */
static int load_pair(const char *path, char pub[CURVE_Z85 + 1], char sec[CURVE_Z85 + 1])
{
	char text[KEY_FILE_MAX], derived[CURVE_Z85 + 1];
	int r = read_small(path, true, text, sizeof(text));

	if (!r)
		r = curve_key_field(text, "secret-key", sec);
	if (!r && zmq_curve_public(derived, sec) < 0)
		r = -EINVAL;
	if (!r && curve_key_field(text, "public-key", pub) == 0 && strcmp(pub, derived))
		r = -EKEYREJECTED;
	if (!r)
		memcpy(pub, derived, sizeof(derived));
	explicit_bzero(text, sizeof(text));
	return r;
}

static int load_public(const char *path, char pub[CURVE_Z85 + 1])
{
	char text[KEY_FILE_MAX];
	int r = read_small(path, false, text, sizeof(text));

	return r ? r : curve_key_field(text, "public-key", pub);
}

static int key_error(const struct epsec_host *host, const config_setting_t *s,
		     const char *path, int err)
{
	switch (err) {
	case -EPERM:
		return host->conf_error(s, "%s: a secret key file readable by others; chmod 600 it",
					path);
	case -EINVAL:
		return host->conf_error(s, "%s: not a key file (no valid public-key/secret-key "
					   "line as `epsecctl keygen` writes)", path);
	case -EKEYREJECTED:
		return host->conf_error(s, "%s: its public-key does not belong to its secret-key",
					path);
	case -EFBIG:
		return host->conf_error(s, "%s: not a key file (too large or not a regular file)",
					path);
	default:
		return host->conf_error(s, "cannot read key file %s: %s", path, strerror(-err));
	}
}

/* A Z85 key written in the configuration itself. Z85 has '/' and '.' in
 * its alphabet, so a string that names an existing file is a file. */
static bool literal_key(const char *v, uint8_t key[32])
{
	return curve_z85_key(v, key) && access(v, F_OK) < 0;
}

static const char *string_of(const struct epsec_host *host, const config_setting_t *s)
{
	if (config_setting_type(s) == CONFIG_TYPE_STRING && *config_setting_get_string(s))
		return config_setting_get_string(s);
	host->conf_error(s, "expected a file name or a Z85 key (a string)");
	return NULL;
}

/* ------------------------------------------------------------ allowed keys */

static int allowed_add(struct curve_allowed *a, const uint8_t key[32], const char *name)
{
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 8;
		uint8_t(*k)[32] = realloc(a->keys, cap * sizeof(*k));
		char **nm = k ? realloc(a->names, cap * sizeof(*nm)) : NULL;

		if (k)
			a->keys = k;
		if (!nm)
			return -ENOMEM;
		a->names = nm;
		a->cap = cap;
	}
	if (!(a->names[a->n] = strdup(name)))
		return -ENOMEM;
	memcpy(a->keys[a->n++], key, 32);
	return 0;
}

static void allowed_free(struct curve_allowed *a)
{
	size_t i;

	for (i = 0; i < a->n; i++)
		free(a->names[i]);
	free(a->names);
	free(a->keys);
	memset(a, 0, sizeof(*a));
}

/* A .pub file, named in logs and status by its base name without .pub. */
static int allowed_file(const struct epsec_host *host, const config_setting_t *s,
			const char *path, struct curve_allowed *a)
{
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	size_t n = strlen(base);
	char z85[CURVE_Z85 + 1], name[256];
	uint8_t key[32];
	int r = load_public(path, z85);

	if (r)
		return key_error(host, s, path, r);
	if (n > 4 && !strcmp(base + n - 4, ".pub"))
		n -= 4;
	snprintf(name, sizeof(name), "%.*s", (int)n, base);
	curve_z85_key(z85, key);
	return allowed_add(a, key, name);
}

static bool is_pub(const char *name)
{
	size_t n = strlen(name);

	return name[0] != '.' && n > 4 && !strcmp(name + n - 4, ".pub");
}

static int allowed_dir(const struct epsec_host *host, const config_setting_t *s,
		       const char *dir, struct curve_allowed *a)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[4096];
	int r = 0;

	if (!d)
		return host->conf_error(s, "cannot read directory %s: %s", dir, strerror(errno));
	while (!r && (e = readdir(d)))
		if (is_pub(e->d_name)) {
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			r = allowed_file(host, s, path, a);
		}
	closedir(d);
	return r;
}

/* One entry: a Z85 public key as text, a directory of .pub files, or a
 * .pub file. */
static int allowed_entry(const struct epsec_host *host, const config_setting_t *s,
			 struct curve_allowed *a)
{
	const char *v = string_of(host, s);
	struct stat st;
	uint8_t key[32];
	char name[16];

	if (!v)
		return -EINVAL;
	if (literal_key(v, key)) {
		snprintf(name, sizeof(name), "key-%.8s", v);
		return allowed_add(a, key, name);
	}
	if (stat(v, &st) == 0 && S_ISDIR(st.st_mode))
		return allowed_dir(host, s, v, a);
	return allowed_file(host, s, v, a);
}

static int parse_allowed(const struct epsec_host *host, const config_setting_t *s,
			 struct curve_allowed *a)
{
	int i, r = 0;

	if (config_setting_is_array(s) || config_setting_is_list(s)) {
		for (i = 0; i < config_setting_length(s) && !r; i++)
			r = allowed_entry(host, config_setting_get_elem(s, (unsigned)i), a);
	} else {
		r = allowed_entry(host, s, a);
	}
	if (!r && !a->n)
		r = host->conf_error(s, "no client public keys found: nobody could connect");
	return r;
}

/* ------------------------------------------------------------ options */

int curve_server_opts(const struct epsec_host *host, const config_setting_t *opts,
		      struct curve_server *out)
{
	static const char *const keys[] = { "curve_secret_key", "curve_allowed_keys",
					    "insecure_plaintext", NULL };
	const config_setting_t *sk = opts ? config_setting_get_member(opts, keys[0]) : NULL;
	const config_setting_t *ak = opts ? config_setting_get_member(opts, keys[1]) : NULL;
	char pub[CURVE_Z85 + 1];
	const char *path;
	int r = host->conf_check_keys(opts, keys);

	memset(out, 0, sizeof(*out));
	if (r || (!sk && !ak))
		return r;
	if (!sk)
		return host->conf_error(ak, "needs curve_secret_key (the server's key pair) too");
	if (!ak)
		return host->conf_error(sk, "needs curve_allowed_keys too: without them CURVE lets "
					    "in any client that knows the server's public key");
	if (!(path = string_of(host, sk)))
		return -EINVAL;
	if ((r = load_pair(path, pub, out->secret)))
		return key_error(host, sk, path, r);
	if ((r = parse_allowed(host, ak, &out->allowed))) {
		curve_server_free(out);
		return r;
	}
	out->on = true;
	return 0;
}

void curve_server_free(struct curve_server *s)
{
	allowed_free(&s->allowed);
	explicit_bzero(s, sizeof(*s));
}

static int client_keys(const struct epsec_host *host, const config_setting_t *sk,
		       const config_setting_t *ck, struct curve_client *out)
{
	const char *server = string_of(host, sk), *key = string_of(host, ck);
	int r;

	if (!server || !key)
		return -EINVAL;
	if (literal_key(server, NULL))
		memcpy(out->server, server, CURVE_Z85 + 1);
	else if ((r = load_public(server, out->server)))
		return key_error(host, sk, server, r);
	if ((r = load_pair(key, out->public, out->secret)))
		return key_error(host, ck, key, r);
	return 0;
}

int curve_client_opts(const struct epsec_host *host, const config_setting_t *opts,
		      struct curve_client *out)
{
	static const char *const keys[] = { "curve_server_key", "curve_key", "insecure_plaintext",
					    NULL };
	const config_setting_t *sk = opts ? config_setting_get_member(opts, keys[0]) : NULL;
	const config_setting_t *ck = opts ? config_setting_get_member(opts, keys[1]) : NULL;
	int r = host->conf_check_keys(opts, keys);

	memset(out, 0, sizeof(*out));
	if (r || (!sk && !ck))
		return r;
	if (!sk)
		return host->conf_error(ck, "needs curve_server_key (the server's public key) too");
	if (!ck)
		return host->conf_error(sk, "needs curve_key (this side's key pair) too");
	r = client_keys(host, sk, ck, out);
	if (r)
		curve_client_free(out);
	else
		out->on = true;
	return r;
}

void curve_client_free(struct curve_client *c)
{
	explicit_bzero(c, sizeof(*c));
}

/* ------------------------------------------------------------ logs */

bool curve_log_pass(struct curve_ratelimit *rl, char *more, size_t len)
{
	struct timespec ts;
	uint64_t window;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	window = (uint64_t)ts.tv_sec / 10;
	if (window != rl->window) {
		rl->window = window;
		rl->logged = 0;
	}
	if (rl->logged >= 10) {
		rl->unlogged++;
		return false;
	}
	rl->logged++;
	more[0] = '\0';
	if (rl->unlogged)
		snprintf(more, len, " (and %u refused before, not logged)", rl->unlogged);
	rl->unlogged = 0;
	return true;
}

/* ------------------------------------------------------------ ZAP */

struct zap_domain {
	struct zap_domain *next;
	char name[32];
	char where[320];
	const struct epsec_host *host;
	struct curve_allowed allowed;
	struct curve_ratelimit rl;
};

static pthread_mutex_t zap_lock = PTHREAD_MUTEX_INITIALIZER;
static struct zap_domain *zap_domains;
static bool zap_running;
static unsigned long zap_seq;

/* Frame i as a NUL-terminated string, cut to len. */
static void frame_str(zmq_msg_t *f, int n, int i, char *buf, size_t len)
{
	size_t sz = i < n ? zmq_msg_size(&f[i]) : 0;

	if (sz >= len)
		sz = len - 1;
	if (sz)
		memcpy(buf, zmq_msg_data(&f[i]), sz);
	buf[sz] = '\0';
}

static void zap_send(void *sock, zmq_msg_t *f, int n, const char *status, const char *text,
		     const char *user)
{
	const void *rid = n > 1 ? zmq_msg_data(&f[1]) : "";
	size_t rid_len = n > 1 ? zmq_msg_size(&f[1]) : 0;

	zmq_send(sock, "1.0", 3, ZMQ_SNDMORE);
	zmq_send(sock, rid, rid_len, ZMQ_SNDMORE);
	zmq_send(sock, status, strlen(status), ZMQ_SNDMORE);
	zmq_send(sock, text, strlen(text), ZMQ_SNDMORE);
	zmq_send(sock, user, strlen(user), ZMQ_SNDMORE);
	zmq_send(sock, "", 0, 0);
}

static struct zap_domain *zap_find(const char *name)
{
	struct zap_domain *d;

	for (d = zap_domains; d && strcmp(d->name, name); d = d->next)
		;
	return d;
}

/* The name of the allowed key, or NULL (and the refusal logged). Called
 * with zap_lock held. */
static const char *zap_judge(struct zap_domain *d, const uint8_t *key, const char *addr)
{
	char z85[CURVE_Z85 + 1], more[64];
	size_t i;

	for (i = 0; i < d->allowed.n; i++)
		if (!memcmp(d->allowed.keys[i], key, 32))
			return d->allowed.names[i];
	if (!curve_log_pass(&d->rl, more, sizeof(more)))
		return NULL;
	zmq_z85_encode(z85, key, 32);
	d->host->log(EPSEC_LOG_WARNING, SRC,
		     "refused client at %s on %s: its CURVE key %s is not in curve_allowed_keys%s",
		     addr, d->where, z85, more);
	return NULL;
}

/* Request: version, request id, domain, address, routing id, mechanism,
 * credentials (CURVE: the client's 32-byte public key). A domain that is
 * not ours belongs to a plain listener of this process (NULL mechanism),
 * which has no keys to check. */
static void zap_answer(void *sock, zmq_msg_t *f, int n)
{
	char version[8], domain[32], addr[64], mech[16];
	const char *user = NULL, *status = "400", *text = "key not allowed";
	struct zap_domain *d;

	frame_str(f, n, 0, version, sizeof(version));
	frame_str(f, n, 2, domain, sizeof(domain));
	frame_str(f, n, 3, addr, sizeof(addr));
	frame_str(f, n, 5, mech, sizeof(mech));
	pthread_mutex_lock(&zap_lock);
	d = strcmp(version, "1.0") || n < 6 ? NULL : zap_find(domain);
	if (!d && !strcmp(mech, "NULL") && !strcmp(version, "1.0"))
		status = "200", text = "OK", user = "";
	else if (!d || strcmp(mech, "CURVE") || n < 7 || zmq_msg_size(&f[6]) != 32)
		text = "bad request";
	else if ((user = zap_judge(d, zmq_msg_data(&f[6]), addr)))
		status = "200", text = "OK";
	zap_send(sock, f, n, status, text, user ? user : "");
	pthread_mutex_unlock(&zap_lock);
}

/* One request, its first ZAP_FRAMES frames kept: the count, or -1 with
 * errno set (ETERM: the context is gone). */
static int zap_recv(void *sock, zmq_msg_t *f)
{
	zmq_msg_t extra;
	bool more = true;
	int n = 0;

	while (more) {
		zmq_msg_t *m = n < ZAP_FRAMES ? &f[n] : &extra;

		zmq_msg_init(m);
		while (zmq_msg_recv(m, sock, 0) < 0)
			if (errno != EINTR) {
				zmq_msg_close(m);
				while (n)
					zmq_msg_close(&f[--n]);
				return -1;
			}
		more = zmq_msg_more(m);
		if (m == &extra)
			zmq_msg_close(m);
		else
			n++;
	}
	return n;
}

static void *zap_main(void *sock)
{
	zmq_msg_t f[ZAP_FRAMES];
	int i, n;

	while ((n = zap_recv(sock, f)) >= 0 || errno != ETERM) {
		if (n <= 0)
			continue;
		zap_answer(sock, f, n);
		for (i = 0; i < n; i++)
			zmq_msg_close(&f[i]);
	}
	zmq_close(sock);
	return NULL;
}

/* Called with zap_lock held. The handler lives as long as the process
 * (its context is never terminated). */
static int zap_start(void *ctx)
{
	pthread_attr_t attr;
	pthread_t tid;
	void *sock;
	int r;

	if (zap_running)
		return 0;
	sock = zmq_socket(ctx, ZMQ_REP);
	if (!sock)
		return -errno;
	if (zmq_bind(sock, ZAP_ENDPOINT) < 0) {
		r = -errno;
		zmq_close(sock);
		return r;
	}
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	r = -pthread_create(&tid, &attr, zap_main, sock);
	pthread_attr_destroy(&attr);
	if (r) {
		zmq_close(sock);
		return r;
	}
	zap_running = true;
	return 0;
}

int curve_zap_add(void *ctx, const struct epsec_host *host, const char *where,
		  struct curve_allowed *allowed, char domain[32])
{
	struct zap_domain *d = calloc(1, sizeof(*d));
	int r;

	if (!d) {
		allowed_free(allowed);
		return -ENOMEM;
	}
	d->host = host;
	d->allowed = *allowed;
	memset(allowed, 0, sizeof(*allowed));
	snprintf(d->where, sizeof(d->where), "%s", where);
	pthread_mutex_lock(&zap_lock);
	r = zap_start(ctx);
	if (!r) {
		snprintf(d->name, sizeof(d->name), "epsec-%lu", ++zap_seq);
		memcpy(domain, d->name, sizeof(d->name));
		d->next = zap_domains;
		zap_domains = d;
	}
	pthread_mutex_unlock(&zap_lock);
	if (r) {
		allowed_free(&d->allowed);
		free(d);
	}
	return r;
}

void curve_zap_remove(const char *domain)
{
	struct zap_domain **pp, *d = NULL;

	pthread_mutex_lock(&zap_lock);
	for (pp = &zap_domains; *pp; pp = &(*pp)->next)
		if (!strcmp((*pp)->name, domain)) {
			d = *pp;
			*pp = d->next;
			break;
		}
	pthread_mutex_unlock(&zap_lock);
	if (d) {
		allowed_free(&d->allowed);
		free(d);
	}
}
