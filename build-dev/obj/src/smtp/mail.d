build-dev/obj/src/smtp/mail.o: src/smtp/mail.c src/error.h \
 include/scalr_email.h src/smtp/engine_int.h src/smtp/engine.h \
 src/smtp/reply.h src/util/buf.h
src/error.h:
include/scalr_email.h:
src/smtp/engine_int.h:
src/smtp/engine.h:
src/smtp/reply.h:
src/util/buf.h:
