"""Render the results documents from the stamped result files (``make results``).

    python -m tracesieve.launch.results            # write docs/results.md, docs/figures/, the README's blocks
    python -m tracesieve.launch.results --check    # exit 1 naming each document that differs (what the tests run)

Either way it prints each result whose measured code has changed since it was measured.
"""

from __future__ import annotations

import argparse
import sys

from tracesieve import generated_docs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; fail when a generated document is not current")
    args = parser.parse_args(argv)
    for file, changed in generated_docs.staleness().items():
        if changed is None:
            print(f"{file}: measured at a commit not in this clone")
        elif changed:
            print(f"{file}: changed since it was measured: {', '.join(changed)}")
        else:
            print(f"{file}: current")
    if args.check:
        differing = generated_docs.differing_documents()
        for path in differing:
            print(f"{path}: differs from what benchmarks/results/ gives; run `make results`", file=sys.stderr)
        return 1 if differing else 0
    written = generated_docs.write_documents()
    print("rewrote: " + (", ".join(map(str, written)) if written else "nothing (every generated document is current)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
