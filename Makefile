# passt and pasta in TypeScript on Deno: build, test, install, package.
#
#   make              ./passt and ./pasta: compiled when a denort runtime is at hand (below),
#                     else launchers running build/passt.js, the program bundled into one module
#   make check        lint, then every test (unit and integration): ends with "N skipped"
#                     and "N passed, N failed" (tests/run.sh)
#   make lint         deno fmt --check, deno lint, deno check
#   make bench        benchmarks (never part of check)
#   make soak         pasta's memory over 10 minutes of mixed load and floods (SOAK_SECONDS)
#   make fuzz         the tap fuzzer at length, in the test sandbox: FUZZ_RUNS=200000,
#                     FUZZ_SEED= (printed; with FUZZ_PATH= replays a failure)
#   make install      PREFIX=/usr/local DESTDIR= : binaries, man pages, docs
#   make pkgs         .deb and .rpm of what `make` built
#
# Deno comes from PATH, else the pinned npm package is installed into .deno/.
# `deno compile` needs its "denort" runtime: make compiles with DENORT_BIN, or with
# the denort in Deno's cache, or (DENO_COMPILE=1) lets deno compile download it.
# Without one, or if compiling fails, it says why and ./passt is a small launcher
# that runs the same code with `deno run` (same behaviour, needs Deno).

VERSION := $(shell sed -n 's/^export const VERSION = "\(.*\)";/\1/p' src/version.ts)
DENO_VERSION := 2.9.6
LOCAL_DENO := .deno/bin/deno
DENO ?= $(shell command -v deno 2>/dev/null || echo $(LOCAL_DENO))
DENORT_BIN ?=
# 1: let `deno compile` download its denort runtime when neither DENORT_BIN nor Deno's
# cache has it (the build then needs the network).
DENO_COMPILE ?=

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/passt
# Launcher builds only: the program's sources and the Deno runtime that runs them.
PKGLIBDIR ?= $(PREFIX)/lib/passt
DESTDIR ?=

# make pkgs: package name (never plain "passt", which is Debian's C passt), maintainer,
# and the staging directory under build/ (packages are written to build/).
PKG_NAME := passt-deno
PKG_MAINTAINER ?= passt-deno maintainers <maintainers@users.noreply.h-seed-037c98a3.example>
PKG_STAGE := build/pkg
PKG_ENV = PKG_NAME='$(PKG_NAME)' PKG_VERSION='$(VERSION)' PKG_MAINTAINER='$(PKG_MAINTAINER)' \
	PKG_DENO='$(abspath $(DENO))'

SOURCES := mod.ts deno.json $(shell find src -name '*.ts' 2>/dev/null)
DENO_RUN_FLAGS := --allow-all --no-prompt --quiet
# V8 for a program whose heap barely changes after start: a young generation of
# 1 MiB semi-spaces instead of up to 16 MiB.
DENO_V8_RUN_FLAGS := --v8-flags=--max-semi-space-size=1
BUNDLE := build/passt.js
export DENO_NO_UPDATE_CHECK := 1

.PHONY: all deno check test lint fmt bench soak fuzz install uninstall uninstall-lib pkgs clean man

all: passt pasta man

deno: $(DENO)

$(LOCAL_DENO):
	npm install --prefix .deno --no-audit --no-fund --loglevel=error deno@$(DENO_VERSION)
	mkdir -p .deno/bin
	ln -sf ../node_modules/.bin/deno $(LOCAL_DENO)
	$(LOCAL_DENO) --version

# One program; pasta is a link to it and chooses its mode by that name.
passt: $(SOURCES) | $(DENO)
	@rm -f $@
	@cached=$$($(DENO) info --json 2>/dev/null | sed -n 's/.*"denoDir": *"\([^"]*\)".*/\1/p')/dl/release/v$(DENO_VERSION); \
	if [ -n "$(DENORT_BIN)" ] || [ "$(DENO_COMPILE)" = 1 ] || ls "$$cached"/denort-* >/dev/null 2>&1; then \
		echo "compiling $@ ($${DENORT_BIN:+DENORT_BIN=$(DENORT_BIN)}$${DENORT_BIN:-denort from Deno's cache or the network})"; \
		if DENORT_BIN="$(DENORT_BIN)" $(DENO) compile --quiet --no-check $(DENO_RUN_FLAGS) $(DENO_V8_RUN_FLAGS) --output $@ mod.ts; then \
			exit 0; \
		fi; \
		echo "deno compile failed (no denort runtime for Deno $(DENO_VERSION): no network, and DENORT_BIN not set): writing a launcher instead"; \
	else \
		echo "no denort runtime for Deno $(DENO_VERSION) (DENORT_BIN unset, none in Deno's cache; make DENO_COMPILE=1 lets deno compile download it): writing a launcher"; \
	fi; \
	rm -f $@; \
	$(MAKE) --no-print-directory $(BUNDLE) || \
		echo "deno bundle failed: the launcher runs the module graph (slower start)"; \
	{ \
		echo '#!/bin/sh'; \
		echo '# passt/pasta launcher written by make: runs the program with Deno, from the'; \
		echo '# bundle build/passt.js unless a source file is newer (then from the sources).'; \
		echo '# The name it is invoked under (passt, pasta, or a link to either) selects the mode.'; \
		echo 'b="$(CURDIR)/$(BUNDLE)"; m=$$b; c="--no-config --no-lock"'; \
		echo '[ -s "$$b" ] || m='; \
		echo 'for f in $(addprefix $(CURDIR)/,$(SOURCES)); do'; \
		echo '	[ -n "$$m" ] && [ "$$f" -nt "$$b" ] && m= && break'; \
		echo 'done'; \
		echo '[ -n "$$m" ] || { m="$(CURDIR)/mod.ts"; c=; }'; \
		echo 'DENO_NO_UPDATE_CHECK=1 DENO_NO_PROMPT=1 exec "$(abspath $(DENO))" run $(DENO_RUN_FLAGS) $(DENO_V8_RUN_FLAGS) $$c "$$m" "$${0##*/}" "$$@"'; \
	} > $@; \
	chmod 755 $@

# The whole program as one JavaScript module: Deno loads it in one read, without
# resolving and transpiling some sixty files at each start (about 50 ms saved per
# process). `deno bundle` fetches esbuild from npm the first time: without the
# network this fails, and the launchers run the sources instead.
$(BUNDLE): $(SOURCES) | $(DENO)
	@mkdir -p build
	$(DENO) bundle --quiet --platform deno -o $@.tmp mod.ts && mv -f $@.tmp $@

pasta: passt
	ln -sf passt $@

man: build/passt.1.gz build/pasta.1.gz

build/%.1.gz: man/%.1
	@mkdir -p build
	gzip -9n < $< > $@

# Formatting, lint and type checks first: a red lint fails the build like a test.
check: passt pasta lint | $(DENO)
	sh tests/run.sh "$(DENO)"

test: check

lint: | $(DENO)
	$(DENO) fmt --check
	$(DENO) lint
	$(DENO) check mod.ts src tests

fmt: | $(DENO)
	$(DENO) fmt

# Our pasta against Debian's C pasta and slirp4netns, in the test sandbox (bench/run.ts):
# about 10 minutes; prints a markdown table and writes it to build/bench.md.
BENCH_TOOLS := iperf3:iperf3 slirp4netns:slirp4netns pasta:passt taskset:util-linux ss:iproute2
bench: passt pasta | $(DENO)
	@missing=; for t in $(BENCH_TOOLS); do \
		command -v $${t%%:*} >/dev/null 2>&1 || missing="$$missing $${t#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "make bench needs:$$missing" >&2; \
		echo "install with: apt-get install$$missing" >&2; exit 1; \
	fi
	$(DENO) run $(DENO_RUN_FLAGS) bench/run.ts

# Our pasta's RSS and descriptors under SOAK_SECONDS (default 600) of mixed load, SYN and
# UDP floods, in the test sandbox (bench/soak.ts): "verdict: flat" or exit status 1.
soak: passt pasta | $(DENO)
	$(DENO) run $(DENO_RUN_FLAGS) bench/soak.ts

# Property-based fuzzing of the whole tap input path (tests/fuzz/), in the test sandbox:
# FUZZ_RUNS cases (make check runs a bounded number), about 10 ms each: the default
# 200000 take about half an hour.
FUZZ_RUNS ?= 200000
fuzz: | $(DENO)
	FUZZ_RUNS=$(FUZZ_RUNS) $(DENO) run $(DENO_RUN_FLAGS) tests/fuzz/_run.ts

