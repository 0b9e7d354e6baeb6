# t/unit/wire.mk
