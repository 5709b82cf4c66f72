#!/usr/bin/env bash
# Prints a plan workbook the way a change board files it, and checks that its Summary sheet
# is one page: plans the samples against the emulator (no network), converts the workbook to
# PDF with LibreOffice headless, counts each sheet's pages (the page footer names the sheet)
# and writes a picture of the Summary page.
#
#   scripts/render-workbook.sh [OUT_DIR] [PNG]
#       (default target/workbook, and docs/workbook-summary.png)
#
# Needs LibreOffice Calc and poppler-utils (apt-get install libreoffice-calc poppler-utils).
# Exits 1 unless the Summary prints on exactly one page.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/workbook}
png=${2:-docs/workbook-summary.png}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --quiet --bin hardmatch
# The plan exits 1 when some rows would not be written (the samples have every kind).
target/debug/hardmatch plan samples/excel-de.csv --emulate samples/tenant.json \
  -o "$out/plan.xlsx" >/dev/null 2>&1 || [ $? -eq 1 ]
# A profile of its own, so that a running LibreOffice does not swallow the conversion.
soffice -env:UserInstallation="file://$work/profile" --headless \
  --convert-to pdf --outdir "$out" "$out/plan.xlsx" >"$work/soffice.log" 2>&1 ||
  { cat "$work/soffice.log" >&2; exit 1; }
pdf="$out/plan.pdf"

pages=$(pdfinfo "$pdf" | awk '/^Pages:/ {print $2}')
summary_pages=()
rows_pages=0
for page in $(seq "$pages"); do
  footer=$(pdftotext -layout -f "$page" -l "$page" "$pdf" - | grep -E '^ *(Summary|Rows) +Page' || true)
  case $footer in
    *Summary*) summary_pages+=("$page") ;;
    *Rows*) rows_pages=$((rows_pages + 1)) ;;
  esac
done
echo "$pdf: $pages pages; Summary: ${#summary_pages[@]} page(s); Rows: $rows_pages page(s)"
if [ "${#summary_pages[@]}" -ne 1 ]; then
  echo "FAIL: the Summary sheet should print on one page" >&2
  exit 1
fi

first=${summary_pages[0]}
pdftoppm -f "$first" -l "$first" -png -singlefile -scale-to 1100 "$pdf" "${png%.png}"
echo "Summary page: $png ($(du -k "$png" | cut -f1) KB)"
