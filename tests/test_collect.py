"""Collect, the service's copy out of the exchange, on real folders: only regular files and
folders of the submitting account are copied, within the caps, and the trusted time is the
latest ctime of what was copied (the folder's name and timestamp.txt are the student's
claim). The live service under real accounts is in test_exchange_attacks.py."""

import os
from pathlib import Path

import pytest

from autograder.service.collect import CAPS, Refused, collect, read_secret
from autograder.service.inbound import Inbound

CLAIM = "1999-01-01 00:00:00.000000 UTC"


def submission(tmp_path: Path, **files) -> Inbound:
    folder = tmp_path / "inbound" / f"ada+nn_from_scratch+{CLAIM}+x"
    folder.mkdir(parents=True)
    (folder / "submission_secret.txt").write_text("s3cret")
    (folder / "timestamp.txt").write_text(CLAIM)
    (folder / "nn_from_scratch.ipynb").write_text("{}")
    for name, text in files.items():
        (folder / name).write_text(text)
    info = folder.stat()
    return Inbound(folder.name, folder, "ada", "nn_from_scratch", "ada", info.st_uid,
                   info.st_ctime, CLAIM)


def refused(sub: Inbound, dest: Path) -> Refused:
    with pytest.raises(Refused) as caught:
        collect(sub, dest)
    assert "\n" not in str(caught.value)
    return caught.value


def test_a_plain_submission_is_copied_and_its_time_is_the_latest_ctime(tmp_path):
    sub = submission(tmp_path, notes="mine")
    (sub.path / "data").mkdir()
    (sub.path / "data" / "x.csv").write_text("1,2")
    latest = max(os.stat(p).st_ctime for p in [sub.path, *sub.path.rglob("*")])
    got = collect(sub, tmp_path / "copy")
    assert (tmp_path / "copy" / "data" / "x.csv").read_text() == "1,2"
    assert got.secret == "s3cret" and got.claimed_time == CLAIM
    assert got.trusted_time == latest  # never 1999: the claim is only kept beside it
    assert read_secret(sub) == "s3cret"


@pytest.mark.parametrize("target", ["/dev/zero", "/etc/passwd", "../../elsewhere"])
def test_a_link_anywhere_refuses_the_whole_submission_unread(tmp_path, target):
    sub = submission(tmp_path)
    (sub.path / "nested").mkdir()
    (sub.path / "nested" / "x").symlink_to(target)
    assert refused(sub, tmp_path / "copy").reason == "link"


def bind_socket(path: Path) -> None:
    import socket

    here = os.getcwd()
    os.chdir(path.parent)  # a socket's path is short; the test's folder is not
    try:
        socket.socket(socket.AF_UNIX).bind(path.name)
    finally:
        os.chdir(here)


@pytest.mark.parametrize("make", [os.mkfifo, bind_socket,
                                  lambda p: os.link(p.parent / "timestamp.txt", p)],
                         ids=["fifo", "socket", "hard link"])
def test_a_fifo_a_socket_or_a_hard_link_is_refused(tmp_path, make):
    sub = submission(tmp_path)
    make(sub.path / "odd")
    assert refused(sub, tmp_path / "copy").reason == "odd-file"


def test_the_caps_are_stated_and_hold(tmp_path):
    many = submission(tmp_path / "many")
    for index in range(CAPS.files):
        (many.path / f"f{index}").write_text("")
    assert refused(many, tmp_path / "many" / "copy").reason == "too-many-files"

    large = submission(tmp_path / "large")
    with open(large.path / "big", "wb") as file:  # sparse: nothing written to the disk
        file.truncate(CAPS.total_bytes + 1)
    assert refused(large, tmp_path / "large" / "copy").reason == "too-large"

    deep = submission(tmp_path / "deep")
    folder = deep.path
    for index in range(CAPS.depth + 1):
        folder = folder / f"d{index}"
        folder.mkdir()
    assert refused(deep, tmp_path / "deep" / "copy").reason == "too-deep"
    assert f"{CAPS.total_bytes // (1 << 20)} MiB" in str(
        refused(large, tmp_path / "large" / "again"))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another account")
def test_a_file_another_account_wrote_refuses_the_submission(tmp_path):
    sub = submission(tmp_path)
    planted = sub.path / "nn_from_scratch.ipynb"
    os.chown(planted, 65534, 65534)  # nobody: someone else replaced the notebook
    assert refused(sub, tmp_path / "copy").reason == "foreign-file"
