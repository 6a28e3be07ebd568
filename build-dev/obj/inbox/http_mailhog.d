build-dev/obj/inbox/http_mailhog.o: inbox/http_mailhog.c inbox/http_int.h \
 inbox/http.h inbox/chaos.h inbox/store.h src/util/buf.h
inbox/http_int.h:
inbox/http.h:
inbox/chaos.h:
inbox/store.h:
src/util/buf.h:
