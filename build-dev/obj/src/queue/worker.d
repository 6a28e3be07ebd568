build-dev/obj/src/queue/worker.o: src/queue/worker.c src/client_int.h \
 src/config.h include/scalr_email.h src/mime/compose.h src/util/buf.h \
 src/pool.h src/net/conn.h src/smtp/engine.h src/smtp/reply.h src/error.h \
 src/queue/queue_int.h src/queue/store.h src/queue/store_int.h
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
src/queue/queue_int.h:
src/queue/store.h:
src/queue/store_int.h:
