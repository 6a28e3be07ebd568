build-dev/obj/tests/unit/test_mimeparse.o: tests/unit/test_mimeparse.c \
 tests/unit/../../inbox/mimeparse.h tests/unit/harness.h
tests/unit/../../inbox/mimeparse.h:
tests/unit/harness.h:
