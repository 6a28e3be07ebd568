build-dev/obj/src/queue/store.o: src/queue/store.c src/queue/store_int.h \
 src/queue/store.h include/scalr_email.h src/error.h
src/queue/store_int.h:
src/queue/store.h:
include/scalr_email.h:
src/error.h:
