# mq - durable spool message queues for the shell.  Plain GNU make.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d

CC ?= cc
CFLAGS ?= -O2 -g
PKG_CONFIG ?= pkg-config
# Warnings and the language level stay even when CFLAGS is overridden.
MQ_CFLAGS = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wformat=2 \
	-Wno-format-nonliteral $(shell $(PKG_CONFIG) --cflags libsodium zlib 2>/dev/null)
# The programs run once per message: libsodium and zlib are linked into
# them statically, so start-up maps no extra shared object and runs no
# relocations for code a call may never use.  libmq.so links them
# dynamically, as a library should.
MQ_LDFLAGS = -Wl,--as-needed
LDLIBS_DEPS = $(shell $(PKG_CONFIG) --libs libsodium zlib 2>/dev/null)
LDLIBS_PROGS = -Wl,-Bstatic -lsodium -lz -Wl,-Bdynamic

ifeq ($(SANITIZE),1)
BUILD = build/asan
CFLAGS = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=all
LDFLAGS += -fsanitize=address,undefined
else
BUILD ?= build
endif

PROGS = mq-init mq-send mq-recv mq-ack mq-watch mq-keygen mq-stat mq-ls \
	mq-redrive mq-purge mq-fsck
LIBSRC = $(wildcard lib/*.c)
LIBOBJ = $(LIBSRC:lib/%.c=$(BUILD)/lib/%.o)
CLIOBJ = $(BUILD)/cmd/cli.o
BINS = $(PROGS:%=$(BUILD)/bin/%)
PICOBJ = $(LIBSRC:lib/%.c=$(BUILD)/pic/%.o)
SOVERSION = 0
SONAME = libmq.so.$(SOVERSION)
SHLIB = libmq.so.$(SOVERSION).1.0
SYSTEMDDIR ?= $(PREFIX)/lib/systemd/system
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
MAN1 = $(PROGS:%=man/%.1)
MAN57 = man/mq-queue.5 man/mq.7

all: $(BINS) $(BUILD)/$(SHLIB) $(BUILD)/mq.pc

$(BUILD)/lib/%.o: lib/%.c lib/mq.h lib/mq_impl.h lib/codec.h
	@mkdir -p $(@D)
	$(CC) $(MQ_CFLAGS) $(CFLAGS) $(CPPFLAGS) -c -o $@ $<

$(BUILD)/cmd/%.o: cmd/%.c lib/mq.h cmd/cli.h
	@mkdir -p $(@D)
	$(CC) $(MQ_CFLAGS) $(CFLAGS) $(CPPFLAGS) -c -o $@ $<

$(BUILD)/pic/%.o: lib/%.c lib/mq.h lib/mq_impl.h lib/codec.h
	@mkdir -p $(@D)
	$(CC) $(MQ_CFLAGS) $(CFLAGS) $(CPPFLAGS) -fPIC -c -o $@ $<

$(BUILD)/$(SHLIB): $(PICOBJ)
	$(CC) -shared -Wl,-soname,$(SONAME) $(MQ_LDFLAGS) $(LDFLAGS) -o $@ \
		$(PICOBJ) $(LDLIBS_DEPS)

$(BUILD)/mq.pc: Makefile
	@mkdir -p $(@D)
	printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$(LIBDIR)' \
		'includedir=$(INCLUDEDIR)' '' 'Name: mq' \
		'Description: durable spool message queues on plain files' \
		'Version: $(shell sed -n 's/^#define MQ_VERSION "\(.*\)"/\1/p' lib/mq.h)' \
		'Requires.private: libsodium zlib' 'Libs: -L$${libdir} -lmq' \
		'Cflags: -I$${includedir}' > $@

$(BUILD)/libmq.a: $(LIBOBJ)
	rm -f $@
	$(AR) rcs $@ $(LIBOBJ)

$(BUILD)/bin/%: $(BUILD)/cmd/%.o $(CLIOBJ) $(BUILD)/libmq.a
	@mkdir -p $(@D)
	$(CC) $(MQ_LDFLAGS) $(LDFLAGS) -o $@ $< $(CLIOBJ) $(BUILD)/libmq.a \
		$(LDLIBS_PROGS) $(LDLIBS)

check: deps
	$(MAKE) all
	$(MAKE) SANITIZE=1 all
	sh tests/run.sh

deps:
	sh tests/deps.sh

asan:
	$(MAKE) SANITIZE=1 all
	MQ_BIN=build/asan/bin sh tests/run.sh

lint:
	mandoc -Tlint -Wwarning $(MAN1) $(MAN57)

# Benchmarks side by side with python-dirq and Redis; never part of check.
bench: all
	sh bench/run.sh

# Tests against heavy peers (RabbitMQ), and the Redis round trip at its
# full 10,000 messages (make check sends 2,000); not part of check.
test-long: all
	BRIDGE_N=10000 TESTS="tests/scenario-bridge-redis.bats \
		$(wildcard tests/long/*.bats)" MQ_BIN=build/bin sh tests/run.sh

# Long reliability runs (bounded by STRESS_TIME seconds).
STRESS_TIME ?= 300
stress: all
	STRESS_TIME=$(STRESS_TIME) sh tests/stress.sh

# Fuzz the parsers for FUZZ_TIME seconds (libFuzzer, ASan, UBSan).
FUZZ_TIME ?= 60
fuzz: deps
	@mkdir -p build/fuzz build/fuzz-corpus
	clang -g -O1 $(MQ_CFLAGS) -fsanitize=fuzzer,address,undefined \
		-o build/fuzz/fuzz_parse fuzz/fuzz_parse.c $(LIBSRC) $(LDLIBS_DEPS)
	build/fuzz/fuzz_parse -max_total_time=$(FUZZ_TIME) -max_len=70000 \
		-print_final_stats=1 build/fuzz-corpus fuzz/corpus

demo: deps
	$(MAKE) all
	sh contrib/demo.sh

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man7 \
		$(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) \
		$(DESTDIR)$(FISHCOMPDIR) $(DESTDIR)$(LIBDIR) \
		$(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR) \
		$(DESTDIR)$(SYSTEMDDIR)
	install -m 755 $(BINS) $(DESTDIR)$(BINDIR)
	install -m 644 $(MAN1) $(DESTDIR)$(MANDIR)/man1
	install -m 644 man/mq-queue.5 $(DESTDIR)$(MANDIR)/man5
	install -m 644 man/mq.7 $(DESTDIR)$(MANDIR)/man7
	install -m 644 completions/mq.bash $(DESTDIR)$(BASHCOMPDIR)/mq
	for p in $(PROGS); do ln -sf mq $(DESTDIR)$(BASHCOMPDIR)/$$p; done
	install -m 644 completions/_mq $(DESTDIR)$(ZSHCOMPDIR)/_mq
	install -m 644 completions/mq.fish $(DESTDIR)$(FISHCOMPDIR)/mq.fish
	install -m 644 $(BUILD)/libmq.a $(DESTDIR)$(LIBDIR)/libmq.a
	install -m 755 $(BUILD)/$(SHLIB) $(DESTDIR)$(LIBDIR)/$(SHLIB)
	ln -sf $(SHLIB) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libmq.so
	install -m 644 lib/mq.h $(DESTDIR)$(INCLUDEDIR)/mq.h
	rm -f $(BUILD)/mq.pc
	$(MAKE) BUILD=$(BUILD) PREFIX=$(PREFIX) LIBDIR=$(LIBDIR) \
		INCLUDEDIR=$(INCLUDEDIR) $(BUILD)/mq.pc
	install -m 644 $(BUILD)/mq.pc $(DESTDIR)$(PKGCONFIGDIR)/mq.pc
	install -m 644 contrib/systemd/mq-watch@.service $(DESTDIR)$(SYSTEMDDIR)

uninstall:
	for p in $(PROGS); do rm -f $(DESTDIR)$(BINDIR)/$$p \
		$(DESTDIR)$(MANDIR)/man1/$$p.1 $(DESTDIR)$(BASHCOMPDIR)/$$p; done
	rm -f $(DESTDIR)$(MANDIR)/man5/mq-queue.5 $(DESTDIR)$(MANDIR)/man7/mq.7 \
		$(DESTDIR)$(BASHCOMPDIR)/mq $(DESTDIR)$(ZSHCOMPDIR)/_mq \
		$(DESTDIR)$(FISHCOMPDIR)/mq.fish $(DESTDIR)$(LIBDIR)/libmq.a \
		$(DESTDIR)$(LIBDIR)/$(SHLIB) $(DESTDIR)$(LIBDIR)/$(SONAME) \
		$(DESTDIR)$(LIBDIR)/libmq.so $(DESTDIR)$(INCLUDEDIR)/mq.h \
		$(DESTDIR)$(PKGCONFIGDIR)/mq.pc \
		$(DESTDIR)$(SYSTEMDDIR)/mq-watch@.service

clean:
	rm -rf build

.PHONY: all check deps asan lint fuzz bench stress test-long demo install uninstall clean

# Keep object files: they are not throwaway intermediates.
.SECONDARY:
