"""The sections of the HTML report; each takes the report Context and returns HTML."""

from v1recon.report.sections.analyses import analyses_section, analysis_values
from v1recon.report.sections.data import data_section
from v1recon.report.sections.encoders import encoders_section
from v1recon.report.sections.families import families_section
from v1recon.report.sections.paper import paper_section, run_values
from v1recon.report.sections.reconstructions import reconstructions_section
from v1recon.report.sections.run import run_section
from v1recon.report.sections.streams import streams_section
from v1recon.report.sections.summary import summary_section

__all__ = [
    "analyses_section",
    "analysis_values",
    "data_section",
    "encoders_section",
    "families_section",
    "paper_section",
    "reconstructions_section",
    "run_section",
    "run_values",
    "streams_section",
    "summary_section",
]
