"""What an archive job fuses: pairs found by relative path, or listed in a CSV manifest.

A file under IR_ROOT and one under VIS_ROOT with the same relative path without extension form a
pair (``day1/cam2/0001.png`` with ``day1/cam2/0001.jpg``); images and videos may be mixed in the tree.
The output mirrors the tree: ``OUT_ROOT/day1/cam2/0001.png`` for an image pair, ``.mp4`` for videos.
What cannot be fused (no partner, an image paired with a video, two files of one name) is an item
too, with its error, so the report lists it and the rest goes on.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from occo_deploy.errors import InputError
from occo_deploy.video.media import is_image, is_video

#: Output suffix per kind of pair.
OUTPUT_SUFFIX = {"image": ".png", "video": ".mp4"}


@dataclass(frozen=True)
class Item:
    """One unit of work: an image pair, a video pair, or a bad entry (``kind == "bad"``, with ``error``)."""

    key: str  # relative path without extension, posix form: the item's name in reports
    kind: str  # "image" | "video" | "bad"
    ir: str | None
    vis: str | None
    output: str | None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Item:
        return cls(**data)


def _media_files(root: Path) -> dict[str, list[Path]]:
    """Relative path without extension -> the image and video files there (recursive, sorted)."""
    found: dict[str, list[Path]] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.name.startswith(".") and (is_image(path) or is_video(path)):
            key = path.relative_to(root).with_suffix("").as_posix()
            found.setdefault(key, []).append(path)
    return found


def _kind(path: Path) -> str:
    return "image" if is_image(path) else "video"


def pair_item(key: str, ir: Path, vis: Path, output: Path) -> Item:
    """An image or video pair, or a bad item when the two are not of one kind."""
    kinds = {_kind(ir), _kind(vis)}
    if len(kinds) != 1:
        return Item(key, "bad", str(ir), str(vis), None,
                    f"infrared {ir.name} and visible {vis.name} are an image and a video; pair like with like")
    kind = kinds.pop()
    out = output if output.suffix else output.with_suffix(OUTPUT_SUFFIX[kind])
    return Item(key, kind, str(ir), str(vis), str(out))


def discover(ir_root: Path, vis_root: Path, out_root: Path) -> list[Item]:
    """Every pair of the two trees (and every file without one, as a bad item), sorted by key."""
    for root, what in ((ir_root, "infrared"), (vis_root, "visible")):
        if not root.is_dir():
            raise InputError(f"{what} root {root} is not a folder; give two folders, or --manifest FILE.csv")
    ir_files, vis_files = _media_files(ir_root), _media_files(vis_root)
    if not ir_files and not vis_files:
        raise InputError(f"no image or video files under {ir_root} or {vis_root}")
    items = []
    for key in sorted(ir_files.keys() | vis_files.keys()):
        irs, viss = ir_files.get(key, []), vis_files.get(key, [])
        first = (irs or viss)[0]
        if len(irs) > 1 or len(viss) > 1:
            dup = irs if len(irs) > 1 else viss
            items.append(Item(key, "bad", None, None, None,
                              f"{len(dup)} files named {key} ({', '.join(p.name for p in dup)}); keep one"))
        elif not irs or not viss:
            side, other = ("visible", vis_root) if viss else ("infrared", ir_root)
            missing = "infrared" if viss else "visible"
            items.append(Item(key, "bad", str(irs[0]) if irs else None, str(viss[0]) if viss else None, None,
                              f"{side} {first.relative_to(other)} has no {missing} partner with the same "
                              "relative path"))
        else:
            items.append(pair_item(key, irs[0], viss[0], out_root / key))
    return items


def read_manifest(manifest: Path, out_root: Path) -> list[Item]:
    """Items from a CSV with header ``ir,vis[,output]``; paths relative to the manifest's folder,
    outputs relative to OUT_ROOT (default: the infrared path's, extension by kind)."""
    if not manifest.is_file():
        raise InputError(f"manifest not found: {manifest}")
    base = manifest.parent
    try:
        with manifest.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
            header = [h.strip() for h in (rows[0].keys() if rows else [])]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read manifest {manifest}: {exc}") from exc
    if not rows:
        raise InputError(f"manifest {manifest} lists no pairs; it needs a header ir,vis[,output] and one row per pair")
    if not {"ir", "vis"} <= set(header) or set(header) - {"ir", "vis", "output"}:
        raise InputError(f"manifest {manifest} has columns {header}; expected ir,vis and optionally output")
    items = []
    for line, row in enumerate(rows, start=2):
        ir_text, vis_text = (row.get("ir") or "").strip(), (row.get("vis") or "").strip()
        out_text = (row.get("output") or "").strip()
        name = out_text or ir_text or vis_text or f"line {line}"
        if not ir_text or not vis_text:
            items.append(Item(name, "bad", ir_text or None, vis_text or None, None,
                              f"manifest line {line} needs both ir and vis"))
            continue
        ir, vis = base / ir_text, base / vis_text
        missing = [str(p) for p in (ir, vis) if not p.is_file()]
        if missing:
            items.append(Item(name, "bad", str(ir), str(vis), None, f"not found: {', '.join(missing)}"))
            continue
        key_path = Path(out_text) if out_text else Path(ir_text).with_suffix("")
        if key_path.is_absolute() or ".." in key_path.parts:
            items.append(Item(name, "bad", str(ir), str(vis), None,
                              f"manifest line {line}: the output {key_path} would fall outside OUT_ROOT; "
                              "give a relative output column"))
            continue
        items.append(pair_item(key_path.with_suffix("").as_posix(), ir, vis, out_root / key_path))
    keys = [i.key for i in items]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise InputError(f"manifest {manifest} writes {dupes[0]} more than once; give those rows distinct outputs")
    return items
