build-dev/obj/src/error.o: src/error.c src/error.h include/scalr_email.h
src/error.h:
include/scalr_email.h:
