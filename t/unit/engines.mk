# t/unit/engines.mk
