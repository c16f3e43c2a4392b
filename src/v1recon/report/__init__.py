"""The run report: one self-contained HTML page (RUN/report.html), figures, movies and the published numbers.

write_report(run_dir, out=None)      -> path of the written page
comparison_values(run_dir)           -> {published key: this run's value}
comparison_markdown(values)          -> Markdown table of the published results beside a run's
"""

from v1recon.report.build import comparison_values, render_report, write_report
from v1recon.report.published import PUBLISHED, comparison_markdown

__all__ = ["PUBLISHED", "comparison_markdown", "comparison_values", "render_report", "write_report"]
