build-dev/obj/src/smtp/reply.o: src/smtp/reply.c src/smtp/reply.h \
 src/util/buf.h
src/smtp/reply.h:
src/util/buf.h:
