"""Write the CLI reference at the end of ``docs/usage.md`` from the code: each verb's ``--help``.

    python tools/cli_reference.py           # rewrite the section between the markers
    python tools/cli_reference.py --check   # exit 1 when the section is not what the code says (CI)

The help is rendered in this process at 80 columns, so the reference reads as a terminal shows it
and does not change with the machine that writes it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

USAGE = ROOT / "docs" / "usage.md"
START, END = "<!-- cli-reference:start -->", "<!-- cli-reference:end -->"
WIDTH = 80


def help_text(*verb: str) -> str:
    """``occo-deploy [VERB] --help`` as a terminal of ``WIDTH`` columns shows it."""
    from typer.testing import CliRunner

    from occo_deploy.cli.app import app

    result = CliRunner(env={"COLUMNS": str(WIDTH), "TERMINAL_WIDTH": str(WIDTH)}).invoke(
        app, [*verb, "--help"], prog_name="occo-deploy", terminal_width=WIDTH)
    if result.exit_code != 0:
        raise SystemExit(f"occo-deploy {' '.join(verb)} --help exited {result.exit_code}: {result.output}")
    return "\n".join(line.rstrip() for line in result.output.strip().splitlines())


def reference() -> str:
    """The section: the top-level help, then one block per verb in the order ``--help`` lists them."""
    from occo_deploy.cli.app import app

    verbs = [c.name for c in app.registered_commands if c.name]
    blocks = [("occo-deploy", help_text())] + [(f"occo-deploy {v}", help_text(v)) for v in verbs]
    return "\n\n".join(f"### `{title}`\n\n```text\n{text}\n```" for title, text in blocks)


def render(document: str) -> str:
    """``document`` with the section between the markers replaced by ``reference()``."""
    head, sep, rest = document.partition(START)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise SystemExit(f"{USAGE} lacks the markers {START} ... {END}")
    return f"{head}{START}\n{reference()}\n{END}{tail}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/usage.md is not current")
    args = parser.parse_args()
    current = USAGE.read_text()
    wanted = render(current)
    if args.check:
        if wanted != current:
            print(f"{USAGE.relative_to(ROOT)} is not current: run python tools/cli_reference.py", file=sys.stderr)
            return 1
        print(f"{USAGE.relative_to(ROOT)}: the CLI reference is current")
        return 0
    USAGE.write_text(wanted)
    print(f"wrote the CLI reference into {USAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
