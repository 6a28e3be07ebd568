build-dev/obj/inbox/mimeparse.o: inbox/mimeparse.c inbox/mimeparse.h \
 src/util/buf.h
inbox/mimeparse.h:
src/util/buf.h:
