# SkillOrchestra in C — build, test, run.
#   make deps   install missing Debian packages (apt-get, as root)
#   make        build the library, tools, services and tests
#   make test   build and run every test
#   make run    the main job (see README)
#   make bench  benchmarks (results go to docs/BENCHMARKS.md by hand)

CC      ?= cc
BUILD   ?= build
PKGS    := libzmq libczmq jansson libprotobuf-c hiredis libcurl libmicrohttpd
CFLAGS  ?= -O2 -g
# Flags the build needs whatever CFLAGS the caller passes (make CFLAGS=...).
SO_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Wall -Wextra -Werror \
           -Icommon -I$(BUILD)/proto $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm -lpthread

PROTOS      := $(wildcard proto/*.proto)
PROTO_C     := $(patsubst proto/%.proto,$(BUILD)/proto/%.pb-c.c,$(PROTOS))
PROTO_H     := $(PROTO_C:.c=.h)
COMMON_SRC  := $(wildcard common/*.c)
LIB_OBJ     := $(patsubst common/%.c,$(BUILD)/obj/common/%.o,$(COMMON_SRC)) \
               $(patsubst $(BUILD)/proto/%.c,$(BUILD)/obj/proto/%.o,$(PROTO_C))
LIB         := $(BUILD)/libso.a
TOOLS       := $(patsubst tools/%.c,$(BUILD)/bin/%,$(wildcard tools/*.c))
SERVICES    := $(patsubst services/%/main.c,$(BUILD)/bin/so-%,$(wildcard services/*/main.c))
UNIT_TESTS  := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))

.PHONY: all deps test unit integration run bench clean up down
.SECONDARY: $(PROTO_C) $(PROTO_H)

all: $(LIB) $(TOOLS) $(SERVICES) $(UNIT_TESTS)

deps:
	@sh tools/deps.sh

$(BUILD)/proto/%.pb-c.c $(BUILD)/proto/%.pb-c.h: proto/%.proto
	@mkdir -p $(BUILD)/proto
	protoc-c --proto_path=proto --c_out=$(BUILD)/proto $<

$(BUILD)/obj/proto/%.o: $(BUILD)/proto/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(SO_CFLAGS) -Wno-unused-parameter -c $< -o $@

$(BUILD)/obj/common/%.o: common/%.c $(wildcard common/*.h) $(PROTO_H)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(SO_CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(@D)
	$(AR) rcs $@ $^

$(TOOLS): $(BUILD)/bin/%: tools/%.c $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(SO_CFLAGS) $< $(LIB) $(LDLIBS) -o $@

.SECONDEXPANSION:
$(SERVICES): $(BUILD)/bin/so-%: $$(wildcard services/$$*/*.c) $$(wildcard services/$$*/*.h) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(SO_CFLAGS) -Iservices/$* $(wildcard services/$*/*.c) $(LIB) $(LDLIBS) -o $@

# Tests of a service's own modules name them here.
TEST_SRC_test_so_broker := services/gateway/so_broker.c
TEST_SRC_test_so_oai := services/http/so_oai.c
TEST_SRC_test_so_counters := services/http/so_counters.c services/http/so_oai.c

$(BUILD)/tests/%: tests/unit/%.c $$(TEST_SRC_$$*) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(SO_CFLAGS) -Wno-unused-parameter $(addprefix -I,$(sort $(dir $(TEST_SRC_$*)))) \
		$< $(TEST_SRC_$*) $(LIB) $(LDLIBS) -lcmocka -o $@

test: deps
	@$(MAKE) --no-print-directory all
	@sh tests/run_unit.sh $(UNIT_TESTS)
	@sh tests/run_integration.sh

unit: all
	@sh tests/run_unit.sh $(UNIT_TESTS)

integration: all
	@sh tests/run_integration.sh $(T)

up: deps
	@$(MAKE) --no-print-directory all
	@sh tools/stack.sh up

down:
	@sh tools/stack.sh down

run: deps
	@$(MAKE) --no-print-directory all
	@sh tools/run.sh

bench: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) sh tools/bench.sh

clean:
	rm -rf $(BUILD)
