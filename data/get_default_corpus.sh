#!/usr/bin/env bash
# Writes data/corpora/fortunes.txt offline, from the text files of the Debian package
# 'fortunes' (/usr/share/games/fortunes). Fortunes are separated by blank lines; tabs become
# spaces and only printable ASCII and newlines are kept, so the vocabulary stays near 95
# characters. The offensive collection (an off/ subdirectory, package fortunes-off) is skipped.
#   usage: data/get_default_corpus.sh
set -euo pipefail

src=/usr/share/games/fortunes
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=$here/corpora/fortunes.txt

die() { echo "error: $*" >&2; exit 1; }

[[ $# -eq 0 ]] || die "usage: data/get_default_corpus.sh (it takes no arguments)"
[[ -d $src ]] || die "$src not found; install the Debian package 'fortunes'" \
                     "(sudo apt-get install fortunes)"

# The collections are the plain files: not the strfile indexes (.dat), not the .u8 symlinks,
# not directories. LC_ALL=C fixes the glob order, so the corpus is the same on every machine.
files=()
while IFS= read -r -d '' f; do
  files+=("$f")
done < <(LC_ALL=C find "$src" -maxdepth 1 -type f ! -name '*.dat' ! -name '*.u8' -print0 | LC_ALL=C sort -z)
[[ ${#files[@]} -gt 0 ]] || die "no fortune files in $src; reinstall the Debian package 'fortunes'"

mkdir -p "$here/corpora"
tmp=$(mktemp "$out.XXXXXX")
trap 'rm -f "$tmp"' EXIT
for f in "${files[@]}"; do
  cat -- "$f"
  echo  # a file without a final newline must not run into the next one
done | expand | LC_ALL=C sed 's/^%$//' | LC_ALL=C tr -cd '\n\40-\176' | cat -s > "$tmp"

chmod 644 "$tmp"  # mktemp creates it private
mv "$tmp" "$out"
trap - EXIT
chars=$(( $(LC_ALL=C tr -d '\n' < "$out" | LC_ALL=C fold -w1 | LC_ALL=C sort -u | wc -l) + 1 ))
echo "wrote $out ($(wc -c < "$out") bytes from ${#files[@]} files in $src; $chars distinct" \
     "characters)"
