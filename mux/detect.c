/* SPDX-License-Identifier: MIT */
/* Detections: the agent's record completed with who sent it, one line
 * appended to detections_log, a notice, and on_detect run with the fields
 * in its environment (as clamd's VirusEvent, but by posix_spawn with the
 * configured argv: a hostile file name is only ever a variable's value).
 * At most on_detect_max run at once, each killed past its timeout; records
 * beyond a bounded queue are counted as dropped, never waited for. */
#include "config.h"
#include "detect.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"

#define EPSEC_LOG_SRC "detect"

#define QUEUE_MAX 64
#define REAP_MS 50
#define JSON_LINE (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

extern char **environ;

static const char *const fields[] = { "time", "agent", "path", "engine", "signature",
				      "action", "result", NULL };
#define N_FIELDS 7

struct job {
	pid_t pid;
	uint64_t deadline_ms;
};

struct mux_detect {
	const struct mux_settings *set;
	struct epsec_loop *loop;
	int fd, timer;
	struct job *running;
	size_t n_running;
	struct json_object *queue[QUEUE_MAX];
	size_t q_head, q_len;
	uint64_t detections, run, failed, killed, dropped, log_errors;
};

/* ------------------------------------------------------------ record */

static const char *field(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
		       ? json_object_get_string(v) : "";
}

/* Only the known fields, as strings: the agent's text is data. */
static struct json_object *complete(const char *agent, const char *peer, const char *text)
{
	struct json_object *in = json_tokener_parse(text), *out;

	if (!in || !json_object_is_type(in, json_type_object)) {
		json_object_put(in);
		return NULL;
	}
	out = json_object_new_object();
	for (size_t i = 0; fields[i]; i++)
		json_object_object_add(out, fields[i], json_object_new_string(field(in, fields[i])));
	json_object_object_add(out, "agent", json_object_new_string(agent));
	json_object_object_add(out, "peer", json_object_new_string(peer ? peer : ""));
	json_object_put(in);
	return out;
}

static int open_log(struct mux_detect *d)
{
	if (d->fd < 0)
		d->fd = open(d->set->detections_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	return d->fd < 0 ? -errno : 0;
}

/* One write of the whole line: O_APPEND keeps lines whole. */
static void write_line(struct mux_detect *d, struct json_object *rec)
{
	const char *s = json_object_to_json_string_ext(rec, JSON_LINE);
	size_t len = strlen(s);
	char *line = malloc(len + 2);
	int r = line ? open_log(d) : -ENOMEM;

	if (r == 0) {
		memcpy(line, s, len);
		line[len] = '\n';
		if (write(d->fd, line, len + 1) != (ssize_t)(len + 1))
			r = -EIO;
	}
	free(line);
	if (r < 0 && d->log_errors++ == 0)
		EPSEC_ERR("detections log %s: %s (said once)", d->set->detections_log, strerror(-r));
}

/* ------------------------------------------------------------ on_detect */

/* EPSEC_TIME, EPSEC_AGENT, ... beside the mux's own environment. */
static char **child_env(struct json_object *rec)
{
	size_t n = 0, k = 0;
	char **env;

	while (environ[n])
		n++;
	env = calloc(n + N_FIELDS + 2, sizeof(*env));
	if (!env)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "EPSEC_", 6))
			env[k++] = strdup(environ[i]);
	for (size_t i = 0; fields[i]; i++) {
		char name[32];

		snprintf(name, sizeof(name), "EPSEC_%s", fields[i]);
		for (char *p = name; *p; p++)
			*p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
		if (asprintf(&env[k], "%s=%s", name, field(rec, fields[i])) >= 0)
			k++;
	}
	return env;
}

static void free_env(char **env)
{
	for (size_t i = 0; env && env[i]; i++)
		free(env[i]);
	free(env);
}

/* The mux blocks its signals and ignores SIGPIPE: the command must not
 * inherit either, or it could not be stopped nor see a closed pipe. */
static int spawn_attrs(posix_spawnattr_t *a, posix_spawn_file_actions_t *fa)
{
	sigset_t none, pipe;

	sigemptyset(&none);
	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	if (posix_spawnattr_init(a) || posix_spawn_file_actions_init(fa))
		return -ENOMEM;
	posix_spawnattr_setsigmask(a, &none);
	posix_spawnattr_setsigdefault(a, &pipe);
	posix_spawnattr_setflags(a, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
				    POSIX_SPAWN_SETPGROUP);
	posix_spawn_file_actions_addopen(fa, 0, "/dev/null", O_RDONLY, 0);
	return 0;
}

static void start_one(struct mux_detect *d, struct json_object *rec)
{
	char **argv = (char **)d->set->on_detect.v, **env = child_env(rec);
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t a;
	pid_t pid;
	int r = env ? spawn_attrs(&a, &fa) : -ENOMEM;

	if (r == 0) {
		r = -posix_spawn(&pid, argv[0], &fa, &a, argv, env);
		posix_spawnattr_destroy(&a);
		posix_spawn_file_actions_destroy(&fa);
	}
	free_env(env);
	if (r < 0) {
		d->failed++;
		EPSEC_WARN("on_detect %s: %s", argv[0], strerror(-r));
		return;
	}
	d->run++;
	d->running[d->n_running++] = (struct job){ pid, epsec_now_ms() +
						   (uint64_t)d->set->on_detect_timeout_ms };
}

static void start_queued(struct mux_detect *d)
{
	while (d->q_len && d->n_running < (size_t)d->set->on_detect_max) {
		struct json_object *rec = d->queue[d->q_head];

		d->q_head = (d->q_head + 1) % QUEUE_MAX;
		d->q_len--;
		start_one(d, rec);
		json_object_put(rec);
	}
}

/* A command killed for its timeout was counted as killed, not failed. */
static void finished(struct mux_detect *d, size_t i, int status)
{
	if (d->running[i].deadline_ms && (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
		d->failed++;
		EPSEC_WARN("on_detect %s (pid %d): %s %d", d->set->on_detect.v[0],
			   (int)d->running[i].pid, WIFEXITED(status) ? "exit status" : "signal",
			   WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	}
	d->running[i] = d->running[--d->n_running];
}

/* Its whole process group goes: a command may have started others. It
 * is reaped on a next tick (deadline 0: killed already). */
static void kill_late(struct mux_detect *d, struct job *j)
{
	kill(-j->pid, SIGKILL);
	if (!j->deadline_ms)
		return;
	d->killed++;
	EPSEC_WARN("on_detect %s (pid %d): killed after %d ms", d->set->on_detect.v[0],
		   (int)j->pid, d->set->on_detect_timeout_ms);
	j->deadline_ms = 0;
}

static void reap(struct epsec_loop *loop, void *arg)
{
	struct mux_detect *d = arg;
	uint64_t now = epsec_now_ms();
	int status;

	for (size_t i = 0; i < d->n_running;) {
		pid_t r = waitpid(d->running[i].pid, &status, WNOHANG);

		if (r == d->running[i].pid) {
			finished(d, i, status);
			continue;
		}
		if (now >= d->running[i].deadline_ms)
			kill_late(d, &d->running[i]);
		i++;
	}
	start_queued(d);
}

static void enqueue(struct mux_detect *d, struct json_object *rec)
{
	if (d->q_len == QUEUE_MAX) {
		if (d->dropped++ == 0)
			EPSEC_WARN("on_detect: %d detections waiting; later ones are not run "
				   "(counted as on_detect_dropped)", QUEUE_MAX);
		return;
	}
	d->queue[(d->q_head + d->q_len++) % QUEUE_MAX] = json_object_get(rec);
	start_queued(d);
}

/* ------------------------------------------------------------ public */

void mux_detect_record(struct mux_detect *d, const char *agent, const char *peer,
		       const char *text)
{
	struct json_object *rec = complete(agent, peer, text);

	if (!rec) {
		EPSEC_WARN("agent %s: a detection record that is not a JSON object: dropped", agent);
		return;
	}
	d->detections++;
	write_line(d, rec);
	EPSEC_NOTICE("detection: agent %s: %s: %s found by %s, action %s: %s", agent,
		     field(rec, "path"), field(rec, "signature"), field(rec, "engine"),
		     field(rec, "action"), field(rec, "result"));
	if (d->set->on_detect.n)
		enqueue(d, rec);
	json_object_put(rec);
}

int mux_detect_new(struct epsec_loop *loop, const struct mux_settings *set,
		   struct mux_detect **out)
{
	struct mux_detect *d = calloc(1, sizeof(*d));

	if (!d)
		return -ENOMEM;
	d->set = set;
	d->loop = loop;
	d->fd = -1;
	d->running = calloc((size_t)set->on_detect_max, sizeof(*d->running));
	d->timer = d->running ? epsec_loop_add_timer(loop, REAP_MS, reap, d) : -ENOMEM;
	if (d->timer < 0) {
		int r = d->timer;

		free(d->running);
		free(d);
		return r;
	}
	*out = d;
	return 0;
}

void mux_detect_free(struct mux_detect *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n_running; i++) {
		kill(-d->running[i].pid, SIGKILL);
		waitpid(d->running[i].pid, NULL, 0);
	}
	while (d->q_len--)
		json_object_put(d->queue[d->q_head++ % QUEUE_MAX]);
	if (d->fd >= 0)
		close(d->fd);
	free(d->running);
	free(d);
}

static void add_u64(struct json_object *o, const char *key, uint64_t v)
{
	json_object_object_add(o, key, json_object_new_int64((int64_t)v));
}

struct json_object *mux_detect_status(const struct mux_detect *d)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "log", json_object_new_string(d->set->detections_log));
	add_u64(o, "detections", d->detections);
	add_u64(o, "on_detect_run", d->run);
	add_u64(o, "on_detect_running", d->n_running);
	add_u64(o, "on_detect_waiting", d->q_len);
	add_u64(o, "on_detect_failed", d->failed);
	add_u64(o, "on_detect_killed", d->killed);
	add_u64(o, "on_detect_dropped", d->dropped);
	return o;
}
