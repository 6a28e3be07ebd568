build-dev/obj/inbox/http_queue.o: inbox/http_queue.c inbox/http_queue.h \
 include/scalr_email.h inbox/http_int.h inbox/http.h inbox/chaos.h \
 inbox/store.h src/util/buf.h
inbox/http_queue.h:
include/scalr_email.h:
inbox/http_int.h:
inbox/http.h:
inbox/chaos.h:
inbox/store.h:
src/util/buf.h:
