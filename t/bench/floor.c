/* SPDX-License-Identifier: MIT */
/* The floor: a do-nothing fanotify listener that allows every held open at
 * once. No agent that holds opens can be faster, so the benchmark runs it
 * beside vsep and reports our distance from it. With -i it also sets an
 * ignore mark after the first allow (the kernel drops it when the file is
 * modified), which is what a perfect verdict cache costs. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <unistd.h>

static volatile sig_atomic_t stopping;
static unsigned long n_open_perm, n_close_write, n_overflow;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static void answer(int fan, const struct fanotify_event_metadata *m, bool ignore_mark)
{
	struct fanotify_response r = { .fd = m->fd, .response = FAN_ALLOW };

	/* Before the answer: set after it, the mark can land after the
	 * opener's first write (which is what drops it) and then outlive the
	 * change, so later opens of the new content would go unseen. */
	if (ignore_mark)
		fanotify_mark(fan, FAN_MARK_ADD | FAN_MARK_IGNORED_MASK, FAN_OPEN_PERM, m->fd, NULL);
	if (write(fan, &r, sizeof(r)) != sizeof(r))
		perror("floor: fanotify response");
}

static void drain(int fan, bool ignore_mark)
{
	char buf[8192] __attribute__((aligned(__alignof__(struct fanotify_event_metadata))));
	ssize_t n;

	while ((n = read(fan, buf, sizeof(buf))) > 0) {
		const struct fanotify_event_metadata *m = (const void *)buf;

		for (; FAN_EVENT_OK(m, n); m = FAN_EVENT_NEXT(m, n)) {
			if (m->mask & FAN_Q_OVERFLOW)
				n_overflow++;
			if (m->fd < 0)
				continue;
			if (m->mask & FAN_OPEN_PERM) {
				answer(fan, m, ignore_mark);
				n_open_perm++;
			}
			if (m->mask & FAN_CLOSE_WRITE)
				n_close_write++;
			close(m->fd);
		}
	}
}

int main(int argc, char **argv)
{
	bool ignore_mark = argc > 2 && strcmp(argv[2], "-i") == 0;
	struct sigaction sa = { .sa_handler = on_signal };
	struct pollfd p;
	int fan;

	if (argc < 2) {
		fprintf(stderr, "usage: floor MOUNTPOINT [-i]\n");
		return 2;
	}
	/* Unlimited queue, like vsep's: with a bounded one the kernel allows a
	 * permission event it cannot queue unseen, which would flatter the
	 * floor. Close-after-write is marked too, as vsep marks it. */
	fan = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK | FAN_UNLIMITED_QUEUE,
			    O_RDONLY | O_LARGEFILE | O_CLOEXEC);
	if (fan < 0 || fanotify_mark(fan, FAN_MARK_ADD | FAN_MARK_MOUNT,
				     FAN_OPEN_PERM | FAN_CLOSE_WRITE, AT_FDCWD, argv[1]) < 0) {
		perror("floor: fanotify");
		return 1;
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	printf("ready\n");
	fflush(stdout);
	p = (struct pollfd){ .fd = fan, .events = POLLIN };
	while (!stopping) {
		if (poll(&p, 1, 200) > 0)
			drain(fan, ignore_mark);
	}
	printf("floor: %lu open_perm allowed, %lu close_write seen, %lu overflows\n",
	       n_open_perm, n_close_write, n_overflow);
	return 0;
}
