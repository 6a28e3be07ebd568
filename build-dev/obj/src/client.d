build-dev/obj/src/client.o: src/client.c src/client_int.h src/config.h \
 include/scalr_email.h src/mime/compose.h src/util/buf.h src/pool.h \
 src/net/conn.h src/smtp/engine.h src/smtp/reply.h src/error.h
src/client_int.h:
src/config.h:
include/scalr_email.h:
src/mime/compose.h:
src/util/buf.h:
src/pool.h:
src/net/conn.h:
src/smtp/engine.h:
src/smtp/reply.h:
src/error.h:
