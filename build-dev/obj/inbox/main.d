build-dev/obj/inbox/main.o: inbox/main.c inbox/inbox.h inbox/chaos.h \
 inbox/http.h inbox/store.h inbox/http_queue.h include/scalr_email.h \
 inbox/server.h inbox/smtpd.h
inbox/inbox.h:
inbox/chaos.h:
inbox/http.h:
inbox/store.h:
inbox/http_queue.h:
include/scalr_email.h:
inbox/server.h:
inbox/smtpd.h:
