build-dev/obj/tests/unit/test_engine.o: tests/unit/test_engine.c \
 tests/unit/harness.h src/smtp/engine.h include/scalr_email.h \
 src/smtp/reply.h src/util/buf.h
tests/unit/harness.h:
src/smtp/engine.h:
include/scalr_email.h:
src/smtp/reply.h:
src/util/buf.h:
