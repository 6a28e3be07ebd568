build-dev/obj/src/queue/store_pg.o: src/queue/store_pg.c \
 /usr/include/postgresql/libpq-fe.h \
 /usr/include/postgresql/postgres_ext.h \
 /usr/include/postgresql/pg_config_ext.h src/error.h \
 include/scalr_email.h src/queue/store_int.h src/queue/store.h
/usr/include/postgresql/libpq-fe.h:
/usr/include/postgresql/postgres_ext.h:
/usr/include/postgresql/pg_config_ext.h:
src/error.h:
include/scalr_email.h:
src/queue/store_int.h:
src/queue/store.h:
