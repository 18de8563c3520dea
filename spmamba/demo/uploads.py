"""Uploads kept under neutral names: a file name is often a patient's (``Doe^Jane_MRN12345.dcm``).

Gradio stores each upload as ``<its cache>/<sha256 of the content>/<the name the browser sent>``: the name
lands on disk, and whoever holds the same file can compute the path. :func:`install` wraps Gradio's upload
step so that each file is stored as ``<its cache>/<random>/upload<suffix>`` instead (the suffix, which the
loaders read, only when it is one they know), and so that a part without a file name, which Gradio's parser
takes for a form field and answers with HTTP 500, gets a 400 that says what is missing. The browser keeps
the name it showed; :func:`with_names` hands it to a tab that lists files by name (Batch), within the
session that sent it.
"""

from __future__ import annotations

import re
import secrets
import shutil
from pathlib import Path

import gradio as gr
import gradio.routes
from gradio.utils import NamedString

from spmamba.imaging import image_suffix

NEUTRAL = "upload"


def neutral_name(name: str | None) -> str:
    """``upload`` plus the suffix the loaders read (``.dcm``, ``.nii.gz``, ``.zip`` …), nothing of the name."""
    name = (name or "").lower()
    suffix = image_suffix(name) or (".zip" if name.endswith(".zip") else "")
    return NEUTRAL + suffix


_STORED = re.compile(r"\bupload(?:\.[a-z0-9]+)+\b")


def in_own_words(message: str) -> str:
    """A message about an upload with its neutral stored name said as "this file" (the page shows the name the
    user gave it beside the message)."""
    message = re.sub(r"^upload(?:(?:\.[a-z0-9]+)+(?=[\s:])|(?=:| is | has | holds ))", "This file", message)
    return _STORED.sub("this file", message)


def install() -> None:
    """Wrap Gradio's upload function (once per process; the upload route looks it up at each request)."""
    if getattr(gradio.routes.upload_fn, "neutral", False):
        return
    original = gradio.routes.upload_fn

    async def upload_fn(request, upload_dir, *args, **kwargs):
        try:
            stored, to_copy, locations = await original(request, upload_dir, *args, **kwargs)
        except TypeError as err:
            if "GradioUploadFile" not in str(err):
                raise
            raise gradio.routes.MultiPartException("every uploaded file needs a file name") from None
        renamed = {}
        for old in stored:
            folder = Path(upload_dir) / secrets.token_hex(16)
            folder.mkdir(parents=True)
            renamed[old] = str(folder / neutral_name(Path(old).name))
            if old not in locations:  # already in place: move it (else Gradio moves it there in the background)
                shutil.move(old, renamed[old])
            _remove_if_empty(Path(old).parent)
        return [renamed[p] for p in stored], to_copy, [renamed[p] for p in locations]

    upload_fn.neutral = True
    gradio.routes.upload_fn = upload_fn


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass  # another upload of the same content still lives there


def with_names(files: gr.File) -> gr.File:
    """``files`` handing on, with each path, the name the browser showed (``.orig_name``), for a results table
    the user reads by file name; the path on disk stays neutral. (An instance hook: a subclass of a Gradio
    component would make Gradio write a type stub beside this module.)"""
    process = files._process_single_file

    def named(f):
        path = process(f)
        if isinstance(path, NamedString):
            path.orig_name = f.orig_name or Path(path).name
        return path

    files._process_single_file = named
    return files
