# t/integration/integration.mk
