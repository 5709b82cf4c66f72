#!/usr/bin/env python3
"""Writes samples/users.xls (Excel 97-2003, BIFF8) and samples/users.ods (OpenDocument) with
the cells of samples/users.xlsx, so that every format calamine reads for hardmatch has a
sample written by another program than the one that reads it (xlwt and odfpy, not calamine or
rust_xlsxwriter).

    pip install openpyxl xlwt odfpy && scripts/sample-workbooks.py
"""
from pathlib import Path

import openpyxl
import xlwt
from odf.opendocument import OpenDocumentSpreadsheet
from odf.table import Table, TableCell, TableRow
from odf.text import P

samples = Path(__file__).resolve().parent.parent / "samples"
source = openpyxl.load_workbook(samples / "users.xlsx").worksheets[0]
rows = [list(row) for row in source.iter_rows(values_only=True)]

xls = xlwt.Workbook(encoding="utf-8")
sheet = xls.add_sheet(source.title)
for r, row in enumerate(rows):
    for c, value in enumerate(row):
        if value is not None:
            sheet.write(r, c, value)
xls.save(str(samples / "users.xls"))

ods = OpenDocumentSpreadsheet()
table = Table(name=source.title)
for row in rows:
    table_row = TableRow()
    for value in row:
        cell = TableCell()
        if value is not None:
            cell = TableCell(valuetype="string")
            cell.addElement(P(text=str(value)))
        table_row.addElement(cell)
    table.addElement(table_row)
ods.spreadsheet.addElement(table)
ods.save(str(samples / "users.ods"))
