# SkillOrchestra in C — build, test, run.
#   make deps   install missing Debian packages (apt-get, as root)
#   make        build the library, tools, services and tests
#   make test   install what is missing, build, run every test
#   make unit / make integration [T=tests/integration/test_x.sh]
#   make asan   the same tests on an ASan+UBSan build (in build-asan/)
#   make lint   cppcheck, clang-tidy and the layering rule (tools/lint.sh)
#   make format / make format-check   clang-format (.clang-format) / check only
#   make run    the main job (see README)
#   make bench  benchmarks (results go to docs/BENCHMARKS.md by hand)
#
# Layout (docs/ARCHITECTURE.md): common/<room>/ is the library libso.a,
# services/<name>/ one binary each (so-<name>), tools/*.c one binary each,
# tests/unit/test_*.c one cmocka binary each.  Sources include headers by room
# ("base/so_text.h"); -MMD -MP dependency files make a touched header rebuild
# exactly what includes it.

CC      ?= cc
BUILD   ?= build
PKGS    := libzmq libczmq jansson libprotobuf-c hiredis libcurl libmicrohttpd
CFLAGS  ?= -O2 -g
WERROR  ?= -Werror
# Flags the build needs whatever CFLAGS the caller passes (make CFLAGS=...).
SO_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Wall -Wextra $(WERROR) \
           -Icommon -I$(BUILD)/proto $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
DEPFLAGS = -MMD -MP
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm -lpthread

ROOMS       := base wire method store llm offline
PROTOS      := $(wildcard proto/*.proto)
PROTO_C     := $(patsubst proto/%.proto,$(BUILD)/proto/%.pb-c.c,$(PROTOS))
PROTO_H     := $(PROTO_C:.c=.h)
COMMON_SRC  := $(foreach r,$(ROOMS),$(wildcard common/$(r)/*.c))
LIB_OBJ     := $(patsubst %.c,$(BUILD)/obj/%.o,$(COMMON_SRC)) \
               $(patsubst $(BUILD)/proto/%.c,$(BUILD)/obj/proto/%.o,$(PROTO_C))
LIB         := $(BUILD)/libso.a
SVC_NAMES   := $(patsubst services/%/main.c,%,$(wildcard services/*/main.c))
TOOLS       := $(patsubst tools/%.c,$(BUILD)/bin/%,$(wildcard tools/*.c))
SERVICES    := $(patsubst %,$(BUILD)/bin/so-%,$(SVC_NAMES))
UNIT_TESTS  := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))

.PHONY: all deps test unit integration asan lint format format-check run bench clean up down
.SECONDARY: $(PROTO_C) $(PROTO_H)
.DELETE_ON_ERROR:

all: $(LIB) $(TOOLS) $(SERVICES) $(UNIT_TESTS)

deps:
	@sh tools/deps.sh

# --- objects -----------------------------------------------------------------

# The compile flags are part of every object: when they change (e.g. make
# CFLAGS=...), $(BUILD)/cflags changes and everything recompiles.
CFLAGS_NOW := $(CC) $(CFLAGS) $(SO_CFLAGS)
ifneq ($(CFLAGS_NOW),$(file <$(BUILD)/cflags))
$(shell mkdir -p $(BUILD))
$(file >$(BUILD)/cflags,$(CFLAGS_NOW))
endif


$(BUILD)/proto/%.pb-c.c $(BUILD)/proto/%.pb-c.h: proto/%.proto
	@mkdir -p $(BUILD)/proto
	protoc-c --proto_path=proto --c_out=$(BUILD)/proto $<

$(BUILD)/obj/proto/%.o: $(BUILD)/proto/%.c $(BUILD)/cflags
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(SO_CFLAGS) -Wno-unused-parameter -c $< -o $@

# Every object waits for the generated protobuf header (order-only: the
# dependency files then say which objects really include it).
$(BUILD)/obj/common/%.o: common/%.c $(BUILD)/cflags | $(PROTO_H)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(SO_CFLAGS) $(DEPFLAGS) -c $< -o $@

$(BUILD)/obj/services/%.o: services/%.c $(BUILD)/cflags | $(PROTO_H)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(SO_CFLAGS) $(DEPFLAGS) -Iservices/$(firstword $(subst /, ,$*)) -c $< -o $@

$(BUILD)/obj/tools/%.o: tools/%.c $(BUILD)/cflags | $(PROTO_H)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(SO_CFLAGS) $(DEPFLAGS) -c $< -o $@

$(BUILD)/obj/tests/%.o: tests/unit/%.c $(BUILD)/cflags | $(PROTO_H)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(SO_CFLAGS) $(DEPFLAGS) -Wno-unused-parameter $(TEST_INC_$*) -c $< -o $@

# --- binaries ----------------------------------------------------------------

$(LIB): $(LIB_OBJ)
	@mkdir -p $(@D)
	rm -f $@
	$(AR) rcs $@ $^

$(TOOLS): $(BUILD)/bin/%: $(BUILD)/obj/tools/%.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

# A service's objects: every .c in its folder.
svc_obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard services/$(1)/*.c))

.SECONDEXPANSION:
$(SERVICES): $(BUILD)/bin/so-%: $$(call svc_obj,$$*) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

# Tests of a service's own modules name them here (their objects are the
# service's, so the test links exactly what the binary runs).
TEST_SRC_test_so_broker   := services/gateway/so_broker.c
TEST_SRC_test_so_inflight := services/gateway/so_inflight.c services/gateway/so_episodes.c \
                             services/gateway/so_broker.c
TEST_SRC_test_so_oai      := services/http/so_oai.c services/http/so_oai_parse.c \
                             services/http/so_oai_reply.c
TEST_SRC_test_so_counters := services/http/so_counters.c services/http/so_oai.c
TEST_SRC_test_so_decide   := services/router/so_decide.c services/router/so_profile.c
# ...and see their headers.
$(foreach t,$(patsubst $(BUILD)/tests/%,%,$(UNIT_TESTS)),\
  $(eval TEST_INC_$(t) := $(addprefix -I,$(sort $(dir $(TEST_SRC_$(t))))))\
  $(eval TEST_OBJ_$(t) := $(patsubst %.c,$(BUILD)/obj/%.o,$(TEST_SRC_$(t)))))

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $$(TEST_OBJ_$$*) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $^ $(LDLIBS) -lcmocka -o $@

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# --- tests and checks --------------------------------------------------------

# The README's test command: installs what is missing (tools/deps.sh does
# nothing when every package is there), then builds and runs every test.
test:
	@sh tools/deps.sh
	@$(MAKE) --no-print-directory all
	@sh tests/run_unit.sh $(UNIT_TESTS)
	@sh tests/run_integration.sh

unit: all
	@sh tests/run_unit.sh $(UNIT_TESTS)

integration: all
	@sh tests/run_integration.sh $(T)

# AddressSanitizer + UndefinedBehaviorSanitizer: the same tests on a build of
# their own (build-asan/; the integration tests run its binaries through
# SO_BIN).  WERROR= turns -Werror off (e.g. for a newer compiler's warnings).
# Every report fails: UBSan and ASan halt on the first one.  The unit tests
# check leaks and print reports on stderr; the services of the integration
# tests are stopped by signals (no leak check) and write reports into
# build-asan/san/, which must stay empty.
ASAN_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
ASAN_OPT  := abort_on_error=1:halt_on_error=1
UBSAN_OPT := print_stacktrace=1:halt_on_error=1
SAN_LOG   := $(CURDIR)/build-asan/san
asan:
	@$(MAKE) --no-print-directory BUILD=build-asan CFLAGS="$(ASAN_FLAGS)" all
	@ASAN_OPTIONS=$(ASAN_OPT):detect_leaks=1 UBSAN_OPTIONS=$(UBSAN_OPT) \
		sh tests/run_unit.sh $(patsubst $(BUILD)/%,build-asan/%,$(UNIT_TESTS))
	@rm -rf $(SAN_LOG) && mkdir -p $(SAN_LOG)
	@ASAN_OPTIONS=$(ASAN_OPT):detect_leaks=0:log_path=$(SAN_LOG)/asan \
		UBSAN_OPTIONS=$(UBSAN_OPT):log_path=$(SAN_LOG)/ubsan SO_BIN=build-asan/bin \
		sh tests/run_integration.sh $(T); rc=$$?; \
	if [ -n "$$(ls $(SAN_LOG))" ]; then \
		for f in $(SAN_LOG)/*; do echo "==== $$f"; cat "$$f"; done; \
		echo "asan: sanitizer reports in $(SAN_LOG)"; rc=1; fi; \
	exit $$rc

# Static checks: see tools/lint.sh (configs: .clang-tidy, tools/lint/).  Needs
# only the generated protobuf headers, not a build.
lint: $(PROTO_H)
	@sh tools/deps.sh
	@BUILD=$(BUILD) sh tools/lint.sh

# clang-format (.clang-format, Debian clang-format-14): `make format` rewrites
# the sources in place, `make format-check` fails when it would change one.
CLANG_FORMAT ?= $(shell command -v clang-format-14 || echo clang-format)
FORMAT_SRC = $(shell find common services tools tests/unit -name '*.[ch]' | sort)
format:
	@$(CLANG_FORMAT) -i $(FORMAT_SRC)

format-check:
	@$(CLANG_FORMAT) --dry-run --Werror $(FORMAT_SRC) && echo "format-check: ok"

# --- running -----------------------------------------------------------------

up:
	@sh tools/deps.sh
	@$(MAKE) --no-print-directory all
	@sh tools/stack.sh up

down:
	@sh tools/stack.sh down

run:
	@sh tools/deps.sh
	@$(MAKE) --no-print-directory all
	@sh tools/run.sh

bench:
	@sh tools/deps.sh
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) sh tools/bench.sh

clean:
	rm -rf $(BUILD) build-asan
