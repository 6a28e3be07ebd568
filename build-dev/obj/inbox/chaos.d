build-dev/obj/inbox/chaos.o: inbox/chaos.c inbox/chaos.h
inbox/chaos.h:
