#!/bin/sh
# The layering rule of common/ (docs/ARCHITECTURE.md), checked on every
# #include "..." of common/<room>/*.[ch]:
#   base    -> base (and the generated skillorchestra.pb-c.h, for so_pb.h)
#   wire    -> base, wire (and the generated skillorchestra.pb-c.h)
#   method  -> base, method
#   store   -> base, wire, method, store (and the generated header)
#   llm     -> base, method, llm
#   offline -> base, method, offline
# Nothing in common/ includes services/.  Prints each offending include as
# FILE:LINE: room R includes "X" and exits 1 when there is one.
cd "$(dirname "$0")/../.." || exit 2
allowed() {
    case $1 in
        base)    echo "base pb" ;;
        wire)    echo "base wire pb" ;;
        method)  echo "base method" ;;
        store)   echo "base wire method store pb" ;;
        llm)     echo "base method llm" ;;
        offline) echo "base method offline" ;;
        *)       echo "?" ;;
    esac
}
bad=0
for dir in common/*/; do
    room=$(basename "$dir")
    ok=$(allowed "$room")
    if [ "$ok" = "?" ]; then
        echo "layers: common/$room/ is not a known room (add it to tools/lint/layers.sh)"
        bad=1
        continue
    fi
    for f in "$dir"*.c "$dir"*.h; do
        [ -f "$f" ] || continue
        # FILE:LINE:#include "path"
        grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" /dev/null |
        while IFS= read -r hit; do
            path=$(printf '%s\n' "$hit" | sed 's/^[^"]*"//; s/".*$//')
            case $path in
                *.pb-c.h) target=pb ;;
                services/*|*/services/*|../*) target=services ;;
                */*) target=${path%%/*} ;;
                *) target=$room ;;          # same folder: "so_x.h"
            esac
            case " $ok " in
                *" $target "*) ;;
                *) echo "${hit%%:#*}: room $room includes \"$path\"" \
                        "(allowed: $(echo "$ok" | sed 's/pb/generated protobuf/'))" ;;
            esac
        done
    done
done >"${TMPDIR:-/tmp}/so-layers.$$"
if [ -s "${TMPDIR:-/tmp}/so-layers.$$" ]; then
    sed 's/^/layers: /' "${TMPDIR:-/tmp}/so-layers.$$"
    bad=1
fi
rm -f "${TMPDIR:-/tmp}/so-layers.$$"
[ $bad -eq 0 ] && echo "layers: ok"
exit $bad
