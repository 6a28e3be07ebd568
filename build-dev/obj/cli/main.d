build-dev/obj/cli/main.o: cli/main.c cli/cli.h include/scalr_email.h \
 inbox/inbox.h
cli/cli.h:
include/scalr_email.h:
inbox/inbox.h:
