"""Warnings in a run's log: silenced where they are understood, else logged once each under the file and
line that raised them (Python's ``logging.captureWarnings`` logs every one as coming from ``warnings.py``)."""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

# Warnings whose cause is known and harmless here, silenced for a run: (message regex, category, why).
UNDERSTOOD = (
    (r"register_new_resolver\(\) is deprecated", UserWarning, "OmegaConf deprecation inside kedro and kedro-mlflow"),
    (r"Add type hints to the `predict` method", UserWarning, "mlflow.pyfunc checks its own classes at import"),
    (r"One or more dataset names contain '\.' characters", UserWarning, "namespaced datasets (teacher.model) are Kedro's namespaces"),
)

_WARNING = re.compile(r"^(?P<path>.+?):(?P<line>\d+): (?P<category>\w+): (?P<message>.*)", re.DOTALL)


class WarningSource(logging.Filter):
    """On the ``py.warnings`` logger: each record names the warning's own file and line (what a log
    handler shows as its source) and says ``Category (package): message``; a repeat is dropped."""

    def __init__(self):
        super().__init__()
        self._seen: set[tuple[str, str, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        found = _WARNING.match(record.getMessage())
        if found is None:
            return True
        message = found["message"].strip().splitlines()[0]
        key = (found["path"], found["line"], message)
        if key in self._seen:
            return False
        self._seen.add(key)
        path = Path(found["path"])
        package = next((part for part in reversed(path.parts[:-1]) if part in {"site-packages", "src"}), None)
        origin = path.parts[path.parts.index(package) + 1] if package else path.parent.name
        record.pathname, record.filename, record.module = str(path), path.name, path.stem
        record.lineno = int(found["line"])
        record.msg, record.args = f"{found['category']} ({origin}): {message}", ()
        return True


def install_warning_logging() -> None:
    """Silence the understood warnings and attribute the rest; idempotent (settings.py calls it once)."""
    for pattern, category, _ in UNDERSTOOD:
        warnings.filterwarnings("ignore", message=pattern, category=category)
    logger = logging.getLogger("py.warnings")
    if not any(isinstance(existing, WarningSource) for existing in logger.filters):
        logger.addFilter(WarningSource())
