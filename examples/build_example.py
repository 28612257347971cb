"""Build examples/loop.xlsx from examples/drafts.jsonl: `python examples/build_example.py`.

Drafts are dated relative to a fixed day, so `make demo` (which looks back to DEMO_SINCE) finds
the same reviews whenever it runs. Trace ids derive from ticket ids, so rebuilding is stable.
"""

import json
import sys
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import openpyxl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from loop import schema, template  # noqa: E402

HERE = Path(__file__).resolve().parent
REVIEW_DAY = datetime(2026, 11, 20, 17, 0)


def build(target: Path = HERE / "loop.xlsx") -> None:
    template.build(target)
    book = openpyxl.load_workbook(target)
    sheet = book[schema.DRAFTS]
    for line in (HERE / "drafts.jsonl").read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        row = dict(item)
        row["trace_id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"tallyhive/{item['ticket_id']}"))
        row["created_at"] = (REVIEW_DAY - timedelta(days=item["days_ago"])).replace(microsecond=0, second=0)
        row["prompt_version"] = "v1"
        values = [row.get(name) or None for name in schema.DRAFT_HEADERS]
        sheet.append(values)
        for cell in sheet[sheet.max_row]:
            if isinstance(cell.value, str):
                cell.data_type = "s"  # a ticket starting with "=" stays text
    book.save(target)


if __name__ == "__main__":
    build()
