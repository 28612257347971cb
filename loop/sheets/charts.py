"""A Grid's chart as the drawing and chart parts of an `.xlsx` package, made by openpyxl (the chart
XML is its strength) in a scratch workbook and carried over: the chart refers to the tab by name."""

from __future__ import annotations

import io
import re
import zipfile

from loop.sheets.base import Grid


def chart_parts(grid: Grid) -> tuple[bytes, bytes]:
    """(drawing XML, chart XML) for `grid.chart`, whose data is `grid`'s own cells, by reference."""
    import openpyxl
    from openpyxl.chart import LineChart, Reference

    chart = grid.chart
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = grid.title
    # no cell is copied: the chart refers to the tab's cells by address, so untrusted text never
    # passes through openpyxl (which refuses characters the workbook writer escapes)
    line = LineChart()
    line.title, line.y_axis.title, line.height, line.width = chart.title, chart.y_title, 8, 16
    line.x_axis.delete = line.y_axis.delete = False  # openpyxl 3.1 leaves axes hidden in Excel otherwise
    if chart.y_range:
        line.y_axis.scaling.min, line.y_axis.scaling.max = chart.y_range
    for number, column in enumerate(chart.series):
        line.add_data(Reference(sheet, min_col=column, min_row=chart.first_row - 1, max_row=chart.last_row),
                      titles_from_data=True)
        series = line.series[-1]
        if number in chart.dashed:  # an interval's bounds: thin dashed lines around the solid one
            series.graphicalProperties.line.dashStyle = "dash"
            series.graphicalProperties.line.width = 12700
        else:
            series.marker.symbol = "circle"
            series.graphicalProperties.line.width = 28575
    line.set_categories(Reference(sheet, min_col=chart.categories, min_row=chart.first_row, max_row=chart.last_row))
    row, column = chart.anchor
    sheet.add_chart(line, f"{openpyxl.utils.get_column_letter(column)}{row}")
    buffer = io.BytesIO()
    book.save(buffer)
    with zipfile.ZipFile(buffer) as archive:
        drawing, chart_xml = archive.read("xl/drawings/drawing1.xml"), archive.read("xl/charts/chart1.xml")
    # straight lines between versions (without <smooth val="0"/> LibreOffice draws curves), and
    # version labels read as text (openpyxl refers to categories as numbers)
    chart_xml = chart_xml.replace(b"</ser>", b'<smooth val="0"/></ser>')
    chart_xml = re.sub(rb"<cat><numRef>(.*?)</numRef></cat>", rb"<cat><strRef>\1</strRef></cat>", chart_xml)
    return drawing, chart_xml
