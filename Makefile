# Rubberduck build. Targets:
#   make            release binary build/rubberduck (-O2)
#   make run        install missing packages, build, start with the demo proxy
#   make test       install test packages, build with ASan+UBSan, run every test
#   make fuzz       libFuzzer targets (clang) under build/fuzz/
#   make bench      benchmark table (wrk, nginx reference); not part of make test
#   make logwriter-bench   build/release/bench/logwriter: the request log writer alone
#   make lint       banned-function grep and format checks

BUILD    ?= release
OUT      := build/$(BUILD)
PKGS     := libuv libcurl json-c sqlite3 openssl libnghttp2 zlib geoip
LLHTTP   := /usr/share/llhttp
VERSION  := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
# make V=1 shows full command lines
Q        := $(if $(V),,@)

# -Wconversion also turns on -Wsign-conversion for C, in gcc and clang alike.
WARN     := -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes -Wconversion -Werror
CPPFLAGS := -D_GNU_SOURCE -DRD_VERSION='"$(VERSION)"' -Isrc -I$(OUT)/gen -I/usr/share/include/llhttp \
            $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm

ifeq ($(BUILD),release)
  CC     ?= cc
  OPT    := -O2 -g
  SAN    :=
else ifeq ($(BUILD),asan)
  OPT    := -O1 -g -fno-omit-frame-pointer
  SAN    := -fsanitize=address,undefined -fno-sanitize-recover=all
else ifeq ($(BUILD),tsan)
  OPT    := -O1 -g -fno-omit-frame-pointer
  SAN    := -fsanitize=thread
else ifeq ($(BUILD),fuzz)
  CC     := clang
  OPT    := -O1 -g -fno-omit-frame-pointer
  SAN    := -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
endif
CFLAGS   := -std=c17 -pthread $(OPT) $(SAN)

LIB_SRCS := $(filter-out src/main.c,$(shell find src -name '*.c' | sort))
MIGRATIONS := $(sort $(wildcard src/store/migrations/*.sql))
LIB_OBJS := $(LIB_SRCS:%.c=$(OUT)/obj/%.o) $(OUT)/obj/gen/migrations.o $(OUT)/obj/gen/prices.o
LLHTTP_OBJS := $(OUT)/obj/llhttp/llhttp.o $(OUT)/obj/llhttp/api.o $(OUT)/obj/llhttp/http.o
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(OUT)/tests/%)
FUZZ_SRCS := $(sort $(wildcard fuzz/fuzz_*.c))
# Unit tests of code shared between threads, also built and run under TSan.
TSAN_UNITS := test_mailbox test_snapshot test_server test_manager test_ratelimit test_retry_audit test_scenario test_ipfilter test_cache test_cache_persist test_logwriter test_trace test_prom

.PHONY: all run test unit e2e fuzz fuzz-replay bench logwriter-bench lint clean deps test-deps
.DEFAULT_GOAL := all

all: $(OUT)/rubberduck
ifeq ($(BUILD),release)
	@ln -sf release/rubberduck build/rubberduck
endif

# Everything but main.c goes into one archive; test and fuzz binaries link
# against it, so each pulls in only the modules it uses.
$(OUT)/librd.a: $(LIB_OBJS) $(LLHTTP_OBJS)
	@rm -f $@
	$(Q)ar rcs $@ $^

$(OUT)/rubberduck: $(OUT)/obj/src/main.o $(OUT)/librd.a
	@$(if $(Q),echo '  LINK    $@')
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(OUT)/obj/src/%.o: src/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo '  CC      $<')
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -MMD -MP -c -o $@ $<

$(OUT)/obj/llhttp/%.o: $(LLHTTP)/%.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -w -c -o $@ $<

# Migrations are embedded as C strings, in file-name order.
$(OUT)/gen/migrations.c: $(MIGRATIONS) scripts/embed-sql.sh
	@mkdir -p $(dir $@)
	$(Q)scripts/embed-sql.sh $(MIGRATIONS) > $@

$(OUT)/obj/gen/migrations.o: $(OUT)/gen/migrations.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -c -o $@ $<

# The price table is embedded the same way; the script rejects a bad row.
$(OUT)/gen/prices.c: src/providers/prices.tsv scripts/embed-prices.sh
	@mkdir -p $(dir $@)
	$(Q)scripts/embed-prices.sh src/providers/prices.tsv > $@.tmp && mv $@.tmp $@

$(OUT)/obj/gen/prices.o: $(OUT)/gen/prices.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -c -o $@ $<

$(OUT)/tests/%: tests/unit/%.c $(OUT)/librd.a
	@mkdir -p $(dir $@)
	@$(if $(Q),echo '  TEST    $@')
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -Wno-missing-prototypes -o $@ $^ $(LDLIBS) -lcmocka

$(OUT)/fuzz-replay/%: fuzz/%.c fuzz/replay_main.c $(OUT)/librd.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -Wno-missing-prototypes -o $@ $^ $(LDLIBS)

$(OUT)/fuzzers/%: fuzz/%.c $(OUT)/librd.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -fsanitize=fuzzer $(WARN) -Wno-missing-prototypes -o $@ $^ $(LDLIBS)

$(OUT)/bench/logwriter: bench/logwriter.c $(OUT)/librd.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -Wno-missing-prototypes -o $@ $^ $(LDLIBS)

logwriter-bench: $(OUT)/bench/logwriter

unit-bins: $(UNIT_BINS)
fuzz-replay-bins: $(FUZZ_SRCS:fuzz/%.c=$(OUT)/fuzz-replay/%)
fuzzer-bins: $(FUZZ_SRCS:fuzz/%.c=$(OUT)/fuzzers/%)

deps:
	@scripts/install-deps.sh build

test-deps:
	@scripts/install-deps.sh test

run: deps
	@$(MAKE) --no-print-directory all
	./build/rubberduck serve --demo

test: test-deps lint
	@$(MAKE) --no-print-directory BUILD=asan all unit-bins fuzz-replay-bins
	@$(MAKE) --no-print-directory BUILD=tsan all $(TSAN_UNITS:%=build/tsan/tests/%)
	scripts/run-tests.sh build/asan build/tsan

fuzz: test-deps
	@$(MAKE) --no-print-directory BUILD=fuzz fuzzer-bins
	@echo "fuzzers in build/fuzz/fuzzers; e.g. build/fuzz/fuzzers/fuzz_request fuzz/corpus/request -max_total_time=60"

bench:
	@scripts/install-deps.sh bench
	@$(MAKE) --no-print-directory all
	bench/run.sh

lint:
	@scripts/lint.sh

clean:
	rm -rf build

-include $(shell find build/$(BUILD)/obj -name '*.d' 2>/dev/null)
