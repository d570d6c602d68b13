"""``yolox_d2.utils.file_io``: which paths are local, and their operating-system form."""

import pathlib

from yolox_d2.utils.file_io import is_local_path, local_path


def test_local_paths_and_file_uris_are_local():
    assert is_local_path("/tmp/model.pth")
    assert is_local_path("relative/dir")
    assert is_local_path(pathlib.Path("/tmp/x.jpg"))
    assert is_local_path("file:///tmp/x.jpg")
    assert not is_local_path("s3://bucket/x.jpg")
    assert not is_local_path("manifold://tree/x.pth")


def test_local_path_strips_only_the_file_scheme():
    assert local_path("file:///tmp/x.jpg") == "/tmp/x.jpg"
    assert local_path("/tmp/x.jpg") == "/tmp/x.jpg"
    assert local_path(pathlib.Path("/tmp/x.jpg")) == "/tmp/x.jpg"
    assert local_path("s3://bucket/x.jpg") == "s3://bucket/x.jpg"
