build-dev/obj/src/mime/mimetypes.o: src/mime/mimetypes.c \
 src/mime/mimetypes.h
src/mime/mimetypes.h:
