build-dev/obj/tests/unit/test_chaos.o: tests/unit/test_chaos.c \
 tests/unit/../../inbox/chaos.h tests/unit/harness.h
tests/unit/../../inbox/chaos.h:
tests/unit/harness.h:
