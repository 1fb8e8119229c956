# The two commands a newcomer needs: `make run` and `make test`.
# Everything else (bench, model, fuzz, clean) is here for the team.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
RELEASE_DIR := build/release
TEST_DIR := build/test
ECHOBOT := $(RELEASE_DIR)/src/app/echobot

.PHONY: all run test build build-test bench model clean format

all: build

build:
	@scripts/bootstrap.sh run
	@cmake -S . -B $(RELEASE_DIR) -DCMAKE_BUILD_TYPE=Release -DECHO_TESTS=OFF >/dev/null
	@cmake --build $(RELEASE_DIR) -j $(JOBS)

# Builds, fetches the default model when it is missing and the network allows
# (offline, Echo starts anyway and the chat page says how to install one),
# then serves on http://localhost:5000.
run: build
	@$(ECHOBOT) model pull --if-missing || echo "make run: no model downloaded; Echo starts without one (see README: Models)"
	$(ECHOBOT) serve

model: build
	$(ECHOBOT) model pull

# The test build uses clang for libFuzzer, with ASan and UBSan on everything.
build-test:
	@scripts/bootstrap.sh test
	@cmake -S . -B $(TEST_DIR) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
	    -DECHO_SANITIZE=ON -DECHO_FUZZ=ON >/dev/null
	@cmake --build $(TEST_DIR) -j $(JOBS)

test: build-test
	@cd $(TEST_DIR) && ctest --output-on-failure -j $(JOBS)

bench: build
	@scripts/bootstrap.sh bench
	@bench/run-all.sh

format:
	clang-format -i $$(git ls-files 'src/*.c' 'src/*.h' 'tests/*.c' 'bench/*.c')

clean:
	rm -rf build
