"""Verifying an evidence ZIP is bounded: a ZIP bomb, 100k entries, a huge or deeply nested manifest are refused
with a reason by the limits (before any inflating), every entry is streamed (memory bounded however large it
inflates), and no server path leaks into the problems."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from vsearch.config import PROJECT_ROOT
from vsearch.errors import InputError, TooLargeError
from vsearch.evidence import MANIFEST, MANIFEST_SHA, VerifyLimits, verify_zip

MiB = 1024**2
pytestmark = pytest.mark.filterwarnings("ignore:Duplicate name")


def _zeros_zip(path: Path, mib: int) -> None:
    """One deflated entry of `mib` MiB of zeros (about 1 KiB per MiB on disk), written in pieces."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z, z.open("clips/zeros.mp4", "w", force_zip64=True) as f:
        zero = bytes(MiB)
        for _ in range(mib):
            f.write(zero)


def _evidence(path: Path, files: dict[str, bytes], manifest: bytes | None = None) -> None:
    listed = [{"path": n, "sha256": hashlib.sha256(b).hexdigest(), "bytes": len(b)} for n, b in files.items()]
    manifest = manifest if manifest is not None else json.dumps({"files": listed}).encode()
    with zipfile.ZipFile(path, "w") as z:
        for n, b in files.items():
            z.writestr(n, b)
        z.writestr(MANIFEST, manifest)
        z.writestr(MANIFEST_SHA, f"{hashlib.sha256(manifest).hexdigest()}  {MANIFEST}\n")


def test_a_zip_bomb_is_refused_by_its_ratio_before_inflating(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.zip"
    _zeros_zip(bomb, 128)  # 128 MiB of zeros in about 128 KB: the ratio, not the size, refuses it
    assert bomb.stat().st_size < MiB // 4
    with pytest.raises(TooLargeError, match=r"inflates \d+x .* the limit is 100x"):
        verify_zip(bomb)


def test_an_entry_or_a_total_over_the_limits_is_refused(tmp_path: Path) -> None:
    z = tmp_path / "e.zip"
    _evidence(z, {"clips/a.mp4": b"a" * 5000, "clips/b.mp4": b"b" * 5000})
    assert verify_zip(z).ok
    with pytest.raises(TooLargeError, match="inflates to 5000 bytes; the limit is 4000"):
        verify_zip(z, limits=VerifyLimits(max_entry_bytes=4000))
    with pytest.raises(TooLargeError, match="in all; the limit is 9000"):
        verify_zip(z, limits=VerifyLimits(max_total_bytes=9000))
    with pytest.raises(TooLargeError, match="at most 2 entries"):
        verify_zip(z, limits=VerifyLimits(max_entries=2))


def test_a_hundred_thousand_tiny_entries_are_refused_by_the_entry_count(tmp_path: Path) -> None:
    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as z:
        for i in range(100_000):
            z.writestr(zipfile.ZipInfo(f"f{i % 50_000}"), b"x")  # every name twice
    with pytest.raises(TooLargeError, match="declares 100000 entries"):
        verify_zip(many)


def test_duplicate_names_are_each_reported_once(tmp_path: Path) -> None:
    z = tmp_path / "dup.zip"
    _evidence(z, {"clips/a.mp4": b"a"})
    with zipfile.ZipFile(z, "a") as zz:
        for _ in range(3):
            zz.writestr("clips/a.mp4", b"a")
    r = verify_zip(z)
    assert not r.ok and r.added == ["clips/a.mp4"] and r.changed == []


def test_a_huge_or_deeply_nested_manifest_is_refused_with_a_reason(tmp_path: Path) -> None:
    nested = tmp_path / "nested.zip"
    _evidence(nested, {}, b"[" * 100_000)
    with pytest.raises(InputError, match="nested too deeply"):
        verify_zip(nested)
    big = tmp_path / "big.zip"
    _evidence(big, {}, b" " * (17 * MiB) + b"{}")
    with pytest.raises(TooLargeError, match=f"{MANIFEST} has {17 * MiB + 2} bytes"):
        verify_zip(big)
    odd = tmp_path / "odd.zip"
    _evidence(odd, {}, json.dumps({"files": [{"path": 1}, {"path": "a"}]}).encode())
    assert "not a vsearch manifest" in verify_zip(odd).problems[0]


def test_problems_name_no_server_path(tmp_path: Path) -> None:
    junk = tmp_path / "secret-folder" / "upload.zip"
    junk.parent.mkdir()
    junk.write_bytes(b"not a zip at all")
    r = verify_zip(junk)
    assert not r.ok and r.problems == ["not a readable ZIP (File is not a zip file)"]


@pytest.mark.slow
def test_an_entry_inflating_to_a_gigabyte_is_streamed_in_bounded_memory(tmp_path: Path) -> None:
    """The ratio limit lifted: the 1 GiB entry is inflated and hashed in pieces; the process stays < 300 MB."""
    bomb = tmp_path / "bomb.zip"
    _zeros_zip(bomb, 1024)
    code = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from vsearch.evidence import VerifyLimits, verify_zip
        r = verify_zip(Path({str(bomb)!r}), limits=VerifyLimits(max_ratio=1e9))
        assert not r.ok and r.changed == [] and "missing: manifest.json" in r.problems, r.problems
        # VmHWM: the peak of this program's own memory (ru_maxrss keeps the forking test process's across exec)
        hwm = [l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM:")][0]
        print(int(hwm.split()[1]) // 1024)
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.split()[-1]) < 300, out.stdout  # peak RSS in MB
