build-dev/obj/cli/batch.o: cli/batch.c cli/cli.h include/scalr_email.h
cli/cli.h:
include/scalr_email.h:
