build-dev/obj/tests/unit/test_smtpd.o: tests/unit/test_smtpd.c \
 tests/unit/../../inbox/smtpd.h tests/unit/../../inbox/chaos.h \
 tests/unit/../../inbox/store.h tests/unit/harness.h src/util/buf.h
tests/unit/../../inbox/smtpd.h:
tests/unit/../../inbox/chaos.h:
tests/unit/../../inbox/store.h:
tests/unit/harness.h:
src/util/buf.h:
