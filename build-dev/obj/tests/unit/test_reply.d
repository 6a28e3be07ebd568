build-dev/obj/tests/unit/test_reply.o: tests/unit/test_reply.c \
 tests/unit/harness.h src/smtp/reply.h
tests/unit/harness.h:
src/smtp/reply.h:
