build-dev/obj/cli/send.o: cli/send.c cli/cli.h include/scalr_email.h
cli/cli.h:
include/scalr_email.h:
