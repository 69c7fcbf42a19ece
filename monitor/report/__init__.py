"""Availability reports for CERTs and regional cooperation (`govwatch report`).

- `history.read_history`: the one place the history is read (read-only);
- `model.build_report`: the frozen `Report`, pure, from those rows and the period;
- `charts`: the inline SVG charts; `render`: one renderer per format (md, csv, json, html);
- `command.run_report`: the command's period, checks, exit codes and output.

The README's "Availability reports" documents the JSON form field by field.
"""
