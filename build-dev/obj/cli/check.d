build-dev/obj/cli/check.o: cli/check.c cli/cli.h include/scalr_email.h
cli/cli.h:
include/scalr_email.h:
