build-dev/obj/tests/unit/test_address.o: tests/unit/test_address.c \
 tests/unit/harness.h src/mime/address.h
tests/unit/harness.h:
src/mime/address.h:
