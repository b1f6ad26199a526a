"""fixtures/vendor: every file listed with its sha256, a licence file for its source, no GPL."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

VENDOR_DATA = Path(__file__).resolve().parents[2] / "fixtures" / "vendor"

HEADER = ["path", "sha256", "size", "licence", "source_repo", "source_path", "commit", "notes"]
PERMISSIVE = ("MIT", "BSD", "Apache-2.0", "CC0", "CC-BY")
NOT_DATA = {"manifest.csv", ".gitattributes"}


def _rows() -> list[dict[str, str]]:
    with open(VENDOR_DATA / "manifest.csv", newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == HEADER
        return list(reader)


def _data_files() -> list[str]:
    out = []
    for p in VENDOR_DATA.rglob("*"):
        rel = p.relative_to(VENDOR_DATA).as_posix()
        if p.is_file() and rel not in NOT_DATA and not rel.startswith("LICENSES/"):
            out.append(rel)
    return sorted(out)


def _licence_file(repo: str) -> Path:
    return VENDOR_DATA / "LICENSES" / (repo.replace("/", "__") + ".txt")


def test_every_file_is_listed_once_with_its_sha256_and_size():
    rows = _rows()
    listed = [r["path"] for r in rows]
    assert len(listed) == len(set(listed)), "a path is listed twice"
    files = _data_files()
    assert files, "fixtures/vendor holds no data files"
    assert sorted(listed) == files
    for r in rows:
        raw = (VENDOR_DATA / r["path"]).read_bytes()
        assert hashlib.sha256(raw).hexdigest() == r["sha256"], r["path"]
        assert len(raw) == int(r["size"]), r["path"]
        assert len(r["commit"]) >= 7 and all(c in "0123456789abcdef" for c in r["commit"])


def test_every_source_has_a_permissive_licence_file():
    for r in _rows():
        assert "GPL" not in r["licence"].upper(), r["path"]
        assert r["licence"].startswith(PERMISSIVE), (r["path"], r["licence"])
        lic = _licence_file(r["source_repo"])
        assert lic.is_file(), f"no licence file {lic.name} for {r['path']}"
        text = lic.read_text(encoding="utf-8")
        assert "GNU GENERAL PUBLIC LICENSE" not in text.upper()
        assert "copyright" in text.lower(), f"{lic.name} has no copyright notice"
        assert (
            "permission" in text.lower()
            or "licensed under" in text.lower()
            or ("apache license" in text.lower())
        ), f"{lic.name} holds no licence text"


def test_no_licence_file_without_a_source():
    repos = {r["source_repo"].replace("/", "__") + ".txt" for r in _rows()}
    present = {p.name for p in (VENDOR_DATA / "LICENSES").iterdir()}
    assert present <= repos, f"licence files without data: {sorted(present - repos)}"
