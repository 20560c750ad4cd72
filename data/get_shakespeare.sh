#!/usr/bin/env bash
# Writes data/corpora/shakespeare.txt: tiny Shakespeare (1,115,394 bytes), the corpus of
# nanoGPT's shakespeare_char. With LOCAL_PATH it copies that file (works offline); without it,
# it downloads input.txt from karpathy's char-rnn repository.
#   usage: data/get_shakespeare.sh [LOCAL_PATH]
set -euo pipefail

url=https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt
expected_bytes=1115394
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=$here/corpora/shakespeare.txt

die() { echo "error: $*" >&2; exit 1; }

[[ $# -le 1 ]] || die "usage: data/get_shakespeare.sh [LOCAL_PATH]"
mkdir -p "$here/corpora"
tmp=$(mktemp "$out.XXXXXX")
trap 'rm -f "$tmp"' EXIT

if [[ $# -eq 1 ]]; then
  [[ -f $1 ]] || die "'$1' is not a file; pass the path of tiny Shakespeare's input.txt"
  cp -- "$1" "$tmp"
else
  if command -v curl > /dev/null; then
    fetch=(curl -fsSL --connect-timeout 15 -o "$tmp" "$url")
  elif command -v wget > /dev/null; then
    fetch=(wget -q --timeout=15 -O "$tmp" "$url")
  else
    die "neither curl nor wget is installed; download $url elsewhere and run" \
        "data/get_shakespeare.sh /path/to/input.txt"
  fi
  "${fetch[@]}" || die "could not download $url (offline?); get input.txt another way and run" \
                       "data/get_shakespeare.sh /path/to/input.txt"
fi

bytes=$(wc -c < "$tmp")
if [[ $bytes -ne $expected_bytes ]]; then
  echo "warning: got $bytes bytes, tiny Shakespeare has $expected_bytes; results will not" \
       "compare with nanoGPT's" >&2
fi
chmod 644 "$tmp"  # mktemp creates it private
mv "$tmp" "$out"
trap - EXIT
echo "wrote $out ($bytes bytes)"
