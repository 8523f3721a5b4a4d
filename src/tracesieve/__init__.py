"""TraceSieve: find the parts of long reasoning traces that matter for the answer, and train on those."""

__version__ = "0.1.0"
