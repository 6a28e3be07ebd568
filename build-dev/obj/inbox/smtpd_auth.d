build-dev/obj/inbox/smtpd_auth.o: inbox/smtpd_auth.c inbox/smtpd_int.h \
 inbox/smtpd.h inbox/chaos.h inbox/store.h src/util/buf.h
inbox/smtpd_int.h:
inbox/smtpd.h:
inbox/chaos.h:
inbox/store.h:
src/util/buf.h:
