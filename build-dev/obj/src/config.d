build-dev/obj/src/config.o: src/config.c src/config.h \
 include/scalr_email.h src/error.h src/util/buf.h
src/config.h:
include/scalr_email.h:
src/error.h:
src/util/buf.h:
