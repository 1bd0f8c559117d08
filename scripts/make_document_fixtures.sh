#!/usr/bin/env bash
# Rebuilds the document fixtures (tests/fixtures/documents/) and the first-run samples
# (assets/samples/) with real tools: LibreOffice (soffice, Debian libreoffice-writer-nogui),
# pandoc, qpdf, iconv, msoffcrypto-tool (PyPI). Run from the repository root:
#   apt-get install -y libreoffice-writer-nogui pandoc qpdf && pip install msoffcrypto-tool
#   bash scripts/make_document_fixtures.sh
# The outputs are committed; tests never call these tools.
set -euo pipefail
root=$(pwd)
fx=$root/tests/fixtures/documents
src=$fx/src
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
soffice_to() { # format input outdir
  soffice --headless --norestore "-env:UserInstallation=file://$tmp/lo-profile" --convert-to "$1" --outdir "$3" "$2" >/dev/null
}

# --- test fixtures: one source, every format -------------------------------------------------
cp "$src/fixture.md" "$fx/fixture.md"
pandoc "$src/fixture.md" -t plain --wrap=auto --columns=72 -o "$fx/fixture.txt"
pandoc "$src/fixture.md" -s -t html5 -o "$fx/fixture.html"
pandoc "$src/fixture.md" -t epub3 -o "$fx/fixture.epub"
pandoc "$src/fixture.md" -t docx -o "$fx/fixture-pandoc.docx"
python3 "$root/scripts/md2fodt.py" "$src/fixture.md" "$tmp/fixture.fodt" --page-breaks
soffice_to pdf "$tmp/fixture.fodt" "$tmp"
soffice_to docx "$tmp/fixture.fodt" "$tmp"
soffice_to odt "$tmp/fixture.fodt" "$tmp"
soffice_to doc "$tmp/fixture.fodt" "$tmp"
cp "$tmp/fixture.pdf" "$fx/fixture.pdf"
cp "$tmp/fixture.docx" "$fx/fixture.docx"
cp "$tmp/fixture.odt" "$fx/unsupported.odt"
cp "$tmp/fixture.doc" "$fx/legacy-word.docx"        # a real .doc under a .docx name

# Encodings of the same text.
iconv -f UTF-8 -t WINDOWS-1252 "$src/latin1-source.txt" > "$fx/latin1.txt"
{ printf '\xff\xfe'; iconv -f UTF-8 -t UTF-16LE "$src/latin1-source.txt"; } > "$fx/utf16le-bom.txt"

# Bad files.
qpdf --encrypt secret-user secret-owner 256 -- "$fx/fixture.pdf" "$fx/encrypted.pdf"
msoffcrypto-tool -e -p secret "$fx/fixture.docx" "$fx/encrypted.docx"
head -c 2000 "$fx/fixture.docx" > "$fx/corrupt.docx"
head -c 1500 "$fx/fixture.pdf" > "$fx/corrupt.pdf"
: > "$fx/empty.txt"
printf '   \n\n\t\n' > "$fx/whitespace.md"
gzip -9 -n -c "$src/fixture.md" > "$fx/binary.txt"      # gzip data under a .txt name
: > "$tmp/blank.txt"
soffice_to pdf "$tmp/blank.txt" "$tmp"
cp "$tmp/blank.pdf" "$fx/no-text-layer.pdf"
python3 - "$fx/fixture.epub" "$fx/drm.epub" <<'PY'
import sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
enc = """<?xml version="1.0" encoding="UTF-8"?>
<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" xmlns:enc="http://www.w3.org/2001/04/xmlenc#">
 <enc:EncryptedData><enc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>
  <enc:CipherData><enc:CipherReference URI="EPUB/text/ch001.xhtml"/></enc:CipherData></enc:EncryptedData>
</encryption>"""
with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
    for item in zin.infolist():
        zout.writestr(item, zin.read(item.filename))
    zout.writestr("META-INF/encryption.xml", enc)
PY

# --- first-run samples ------------------------------------------------------------------------
s=$root/scripts/samples-src
out=$root/assets/samples
pandoc "$s/bakery-cooperative-minutes.md" -t docx -o "$out/bakery-cooperative-minutes.docx"
python3 "$root/scripts/md2fodt.py" "$s/lighthouse-report.md" "$tmp/lighthouse-report.fodt" --page-breaks
soffice_to pdf "$tmp/lighthouse-report.fodt" "$tmp"
cp "$tmp/lighthouse-report.pdf" "$out/lighthouse-report.pdf"
pandoc "$s/the-winter-crossing.md" -t epub3 -o "$out/the-winter-crossing.epub"
ls -l "$fx" "$out"
