build-dev/obj/src/mime/stream.o: src/mime/stream.c src/error.h \
 include/scalr_email.h src/mime/compose.h src/util/buf.h \
 src/mime/encode.h
src/error.h:
include/scalr_email.h:
src/mime/compose.h:
src/util/buf.h:
src/mime/encode.h:
