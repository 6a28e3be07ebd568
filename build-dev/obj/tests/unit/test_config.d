build-dev/obj/tests/unit/test_config.o: tests/unit/test_config.c \
 src/config.h include/scalr_email.h tests/unit/harness.h src/util/buf.h
src/config.h:
include/scalr_email.h:
tests/unit/harness.h:
src/util/buf.h:
