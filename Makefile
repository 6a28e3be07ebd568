# scalr-email: one build command, `make`.  `make SAN=1 BUILD=build-san` builds
# with AddressSanitizer and UndefinedBehaviorSanitizer.
CC      ?= cc
BUILD   ?= build
PREFIX  ?= /usr/local
SAN     ?=
VERSION := 0.1.0
SOVER   := 0

OPT      ?= -O2 -g
WARN     := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wformat=2 -Wvla
CFLAGS   += -std=c11 $(OPT) $(WARN) -fPIC -MMD -MP
CPPFLAGS += -Iinclude -Isrc -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L
SSL_CFLAGS := $(shell pkg-config --cflags openssl 2>/dev/null)
SSL_LIBS   := $(shell pkg-config --libs openssl 2>/dev/null || echo -lssl -lcrypto)
CPPFLAGS += $(SSL_CFLAGS)
PQ_CFLAGS  := $(shell pkg-config --cflags libpq 2>/dev/null || echo -I/usr/include/postgresql)
CPPFLAGS += $(PQ_CFLAGS)
# The queue's stores: SQLite and PostgreSQL (libpq).
# Templates read their data as JSON (jansson); OAuth2 token refresh: libcurl (HTTPS) and jansson.
LDLIBS   += $(SSL_LIBS) -lidn2 -lsqlite3 -lpq -lcurl -ljansson -lpthread -lresolv

ifeq ($(SAN),1)
CFLAGS  += -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
LDFLAGS += -fsanitize=address,undefined
endif

# The inbox (`scalr-email inbox`) and its unit tests need SQLite,
# libmicrohttpd, jansson and libcurl (the link check); INBOX=0 builds the library and command without it.
INBOX    ?= 1
INBOX_TESTS := tests/unit/test_smtpd.c tests/unit/test_chaos.c tests/unit/test_store.c \
               tests/unit/test_mimeparse.c tests/unit/test_release.c \
               tests/unit/test_dkimcheck.c
# send-batch reads JSON Lines; the library links jansson for templates.
CLI_LIBS := -ljansson -lmicrohttpd -lresolv
LIB_SRC  := $(sort $(wildcard src/*.c src/*/*.c))
CLI_SRC  := $(sort $(wildcard cli/*.c))
UNIT_SRC := $(sort $(wildcard tests/unit/*.c))
ifeq ($(INBOX),1)
INBOX_SRC := $(sort $(wildcard inbox/*.c))
INBOX_OBJ := $(INBOX_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/web_assets.o
INBOX_LIBS := -lsqlite3 -lmicrohttpd -ljansson -lcurl
CLI_CPPFLAGS := -DSCALR_EMAIL_INBOX=1
else
UNIT_SRC := $(filter-out $(INBOX_TESTS),$(UNIT_SRC))
endif
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_OBJ := $(UNIT_SRC:%.c=$(BUILD)/obj/%.o)

STATIC := $(BUILD)/libscalr-email.a
SHARED := $(BUILD)/libscalr-email.so.$(VERSION)

all: $(STATIC) $(SHARED) $(BUILD)/scalr-email $(BUILD)/scalr-email.pc $(BUILD)/unit-tests

$(BUILD)/obj/%.o: %.c Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(STATIC): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# Only scalr_email_* is exported (src/libscalr-email.map).
$(SHARED): $(LIB_OBJ) src/libscalr-email.map
	$(CC) $(LDFLAGS) -shared -Wl,-soname,libscalr-email.so.$(SOVER) \
	    -Wl,--version-script=src/libscalr-email.map -o $@ $(LIB_OBJ) $(LDLIBS)
	ln -sf libscalr-email.so.$(VERSION) $(BUILD)/libscalr-email.so.$(SOVER)
	ln -sf libscalr-email.so.$(SOVER) $(BUILD)/libscalr-email.so

$(BUILD)/scalr-email: $(CLI_OBJ) $(INBOX_OBJ) $(STATIC)
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(INBOX_OBJ) $(STATIC) $(INBOX_LIBS) $(CLI_LIBS) $(LDLIBS)

$(BUILD)/unit-tests: $(UNIT_OBJ) $(INBOX_OBJ) $(STATIC)
	$(CC) $(LDFLAGS) -o $@ $(UNIT_OBJ) $(INBOX_OBJ) $(STATIC) $(INBOX_LIBS) $(LDLIBS)

# The web UI's files are built into the binary.
$(BUILD)/gen/web_assets.c: inbox/embed.sh $(wildcard inbox/web/*)
	@mkdir -p $(dir $@)
	bash inbox/embed.sh inbox/web $@

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Iinbox $(CFLAGS) -c $< -o $@

$(BUILD)/scalr-email.pc: scalr-email.pc.in Makefile
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' $< > $@

$(UNIT_OBJ): CPPFLAGS += -Itests/unit -Iinbox
$(CLI_OBJ): CPPFLAGS += $(CLI_CPPFLAGS) -Iinbox
$(INBOX_OBJ): CPPFLAGS += -Iinbox

check: all
	bash scripts/test.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig \
	    $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 644 include/scalr_email.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(STATIC) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(SHARED) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libscalr-email.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libscalr-email.so.$(SOVER)
	ln -sf libscalr-email.so.$(SOVER) $(DESTDIR)$(PREFIX)/lib/libscalr-email.so
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' scalr-email.pc.in \
	    > $(DESTDIR)$(PREFIX)/lib/pkgconfig/scalr-email.pc
	install -m 755 $(BUILD)/scalr-email $(DESTDIR)$(PREFIX)/bin/
	install -m 644 docs/scalr-email.1 $(DESTDIR)$(PREFIX)/share/man/man1/

clean:
	rm -rf build build-san

.PHONY: all check install clean
-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(UNIT_OBJ:.o=.d) $(INBOX_OBJ:.o=.d)
