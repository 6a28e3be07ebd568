build-dev/obj/cli/queue.o: cli/queue.c cli/cli.h include/scalr_email.h
cli/cli.h:
include/scalr_email.h:
