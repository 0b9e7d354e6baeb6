/* SPDX-License-Identifier: MIT */
/* epsecctl top: the chain at a glance, refreshed every second on a plain
 * terminal (clear and home, no curses): each daemon's state and every
 * counter with its rate per second since the last screen. */
#include "config.h"
#include "epsecctl.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "json.h"

#define CALL_TIMEOUT_MS 300 /* three daemons within the second */
#define CLEAR "\033[H\033[2J"

static const char *const daemons[] = { "vsep", "epsec-mux", "epsec-sva" };
#define N_DAEMONS 3

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void head(const char *daemon, struct json_object *o)
{
	printf("%-10s %-16s %s", daemon, jstr(o, "id"), jstr(o, "version"));
	if (jget(o, "mux"))
		printf("  mux %s", jbool(jget(o, "mux"), "connected") ? "connected" : "NOT CONNECTED");
	if (jget(o, "agents"))
		printf("  agents %zu  svas %zu", jlen(jget(o, "agents")), jlen(jget(o, "svas")));
	if (jget(o, "in_flight"))
		printf("  in flight %lld", jint(o, "in_flight"));
	if (jget(o, "latency"))
		printf("  p99 %lld us", jint(jget(o, "latency"), "p99_us"));
	printf("\n");
}

/* Counters five to a line, each with its rate since the last screen. */
static void counters(struct json_object *o, struct json_object *prev, double dt)
{
	struct json_object *c = jget(o, "counters"), *p = jget(prev, "counters");
	int n = 0;

	if (!json_object_is_type(c, json_type_object))
		return;
	json_object_object_foreach(c, key, val) {
		long long v = json_object_get_int64(val);

		printf("%s%s %lld", n % 5 ? "  " : "    ", key, v);
		if (p && dt > 0 && jget(p, key))
			printf(" (%+.0f/s)", (double)(v - jint(p, key)) / dt);
		if (++n % 5 == 0)
			printf("\n");
	}
	if (n % 5)
		printf("\n");
}

static int screen(const struct epsecctl_env *env, struct json_object **prev, double *t_prev)
{
	double t = now_s();
	int answered = 0, err;
	time_t wall = time(NULL);
	char when[16];

	strftime(when, sizeof(when), "%H:%M:%S", localtime(&wall));
	if (isatty(STDOUT_FILENO))
		fputs(CLEAR, stdout);
	printf("epsec top  %s  (every second; Ctrl-C quits)\n\n", when);
	for (int i = 0; i < N_DAEMONS; i++) {
		struct json_object *o = epsecctl_ask(env, daemons[i], "status", CALL_TIMEOUT_MS, &err);

		if (!o) {
			printf("%-10s %s\n", daemons[i], err == -ENOENT ? "not running here"
									 : strerror(-err));
		} else {
			head(daemons[i], o);
			counters(o, prev[i], t - *t_prev);
			answered++;
		}
		json_object_put(prev[i]);
		prev[i] = o;
	}
	*t_prev = t;
	fflush(stdout);
	return answered;
}

int epsecctl_top(const struct epsecctl_env *env, int argc, char **argv)
{
	struct json_object *prev[N_DAEMONS] = { NULL };
	long screens = 0; /* 0: until interrupted */
	double t_prev = 0;
	int answered = 0;

	if (argc == 3 && !strcmp(argv[1], "-n"))
		screens = strtol(argv[2], NULL, 10);
	if ((argc != 1 && argc != 3) || (argc == 3 && screens <= 0)) {
		fprintf(stderr, "usage: epsecctl top [-n SCREENS]\n");
		return EPSECCTL_EX_USAGE;
	}
	for (long i = 0; !screens || i < screens; i++) {
		if (i)
			sleep(1);
		answered = screen(env, prev, &t_prev);
	}
	for (int i = 0; i < N_DAEMONS; i++)
		json_object_put(prev[i]);
	return answered ? 0 : 1;
}