# Installs passt, the pasta link, the man pages and README.md under $(DESTDIR)$(PREFIX).
# A compiled ./passt is copied as it is. A launcher ./passt points into this tree, so
# instead the sources and the Deno runtime that built them go to $(PKGLIBDIR), and
# $(BINDIR)/passt is a launcher (packaging/launcher.sh.in) that finds them relative to
# its own location: no DESTDIR and no absolute path in it.
install: all uninstall-lib
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(DOCDIR)
	@set -e; if [ "$$(head -c 2 passt)" = '#!' ]; then \
		echo "installing the sources and the Deno runtime in $(DESTDIR)$(PKGLIBDIR)"; \
		for f in $(filter-out %_test.ts %_bench.ts,$(SOURCES)); do \
			install -D -m 644 $$f $(DESTDIR)$(PKGLIBDIR)/$$f; \
		done; \
		if [ -s $(BUNDLE) ]; then install -m 644 $(BUNDLE) $(DESTDIR)$(PKGLIBDIR)/passt.js; fi; \
		runtime=$$($(DENO) eval 'console.log(Deno.execPath())'); \
		install -m 755 "$$(readlink -f "$$runtime")" $(DESTDIR)$(PKGLIBDIR)/deno; \
		sed -e 's|@VERSION@|$(VERSION)|' -e 's|@DENO_V8_RUN_FLAGS@|$(DENO_V8_RUN_FLAGS)|' \
			-e "s|@LIB_FROM_BIN@|$$(realpath -m --relative-to=$(BINDIR) $(PKGLIBDIR))|" \
			packaging/launcher.sh.in > $(DESTDIR)$(BINDIR)/passt.tmp; \
		chmod 755 $(DESTDIR)$(BINDIR)/passt.tmp; \
		mv -f $(DESTDIR)$(BINDIR)/passt.tmp $(DESTDIR)$(BINDIR)/passt; \
	else \
		install -m 755 passt $(DESTDIR)$(BINDIR)/passt; \
	fi
	ln -sf passt $(DESTDIR)$(BINDIR)/pasta
	install -m 644 build/passt.1.gz build/pasta.1.gz $(DESTDIR)$(MANDIR)/man1/
	install -m 644 README.md $(DESTDIR)$(DOCDIR)/README.md

# Removes what `make install` installed (same PREFIX and DESTDIR), file by file: a
# mistaken DOCDIR or PKGLIBDIR never takes a whole directory tree with it.
uninstall: uninstall-lib
	rm -f $(DESTDIR)$(BINDIR)/passt $(DESTDIR)$(BINDIR)/pasta
	rm -f $(DESTDIR)$(MANDIR)/man1/passt.1.gz $(DESTDIR)$(MANDIR)/man1/pasta.1.gz
	rm -f $(DESTDIR)$(DOCDIR)/README.md
	rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null || true

# Helper: removes a launcher build's $(PKGLIBDIR), so that a reinstall keeps no source
# file that the new version no longer has.
uninstall-lib:
	rm -f $(DESTDIR)$(PKGLIBDIR)/deno $(DESTDIR)$(PKGLIBDIR)/mod.ts $(DESTDIR)$(PKGLIBDIR)/deno.json \
		$(DESTDIR)$(PKGLIBDIR)/passt.js
	rm -rf $(DESTDIR)$(PKGLIBDIR)/src
	rmdir $(DESTDIR)$(PKGLIBDIR) 2>/dev/null || true

# Builds build/$(PKG_NAME)_VERSION_ARCH.deb and build/$(PKG_NAME)-VERSION-1.ARCH.rpm from
# what `make` built, staged by `make install` with PREFIX=/usr, then lints the .deb when
# lintian is installed. Metadata and scripts: packaging/ (see packaging/README.md).
pkgs: all
	rm -rf $(PKG_STAGE)
	umask 022 && $(MAKE) --no-print-directory install DESTDIR=$(CURDIR)/$(PKG_STAGE)/root \
		PREFIX=/usr BINDIR=/usr/bin MANDIR=/usr/share/man PKGLIBDIR=/usr/lib/passt \
		DOCDIR=/usr/share/doc/$(PKG_NAME)
	install -m 644 packaging/copyright $(PKG_STAGE)/root/usr/share/doc/$(PKG_NAME)/copyright
	umask 022 && $(PKG_ENV) sh packaging/mkdeb.sh $(PKG_STAGE) build
	umask 022 && $(PKG_ENV) sh packaging/mkrpm.sh $(PKG_STAGE) build
	@if command -v lintian >/dev/null; then \
		echo "lintian build/$(PKG_NAME)_$(VERSION)_*.deb"; \
		lintian --fail-on error build/$(PKG_NAME)_$(VERSION)_*.deb; \
	else \
		echo "lintian is not installed: the .deb was not linted"; \
	fi

clean:
	rm -f passt pasta build/*.1.gz $(BUNDLE)
