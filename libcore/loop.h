/* SPDX-License-Identifier: MIT */
/* The event loop every daemon runs: epoll over plain fds (sockets,
 * fanotify, timerfd, eventfd) and ZeroMQ's ZMQ_FD. epoll rather than
 * zmq_poll: it scales to a thousand agent links without rebuilding a poll
 * set each turn, and ZeroMQ sockets join it through their (edge-triggered)
 * ZMQ_FD, which the transport drains to EAGAIN. One thread owns a loop;
 * other threads talk to it with epsec_loop_post. */
#ifndef EPSEC_LOOP_H
#define EPSEC_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct epsec_loop;

/* events: EPSEC_LOOP_IN | EPSEC_LOOP_OUT | EPSEC_LOOP_ERR (as epoll's bits) */
#define EPSEC_LOOP_IN 0x001u
#define EPSEC_LOOP_OUT 0x004u
#define EPSEC_LOOP_ERR 0x008u

typedef void (*epsec_loop_fd_fn)(struct epsec_loop *loop, int fd, uint32_t events, void *arg);
typedef void (*epsec_loop_timer_fn)(struct epsec_loop *loop, void *arg);
typedef void (*epsec_loop_post_fn)(struct epsec_loop *loop, void *arg);

int epsec_loop_new(struct epsec_loop **out);
void epsec_loop_free(struct epsec_loop *loop);
/* Level-triggered watch; `events` as above. */
int epsec_loop_add_fd(struct epsec_loop *loop, int fd, uint32_t events, epsec_loop_fd_fn fn, void *arg);
int epsec_loop_mod_fd(struct epsec_loop *loop, int fd, uint32_t events);
void epsec_loop_del_fd(struct epsec_loop *loop, int fd);
/* Repeating timer every interval_ms; returns an id > 0 or a negative errno. */
int epsec_loop_add_timer(struct epsec_loop *loop, unsigned interval_ms, epsec_loop_timer_fn fn, void *arg);
void epsec_loop_del_timer(struct epsec_loop *loop, int id);
/* Thread-safe: run fn(arg) on the loop's thread soon. */
int epsec_loop_post(struct epsec_loop *loop, epsec_loop_post_fn fn, void *arg);
/* Runs until epsec_loop_stop (thread-safe, async-signal-safe). */
int epsec_loop_run(struct epsec_loop *loop);
void epsec_loop_stop(struct epsec_loop *loop);
/* Monotonic milliseconds. */
uint64_t epsec_now_ms(void);
uint64_t epsec_now_us(void);

#endif
