build-dev/obj/src/pool.o: src/pool.c src/pool.h src/net/conn.h \
 include/scalr_email.h src/smtp/engine.h src/smtp/reply.h src/util/buf.h
src/pool.h:
src/net/conn.h:
include/scalr_email.h:
src/smtp/engine.h:
src/smtp/reply.h:
src/util/buf.h:
