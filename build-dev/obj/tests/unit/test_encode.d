build-dev/obj/tests/unit/test_encode.o: tests/unit/test_encode.c \
 tests/unit/harness.h src/mime/encode.h src/util/buf.h
tests/unit/harness.h:
src/mime/encode.h:
src/util/buf.h:
