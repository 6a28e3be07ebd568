build-dev/obj/gen/web_assets.o: build-dev/gen/web_assets.c inbox/assets.h
inbox/assets.h:
