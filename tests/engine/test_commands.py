"""Management commands are thin: parse, call the engine, print JSON (no database needed)."""

import io
import json

import cv2
import pytest
from django.core.management import CommandError, call_command

from analysis.engine import phantoms


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    base = phantoms.trichoscopy_phantom(31, size_px=(320, 240), mm_per_px=0.008, strength=0.3)
    fol = phantoms.follow_up(base, 2, change_fraction=0.0, strength=0.3)
    cv2.imwrite(str(d / "a.png"), base.image)
    cv2.imwrite(str(d / "b.jpg"), fol.image)
    (d / "bad.jpg").write_bytes(b"nope")
    return d


def run(*args):
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_analyze_image_prints_one_object_or_a_list(files, tmp_path):
    one = json.loads(
        run(
            "analyze_image",
            str(files / "a.png"),
            "--view",
            "trichoscopy",
            "--mm-per-px",
            "0.008",
            "--heatmap",
            str(tmp_path / "h.png"),
            "--json",
        )
    )
    assert one["hair_count"] > 0 and (tmp_path / "h.png").exists()
    many = json.loads(
        run("analyze_image", str(files / "a.png"), str(files / "b.jpg"), "--mm-per-px", "0.008", "--json")
    )
    assert isinstance(many, list) and len(many) == 2


def test_analyze_image_reports_an_unreadable_file(files):
    with pytest.raises(CommandError, match="bad.jpg"):
        run("analyze_image", str(files / "bad.jpg"), "--json")


def test_compare_images_prints_changes(files, tmp_path):
    d = json.loads(
        run(
            "compare_images",
            str(files / "a.png"),
            str(files / "b.jpg"),
            "--mm-per-px",
            "0.008",
            "--change-map",
            str(tmp_path / "c.png"),
            "--json",
        )
    )
    assert set(d) == {"comparable", "reasons", "overlap_fraction", "changes"}


def test_calibration_card_writes_a_pdf(tmp_path):
    run("calibration_card", "--out", str(tmp_path / "card.pdf"))
    assert (tmp_path / "card.pdf").read_bytes().startswith(b"%PDF")
