/* SPDX-License-Identifier: MIT */
/* The scan workers' seccomp filter (all of libseccomp is here). Workers
 * run engines on hostile content: whatever an exploited parser would do
 * next (run a program, open a network socket or listen, debug or join
 * another process, change identity, load kernel code) kills the worker
 * thread, never the appliance: main.c answers its event as not scanned
 * and starts another. What the engines need (files, memory, temp files,
 * memfds, the log's unix socket) stays allowed, so it breaks no engine;
 * writes to files are not filtered (libclamav unpacks into temp files). */
#include "config.h"
#include "sva.h"

#include <errno.h>
#include <string.h>

#include "log.h"

#define EPSEC_LOG_SRC "confine"

#ifdef HAVE_SECCOMP
#include <sched.h>
#include <sys/socket.h>
#include <seccomp.h>

static const int killed[] = {
	SCMP_SYS(execve), SCMP_SYS(execveat), SCMP_SYS(fork), SCMP_SYS(vfork),
	SCMP_SYS(socketpair), SCMP_SYS(bind), SCMP_SYS(listen), SCMP_SYS(accept),
	SCMP_SYS(accept4), SCMP_SYS(ptrace),
	SCMP_SYS(process_vm_readv), SCMP_SYS(process_vm_writev), SCMP_SYS(mount),
	SCMP_SYS(umount2), SCMP_SYS(pivot_root), SCMP_SYS(chroot), SCMP_SYS(unshare),
	SCMP_SYS(setns), SCMP_SYS(setuid), SCMP_SYS(setgid), SCMP_SYS(setreuid),
	SCMP_SYS(setregid), SCMP_SYS(setresuid), SCMP_SYS(setresgid), SCMP_SYS(setgroups),
	SCMP_SYS(kexec_load), SCMP_SYS(init_module), SCMP_SYS(finit_module),
	SCMP_SYS(delete_module), SCMP_SYS(bpf), SCMP_SYS(perf_event_open), SCMP_SYS(keyctl),
	SCMP_SYS(add_key), SCMP_SYS(request_key),
};

/* Sockets other than AF_UNIX: logging may reconnect to syslog's /dev/log
 * from any thread (connect stays allowed for that; it can reach only
 * local sockets, which name and check their peers' uids). */
static int add_socket_rule(scmp_filter_ctx ctx)
{
	return seccomp_rule_add(ctx, SCMP_ACT_KILL_THREAD, SCMP_SYS(socket), 1,
				SCMP_A0(SCMP_CMP_NE, AF_UNIX));
}

/* New processes, not threads: clone without CLONE_THREAD. clone3 passes
 * its flags in memory a filter cannot read: ENOSYS makes glibc fall back
 * to clone, which the filter can. */
static int add_clone_rules(scmp_filter_ctx ctx)
{
	int r = seccomp_rule_add(ctx, SCMP_ACT_KILL_THREAD, SCMP_SYS(clone), 1,
				 SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0));

	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	return r;
}

int sva_confine_worker(void)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	int r = ctx ? 0 : -ENOMEM;

	for (size_t i = 0; r == 0 && i < sizeof(killed) / sizeof(killed[0]); i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_KILL_THREAD, killed[i], 0);
	if (r == 0)
		r = add_clone_rules(ctx);
	if (r == 0)
		r = add_socket_rule(ctx);
	/* This thread only (no TSYNC): the network thread keeps its sockets. */
	if (r == 0)
		r = seccomp_load(ctx);
	seccomp_release(ctx);
	return r;
}

bool sva_confine_available(void)
{
	return true;
}
#else
int sva_confine_worker(void)
{
	return 0;
}

bool sva_confine_available(void)
{
	return false;
}
#endif
