"""Static HTML reports: the dataset (here) and, with the same page and charts, model evaluation (seg.report)."""
from gt2seg.report.dataset import DatasetReport, build_dataset_report
from gt2seg.report.render import write_dataset_report

__all__ = ["DatasetReport", "build_dataset_report", "write_dataset_report"]
