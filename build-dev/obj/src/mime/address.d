build-dev/obj/src/mime/address.o: src/mime/address.c src/mime/address.h \
 src/mime/encode.h src/util/buf.h
src/mime/address.h:
src/mime/encode.h:
src/util/buf.h:
