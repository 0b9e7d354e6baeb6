# t/fuzz/fuzz.mk
