build-dev/obj/src/mime/encode.o: src/mime/encode.c src/mime/encode.h \
 src/util/buf.h
src/mime/encode.h:
src/util/buf.h:
