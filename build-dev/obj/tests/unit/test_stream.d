build-dev/obj/tests/unit/test_stream.o: tests/unit/test_stream.c \
 tests/unit/harness.h src/mime/compose.h include/scalr_email.h \
 src/util/buf.h src/smtp/engine.h src/smtp/reply.h
tests/unit/harness.h:
src/mime/compose.h:
include/scalr_email.h:
src/util/buf.h:
src/smtp/engine.h:
src/smtp/reply.h:
