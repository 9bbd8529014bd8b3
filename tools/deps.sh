#!/bin/sh
# Installs the Debian packages the project needs, only when some are missing.
# Used by `make deps`, `make test`, `make lint`, `make up`, `make run`.
# make, git: a fresh Debian has neither.  cppcheck, clang-tidy, clang-format:
# `make lint` and `make format` (configs written for the Debian 12 versions,
# cppcheck 2.10 and clang 14).  taskset (util-linux, always there): make bench.
set -e
PKGS="build-essential make git pkg-config libzmq3-dev libczmq-dev libprotobuf-c-dev protobuf-c-compiler
libcurl4-openssl-dev libhiredis-dev libcmocka-dev redis-server redis-tools libjansson-dev
libmicrohttpd-dev python3 curl procps iproute2 cppcheck clang-tidy clang-format"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
# Node.js and npm run the official OpenAI client test (test_http_openai_sdk):
# take whatever node/npm the machine has (NodeSource, nvm), else Debian's.
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $missing
