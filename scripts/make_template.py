"""Regenerate sheets_template.xlsx from loop/schema.py: `make template`."""

import sys

from loop.collect.workbook_template import build

build(sys.argv[1] if len(sys.argv) > 1 else "sheets_template.xlsx")
