"""Calibration pairs: discovery (folders, nested data sets, videos), seeded split, preprocessing, hash."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from occo_deploy.calibration import data
from tests.conftest import PAIRS, make_video, sequence_frames


@pytest.mark.shared
def test_nested_data_sets_are_discovered_with_prefixes() -> None:
    items = data.discover(PAIRS)
    assert len(items) == 39  # TNO 11, RoadScene 10, MSRS 10, LLVIP 8
    assert {i.name.split("/")[0] for i in items} == {"TNO", "RoadScene", "MSRS", "LLVIP"}
    assert len(data.discover(PAIRS / "MSRS")) == 10


@pytest.mark.shared
def test_split_is_seeded_disjoint_and_sized() -> None:
    items = data.discover(PAIRS)
    calib, val = data.split(items, calib_size=12, val_size=4, seed=7)
    again = data.split(items, calib_size=12, val_size=4, seed=7)
    other = data.split(items, calib_size=12, val_size=4, seed=8)
    assert (calib, val) == again and (calib, val) != other
    assert len(calib) == 12 and len(val) == 4 and not {i.name for i in calib} & {i.name for i in val}


def test_fit_keeps_aspect_and_hits_the_size() -> None:
    image = np.zeros((329, 500, 3), np.uint8)
    image[:, 240:260] = 255  # a vertical bar in the middle must stay in the middle
    out = data.fit(image, (240, 320))
    assert out.shape == (240, 320, 3)
    bright = np.nonzero(out[120, :, 0] > 128)[0]
    assert abs((bright.min() + bright.max()) / 2 - 160) <= 2


@pytest.mark.shared
def test_pairs_are_preprocessed_like_the_runtime() -> None:
    item = next(i for i in data.discover(PAIRS / "MSRS") if i.name == "00055D")  # 3-channel gray IR
    ir, vis = data.load_pair(item, (240, 320))
    assert ir.shape == (240, 320) and vis.shape == (240, 320, 3)
    raw_ir = cv2.imread(str(item.ir), cv2.IMREAD_GRAYSCALE)
    assert np.abs(ir.astype(int) - cv2.resize(raw_ir, (320, 240), interpolation=cv2.INTER_AREA)).max() <= 1


def test_video_pairs_give_evenly_spaced_frames(tmp_path: Path) -> None:
    (tmp_path / "ir").mkdir()
    (tmp_path / "vi").mkdir()
    make_video(tmp_path / "ir" / "walk.mp4", sequence_frames("ir"), 30.0)
    make_video(tmp_path / "vi" / "walk.mp4", sequence_frames("vi"), 30.0)
    items = data.discover(tmp_path)
    assert [i.frame for i in items] == [0, 2, 5, 7, 10, 12, 15, 17]
    ir, vis = data.load_pair(items[3], (96, 128))
    assert ir.shape == (96, 128) and vis.shape == (96, 128, 3) and vis.std() > 5
    make_video(tmp_path / "ir" / "back.mp4", sequence_frames("ir")[::-1], 30.0)
    make_video(tmp_path / "vi" / "back.mp4", sequence_frames("vi")[::-1], 30.0)
    calib, val = data.split(data.discover(tmp_path), calib_size=None, val_size=1, seed=0)
    # Frames of one video stay on one side, so the check never sees a near-copy of a calibration frame.
    assert len(calib) == len(val) == 8
    assert len({i.name.split("#")[0] for i in calib}) == len({i.name.split("#")[0] for i in val}) == 1


@pytest.mark.shared
def test_set_hash_follows_content_choice_and_size(tmp_path: Path) -> None:
    for name in ("ir", "vi"):
        shutil.copytree(PAIRS / "TNO" / name, tmp_path / name)
    items = data.discover(tmp_path)
    base = data.set_hash(items[:3], (240, 320))
    assert base == data.set_hash(items[:3], (240, 320))
    assert base != data.set_hash(items[:4], (240, 320))
    assert base != data.set_hash(items[:3], (480, 640))
    image = cv2.imread(str(items[0].vis))
    image[0, 0] = 255 - image[0, 0]
    cv2.imwrite(str(items[0].vis), image)
    assert base != data.set_hash(items[:3], (240, 320))
