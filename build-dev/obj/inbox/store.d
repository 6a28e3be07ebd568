build-dev/obj/inbox/store.o: inbox/store.c inbox/store.h \
 inbox/mimeparse.h src/util/buf.h
inbox/store.h:
inbox/mimeparse.h:
src/util/buf.h:
