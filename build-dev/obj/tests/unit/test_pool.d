build-dev/obj/tests/unit/test_pool.o: tests/unit/test_pool.c \
 tests/unit/harness.h src/pool.h src/net/conn.h include/scalr_email.h \
 src/smtp/engine.h src/smtp/reply.h src/util/buf.h
tests/unit/harness.h:
src/pool.h:
src/net/conn.h:
include/scalr_email.h:
src/smtp/engine.h:
src/smtp/reply.h:
src/util/buf.h:
