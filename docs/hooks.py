"""mkdocs hooks of the documentation site (mkdocs.yml `hooks:`).

- The notebooks in notebooks/ become pages at notebooks/<name>.ipynb (mkdocs-jupyter renders
  them, without running them), so the site shows the committed notebooks, not copies.
- `<!-- runconfig-fields -->` in a page becomes the table of `RunConfig`'s fields, each with its
  default and its own doc (`config.setting`), so the reference cannot drift from the code.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
FIELDS_MARK = "<!-- runconfig-fields -->"


@event_priority(100)  # before mkdocs-jupyter's on_files, which turns them into pages
def on_files(files, config):
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        files.append(File(f"notebooks/{nb.name}", src_dir=str(ROOT), dest_dir=config["site_dir"],
                          use_directory_urls=config["use_directory_urls"]))
    return files


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def runconfig_table() -> str:
    if str(ROOT) not in sys.path:  # this checkout's package, as mkdocstrings reads it (paths: [.])
        sys.path.insert(0, str(ROOT))
    from pepita_lab.config import RunConfig

    rows = ["| field | default | member | what it is |", "| --- | --- | --- | --- |"]
    for f in dataclasses.fields(RunConfig):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        member = "yes" if f.metadata.get("member") else ""
        rows.append(f"| `{f.name}` | `{default!r}` | {member} | {_cell(f.metadata['doc'])} |")
    return "\n".join(rows)


def on_page_markdown(markdown, page, config, files):
    if FIELDS_MARK in markdown:
        markdown = markdown.replace(FIELDS_MARK, runconfig_table())
    return markdown
