#!/usr/bin/env bash
# subset-bold.sh — builds NotoSerifSC_700Bold-subset.ttf: the Bold weight cut down to the fixed
# text of ../agreement.typ plus printable ASCII. Data is never set in bold, so these glyphs suffice.
#
# Usage: subset-bold.sh path/to/NotoSerifSC_700Bold.ttf
#   (the full Bold comes from the npm package @expo-google-fonts/noto-serif-sc, 700Bold/)
# Needs fonttools: pip install fonttools
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="${1:?path to NotoSerifSC_700Bold.ttf}"
chars="$(mktemp)"
trap 'rm -f "$chars"' EXIT
# Every non-ASCII character of the template (comments included: a few spare glyphs cost little),
# one per line, deduplicated; ASCII is added by --unicodes below.
python3 - "$here/../agreement.typ" > "$chars" <<'PY'
import sys
text = open(sys.argv[1], encoding="utf-8").read()
print("".join(sorted({c for c in text if ord(c) > 0x7e and not c.isspace()})))
PY
pyftsubset "$src" \
  --text-file="$chars" \
  --unicodes="U+0020-007E,U+3000,U+FF08,U+FF09,U+FF1A" \
  --layout-features='*' \
  --name-IDs='*' --name-languages='*' \
  --notdef-outline \
  --output-file="$here/NotoSerifSC_700Bold-subset.ttf"
echo "wrote $here/NotoSerifSC_700Bold-subset.ttf ($(wc -c < "$here/NotoSerifSC_700Bold-subset.ttf") bytes)"
