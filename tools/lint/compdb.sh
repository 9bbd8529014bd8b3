#!/bin/sh
# Writes a compile_commands.json for clang-tidy from the Makefile itself:
# `make -n -B all` prints every compile command the build would run (with
# pkg-config already expanded), and each line with "-c SRC -o OBJ" becomes one
# entry.  Nothing is compiled, so this is quick and needs no `bear`; the same
# flags as the real build, on any machine where `make` works.  Generated
# protobuf code is left out (not linted); -MMD/-MP are dropped.
#   tools/lint/compdb.sh BUILD_DIR    (writes BUILD_DIR/compile_commands.json;
#                                      BUILD_DIR/proto/ must hold the headers)
set -e
cd "$(dirname "$0")/../.."
out=${1:-build-lint}
mkdir -p "$out"
make -n -B --no-print-directory BUILD="$out" all 2>/dev/null |
python3 -c '
import json, os, shlex, sys
root = os.getcwd()
db = []
for line in sys.stdin:
    words = shlex.split(line)
    if "-c" not in words or "-o" not in words:
        continue
    src = words[words.index("-c") + 1]
    if not src.endswith(".c") or "/proto/" in src:
        continue                      # generated code is not linted
    # no dependency files from the linters
    words = [w for w in words if w not in ("-MMD", "-MP")]
    db.append({"directory": root, "file": os.path.join(root, src), "arguments": words})
json.dump(db, sys.stdout, indent=1)
' >"$out/compile_commands.json"
