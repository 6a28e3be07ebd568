build-dev/obj/src/smtp/auth.o: src/smtp/auth.c src/smtp/engine_int.h \
 src/smtp/engine.h include/scalr_email.h src/smtp/reply.h src/util/buf.h
src/smtp/engine_int.h:
src/smtp/engine.h:
include/scalr_email.h:
src/smtp/reply.h:
src/util/buf.h:
