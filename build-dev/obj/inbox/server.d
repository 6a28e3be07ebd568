build-dev/obj/inbox/server.o: inbox/server.c inbox/server_int.h \
 inbox/server.h inbox/smtpd.h inbox/chaos.h inbox/store.h
inbox/server_int.h:
inbox/server.h:
inbox/smtpd.h:
inbox/chaos.h:
inbox/store.h:
