build-dev/obj/src/net/conn.o: src/net/conn.c src/net/conn.h \
 include/scalr_email.h src/error.h
src/net/conn.h:
include/scalr_email.h:
src/error.h:
