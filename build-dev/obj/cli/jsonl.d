build-dev/obj/cli/jsonl.o: cli/jsonl.c cli/cli.h include/scalr_email.h
cli/cli.h:
include/scalr_email.h:
