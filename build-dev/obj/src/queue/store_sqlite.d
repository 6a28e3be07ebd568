build-dev/obj/src/queue/store_sqlite.o: src/queue/store_sqlite.c \
 src/error.h include/scalr_email.h src/queue/store_int.h \
 src/queue/store.h
src/error.h:
include/scalr_email.h:
src/queue/store_int.h:
src/queue/store.h:
