#!/usr/bin/env python3
"""Reads clang-tidy output on stdin, prints each finding once (a header's
finding comes once per file that includes it) unless tools/lint/tidy.supp
suppresses it, and exits 1 when any finding is left.

tidy.supp, one entry a line:   FILE CHECK TEXT  # reason
  FILE   the path from the root (fnmatch pattern: services/http/*.c)
  CHECK  the check name as printed in brackets (fnmatch pattern)
  TEXT   words that must appear in the finding's message (e.g. a function
         name); no line numbers, so entries survive edits elsewhere
  reason is required.  An entry that suppresses nothing is reported as stale.
"""
import fnmatch
import os
import re
import sys

HEAD = re.compile(r'^(?P<file>[^:\s]+):(?P<line>\d+):(?P<col>\d+): '
                  r'(?P<kind>warning|error): (?P<msg>.*?)(?: \[(?P<check>[^\]]+)\])?$')


def load_supp(path):
    entries = []
    with open(path) as f:
        for n, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith('#'):
                continue
            body, sep, reason = line.partition('#')
            words = body.split(None, 2)
            if not sep or not reason.strip() or len(words) < 2:
                sys.exit(f'{path}:{n}: want "FILE CHECK [TEXT]  # reason"')
            text = words[2].strip() if len(words) > 2 else ''
            entries.append({'file': words[0], 'check': words[1], 'text': text,
                            'where': f'{path}:{n}', 'used': 0})
    return entries


def main():
    supp = load_supp(sys.argv[1]) if len(sys.argv) > 1 else []
    root = os.getcwd() + '/'
    seen, shown = set(), 0
    block = None

    def flush(b):
        nonlocal shown
        if not b:
            return
        key = (b['file'], b['line'], b['check'], b['msg'])
        if key in seen:
            return
        seen.add(key)
        for e in supp:
            if (fnmatch.fnmatch(b['file'], e['file'])
                    and fnmatch.fnmatch(b['check'], e['check'])
                    and e['text'] in b['msg']):
                e['used'] += 1
                return
        shown += 1
        sys.stdout.write(''.join(b['lines']))

    for line in sys.stdin:
        m = HEAD.match(line)
        if m:
            flush(block)
            f = m.group('file')
            if f.startswith(root):
                f = f[len(root):]
            line = line.replace(root, '', 1)
            block = {'file': f, 'line': m.group('line'), 'check': m.group('check') or '',
                     'msg': m.group('msg'), 'lines': [line]}
        elif block is not None and not re.match(r'^\d+ warnings? .*generated', line) \
                and not line.startswith('Suppressed '):
            block['lines'].append(line.replace(root, ''))
    flush(block)
    for e in supp:
        if not e['used']:
            print(f"{e['where']}: stale suppression (matches nothing): "
                  f"{e['file']} {e['check']} {e['text']}")
    print(f'clang-tidy: {shown} finding(s)')
    return 1 if shown else 0


if __name__ == '__main__':
    sys.exit(main())
