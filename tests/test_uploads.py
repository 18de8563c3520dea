"""Uploads are stored under neutral names in unguessable folders; a nameless part is refused with a reason."""

from pathlib import Path

import gradio as gr
import pytest
from fastapi.testclient import TestClient
from gradio.data_classes import FileData, ListFiles
from gradio.routes import App

from spmamba.demo import uploads


@pytest.fixture(scope="module")
def client():
    uploads.install()
    with gr.Blocks() as blocks:
        gr.File(type="filepath")
    blocks.max_file_size = None  # set by launch(), which this test does not call
    return TestClient(App.create_app(blocks))


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("Doe^Jane_MRN12345.dcm", "upload.dcm"),
        ("Smith, John 1961-02-03 head.NII.GZ", "upload.nii.gz"),
        ("scan of Mr X.zip", "upload.zip"),
        ("Doe^Jane", "upload"),
        (" ", "upload"),
    ],
)
def test_an_upload_is_stored_without_its_name(client, sent, stored):
    content = f"the bytes of {sent}".encode()
    r = client.post("/gradio_api/upload", files={"files": (sent, content, "application/octet-stream")})
    assert r.status_code == 200
    (path,) = map(Path, r.json())
    assert path.name == stored and path.read_bytes() == content
    assert len(path.parent.name) == 32  # a random folder, not the content's hash (which anyone holding the file knows)
    again = Path(client.post("/gradio_api/upload", files={"files": (sent, content, "x")}).json()[0])
    assert again.parent != path.parent and again.read_bytes() == content  # the same file twice: two folders


def test_a_part_without_a_file_name_gets_a_reason_not_a_server_error(client):
    r = client.post("/gradio_api/upload", files={"files": ("", b"data", "application/octet-stream")})
    assert r.status_code == 400 and "needs a file name" in r.text


def test_the_batch_upload_hands_on_the_name_the_browser_showed(tmp_path):
    stored = tmp_path / "upload.png"
    stored.write_bytes(b"x")
    value = uploads.with_names(gr.File(file_count="multiple", type="filepath")).preprocess(
        ListFiles(root=[FileData(path=str(stored), orig_name="Doe^Jane chest.png")])
    )
    assert value == [str(stored)] and value[0].orig_name == "Doe^Jane chest.png"


def test_a_message_about_an_upload_says_this_file_not_its_stored_name():
    said = uploads.in_own_words
    assert (
        said("upload.png is not an image file this app can read") == "This file is not an image file this app can read"
    )
    assert said("upload.nii.gz: the image data cannot be read").startswith("This file: the image data")
    assert (
        said("upload.dcm and upload.dcm are at the same position") == "This file and this file are at the same position"
    )
    assert said("the files belong to 2 series; upload the files of one series").endswith(
        "upload the files of one series"
    )
