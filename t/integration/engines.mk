# engines tests (fragment owned by one part of the work; see t/Makefile.inc)
