"""Reports: the tables and figures of a run in one self-contained HTML file and in Markdown.

* :class:`Report` is a small document model (headings, text, notes, tables, figures) rendered by
  :meth:`Report.to_html` (figures embedded, no external asset) and :meth:`Report.to_markdown`.
* :func:`summary_table` and :func:`interval_table` turn the library's tidy metrics table
  (``model, fold, task, metric, value``) and bootstrap intervals into the paper's table layout;
  :func:`roc_figure`, :func:`confusion_figure`, :func:`training_curves_figure`,
  :func:`metric_bars_figure` and :func:`importance_figure` draw its figures.
* :func:`reliability_figure`, :func:`decision_curve_figure` and :func:`calibration_section`
  show a model's calibration, thresholds and decision curves; :func:`model_card_section` renders
  a model card (``model_card.json``).
* :func:`build_report` reads a run folder written by the ``ichprog`` command line and writes
  ``report.html`` and ``report.md``.
* :func:`paper_table` gives the paper's published numbers for comparison.
"""

from __future__ import annotations

from ichprog._extras import require_extra

require_extra(__name__, "report", ("matplotlib",))

from ichprog.report.builder import Report, figure_to_png
from ichprog.report.calibration import (
    calibration_section,
    decision_curve_figure,
    reliability_figure,
)
from ichprog.report.figures import (
    confusion_figure,
    importance_figure,
    interval_table,
    metric_bars_figure,
    roc_figure,
    summary_table,
    training_curves_figure,
)
from ichprog.report.modelcard import model_card_section, read_model_card
from ichprog.report.paper import METRIC_LABELS, PAPER_TABLES, paper_table
from ichprog.report.run import PHANTOM_NOTE, RUN_LAYOUT, build_report

__all__ = [
    "Report",
    "figure_to_png",
    "summary_table",
    "interval_table",
    "roc_figure",
    "confusion_figure",
    "training_curves_figure",
    "metric_bars_figure",
    "importance_figure",
    "METRIC_LABELS",
    "PAPER_TABLES",
    "paper_table",
    "PHANTOM_NOTE",
    "RUN_LAYOUT",
    "build_report",
    "calibration_section",
    "decision_curve_figure",
    "model_card_section",
    "read_model_card",
    "reliability_figure",
]
