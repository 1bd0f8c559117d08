#!/usr/bin/env python3
"""Turn a simple Markdown file (YAML front matter optional, '#'/'##' headings, paragraphs) into a
flat OpenDocument text (.fodt) that LibreOffice converts to PDF and DOCX.

Every page gets a running header (the document title) and a footer "Page N", so the PDF readers'
header/footer removal is tested on real LibreOffice output. With --page-breaks, each '#'/'##'
heading after the first starts a new page.

Usage: md2fodt.py IN.md OUT.fodt [--page-breaks]
"""
import re
import sys
from xml.sax.saxutils import escape


def parse(md):
    title = None
    if md.startswith("---\n"):
        end = md.index("\n---\n", 4)
        for line in md[4:end].splitlines():
            if line.startswith("title:"):
                title = line.split(":", 1)[1].strip()
        md = md[end + 5:]
    blocks = []
    for block in re.split(r"\n\s*\n", md.strip()):
        block = " ".join(l.strip() for l in block.splitlines())
        m = re.match(r"(#+)\s+(.*)", block)
        if m:
            blocks.append(("h%d" % len(m.group(1)), m.group(2)))
            if title is None and len(m.group(1)) == 1:
                title = m.group(2)
        else:
            block = re.sub(r"\*([^*]+)\*", r"\1", block)
            blocks.append(("p", block))
    return title or "Untitled", blocks


def main():
    src, dst = sys.argv[1], sys.argv[2]
    breaks = "--page-breaks" in sys.argv
    title, blocks = parse(open(src, encoding="utf-8").read())
    body = []
    first_heading = True
    for kind, text in blocks:
        if kind == "p":
            body.append('<text:p text:style-name="Body">%s</text:p>' % escape(text))
        else:
            level = int(kind[1:])
            style = "HeadBreak" if (breaks and not first_heading) else "Head"
            first_heading = False
            body.append('<text:h text:style-name="%s%d" text:outline-level="%d">%s</text:h>' % (style, level, level, escape(text)))
    out = f"""<?xml version="1.0" encoding="UTF-8"?>
<office:document xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"
 xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0"
 xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"
 xmlns:fo="urn:oasis:names:tc:opendocument:xmlns:xsl-fo-compatible:1.0"
 xmlns:dc="http://purl.org/dc/elements/1.1/"
 xmlns:meta="urn:oasis:names:tc:opendocument:xmlns:meta:1.0"
 office:version="1.3" office:mimetype="application/vnd.oasis.opendocument.text">
<office:meta><dc:title>{escape(title)}</dc:title></office:meta>
<office:styles>
 <style:style style:name="Body" style:family="paragraph"><style:paragraph-properties fo:margin-bottom="0.25cm" fo:text-align="justify"/><style:text-properties fo:font-size="11pt"/></style:style>
 <style:style style:name="Head1" style:family="paragraph"><style:text-properties fo:font-size="18pt" fo:font-weight="bold"/></style:style>
 <style:style style:name="Head2" style:family="paragraph"><style:text-properties fo:font-size="14pt" fo:font-weight="bold"/></style:style>
 <style:style style:name="HeadBreak1" style:family="paragraph" style:parent-style-name="Head1"><style:paragraph-properties fo:break-before="page"/></style:style>
 <style:style style:name="HeadBreak2" style:family="paragraph" style:parent-style-name="Head2"><style:paragraph-properties fo:break-before="page"/></style:style>
 <style:style style:name="Margin" style:family="paragraph"><style:paragraph-properties fo:text-align="center"/><style:text-properties fo:font-size="9pt"/></style:style>
</office:styles>
<office:automatic-styles>
 <style:page-layout style:name="PL"><style:page-layout-properties fo:page-width="21cm" fo:page-height="29.7cm" fo:margin-top="2cm" fo:margin-bottom="2cm" fo:margin-left="2.5cm" fo:margin-right="2.5cm"/></style:page-layout>
</office:automatic-styles>
<office:master-styles>
 <style:master-page style:name="Standard" style:page-layout-name="PL">
  <style:header><text:p text:style-name="Margin">{escape(title)}</text:p></style:header>
  <style:footer><text:p text:style-name="Margin">Page <text:page-number text:select-page="current">1</text:page-number></text:p></style:footer>
 </style:master-page>
</office:master-styles>
<office:body><office:text>
{chr(10).join(body)}
</office:text></office:body>
</office:document>
"""
    open(dst, "w", encoding="utf-8").write(out)


if __name__ == "__main__":
    main()
