build-dev/obj/src/batch.o: src/batch.c src/client_int.h src/config.h \
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
