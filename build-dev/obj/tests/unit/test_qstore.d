build-dev/obj/tests/unit/test_qstore.o: tests/unit/test_qstore.c \
 tests/unit/harness.h src/queue/queue_int.h src/queue/store.h \
 include/scalr_email.h src/queue/store_int.h
tests/unit/harness.h:
src/queue/queue_int.h:
src/queue/store.h:
include/scalr_email.h:
src/queue/store_int.h:
