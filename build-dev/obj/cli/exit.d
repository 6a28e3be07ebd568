build-dev/obj/cli/exit.o: cli/exit.c cli/cli.h include/scalr_email.h
cli/cli.h:
include/scalr_email.h:
