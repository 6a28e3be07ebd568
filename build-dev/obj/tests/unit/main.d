build-dev/obj/tests/unit/main.o: tests/unit/main.c tests/unit/harness.h
tests/unit/harness.h:
