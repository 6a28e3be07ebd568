build-dev/obj/inbox/http_ui.o: inbox/http_ui.c inbox/http_int.h \
 inbox/http.h inbox/chaos.h inbox/store.h src/util/buf.h \
 inbox/mimeparse.h
inbox/http_int.h:
inbox/http.h:
inbox/chaos.h:
inbox/store.h:
src/util/buf.h:
inbox/mimeparse.h:
