build-dev/obj/tests/unit/test_compose.o: tests/unit/test_compose.c \
 tests/unit/harness.h src/mime/compose.h include/scalr_email.h \
 src/util/buf.h
tests/unit/harness.h:
src/mime/compose.h:
include/scalr_email.h:
src/util/buf.h:
