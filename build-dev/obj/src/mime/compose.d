build-dev/obj/src/mime/compose.o: src/mime/compose.c src/mime/compose.h \
 include/scalr_email.h src/util/buf.h src/error.h src/mime/address.h \
 src/mime/encode.h src/mime/mimetypes.h
src/mime/compose.h:
include/scalr_email.h:
src/util/buf.h:
src/error.h:
src/mime/address.h:
src/mime/encode.h:
src/mime/mimetypes.h:
