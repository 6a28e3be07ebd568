build-dev/obj/tests/unit/test_conn.o: tests/unit/test_conn.c \
 tests/unit/harness.h src/net/conn.h include/scalr_email.h
tests/unit/harness.h:
src/net/conn.h:
include/scalr_email.h:
