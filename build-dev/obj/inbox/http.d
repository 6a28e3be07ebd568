build-dev/obj/inbox/http.o: inbox/http.c inbox/http_int.h inbox/http.h \
 inbox/chaos.h inbox/store.h src/util/buf.h inbox/http_queue.h \
 include/scalr_email.h inbox/assets.h inbox/mimeparse.h
inbox/http_int.h:
inbox/http.h:
inbox/chaos.h:
inbox/store.h:
src/util/buf.h:
inbox/http_queue.h:
include/scalr_email.h:
inbox/assets.h:
inbox/mimeparse.h:
