build-dev/obj/tests/unit/test_store.o: tests/unit/test_store.c \
 tests/unit/../../inbox/store.h tests/unit/harness.h
tests/unit/../../inbox/store.h:
tests/unit/harness.h:
