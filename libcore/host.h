/* SPDX-License-Identifier: MIT */
/* The struct epsec_host this program hands its plugins. */
#ifndef EPSEC_CORE_HOST_H
#define EPSEC_CORE_HOST_H

#include <epsec/host.h>

/* Set the program name once, early in main. */
void epsec_host_init(const char *program);
const struct epsec_host *epsec_host_get(void);

#endif
