/* SPDX-License-Identifier: MIT */
/* vsep keeps only the capabilities it uses once it runs: the fanotify
 * group and the first marks are in place by then. */
#ifndef VSEP_CAPS_H
#define VSEP_CAPS_H

/* Call before any thread starts (capabilities are per thread; threads
 * created later inherit these). Nothing to do when not root. 0 or -errno. */
int vsep_caps_drop(void);

#endif
