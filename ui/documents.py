"""The documents view: what the index holds, and uploading, re-indexing and deleting documents.

Uploads are checked, saved into ``<index>/uploads`` and indexed by ``ingest.uploads`` behind a
progress bar; while the index is busy nothing is saved, and a batch whose indexing fails is taken
back off the disk (``ingest.uploads.index_uploads``).
Deleting removes a document from the index (``ingest.pipeline.remove_document``) and, if it was
uploaded here, its saved copy; files indexed from the user's own folders are never deleted from
disk. Re-indexing re-reads a document (or every indexed folder) and updates what changed. "Ask
about this manual" starts a new conversation scoped to the chosen document (``ui.scope_panel``).
The chat sees every change at its next question, because ``ui.resources`` reopens the index when
its files change.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from pathlib import Path

import streamlit as st

from ingest.errors import IndexBusy, IndexNotFound
from ingest.load import SUPPORTED_SUFFIXES
from ingest.pipeline import Progress, ingest_folder, ingest_paths, remove_document
from ingest.records import IngestReport
from ingest.settings import Settings
from ingest.store import FileInfo, open_index
from ingest.uploads import UploadRejected, check_upload, delete_upload, index_busy, index_uploads, uploads_dir
from ui.chat import new_conversation
from ui.resources import get_embedder
from ui.scope_panel import pick_only

FLASH_KEY = "docqa_documents_messages"
_CONFIRM_KEY = "docqa_confirm_delete"
_VIEW_KEY = "view"  # the sidebar's view switch (ui.settings_panel)


def list_documents(index_dir: Path) -> list[FileInfo]:
    """The indexed files, by source; an empty list when there is no index yet.

    Read from the catalog, the truth whichever the store (``settings.store``): no Milvus needed."""
    try:
        with open_index(index_dir) as index:
            return sorted(index.files(), key=lambda f: f.source)
    except IndexNotFound:
        return []


def _progress_bar(label: str):
    bar = st.progress(0.0, text=label)

    def update(p: Progress) -> None:
        share = p.bytes_done / p.bytes_total if p.bytes_total else p.files_done / max(p.files_total, 1)
        name = f": {Path(p.path).name}" if p.path else ""
        note = f" ({p.note})" if p.note else ""  # "OCR page 3/40 of manual.pdf" while a scan is read
        bar.progress(min(share, 1.0), text=f"{label} {p.files_done}/{p.files_total} files{name}{note}")

    return bar, update


def _summary(report: IngestReport) -> str:
    parts = [
        f"{len(report.added)} added",
        f"{len(report.updated)} updated",
        f"{len(report.unchanged)} unchanged",
        f"{len(report.removed)} removed",
        f"{report.chunks_added} passages indexed in {report.seconds:.1f} s",
    ]
    return ", ".join(parts)


def _report_messages(report: IngestReport) -> list[tuple[str, str]]:
    messages = [("success", _summary(report))]
    messages += [("warning", f"{item.path} was not indexed: {item.reason}") for item in report.skipped]
    messages += [("caption", f"{item.path}: {item.reason}") for item in report.warnings]
    return messages


def _show(messages: list[tuple[str, str]]) -> None:
    for kind, text in messages:
        getattr(st, kind)(text)


def _then_rerun(messages: list[tuple[str, str]]) -> None:
    """Keep the messages for the next run (which draws the updated table), and rerun."""
    st.session_state[FLASH_KEY] = messages
    st.rerun()


def _upload(settings: Settings, files: list) -> None:
    """Check the uploads, then index them; they stay on disk only if the indexing ran."""
    max_bytes = int(settings.max_file_mb * 1_000_000)
    checked = []
    for file in files:
        data = file.getvalue()
        try:
            checked.append(
                (check_upload(file.name, len(data), max_bytes=max_bytes, suffixes=SUPPORTED_SUFFIXES), data)
            )
        except UploadRejected as err:
            st.error(str(err))
    if not checked:
        return
    if index_busy(settings.index_dir):
        st.error(_BUSY)
        return
    embedder = get_embedder(settings)
    bar, update = _progress_bar("Indexing")
    try:
        report = index_uploads(settings.index_dir, checked, embedder, settings, progress=update)
    except IndexBusy:  # another writer started after the check: the old files are back
        st.error(_BUSY)
        return
    finally:
        bar.empty()
    _show(_report_messages(report))


_BUSY = "The index is being updated by another task; nothing was saved. Upload again when it is done."


def _reindex(settings: Settings, files: list[FileInfo]) -> list[tuple[str, str]]:
    """Re-read ``files``: uploads one by one, other folders whole (new, changed and gone files)."""
    uploads = uploads_dir(settings.index_dir).resolve()
    by_root: dict[str, list[FileInfo]] = defaultdict(list)
    for info in files:
        by_root[info.root].append(info)
    embedder = get_embedder(settings)
    messages = []
    for root, infos in by_root.items():
        bar, update = _progress_bar(f"Re-indexing {Path(root).name}")
        if Path(root).resolve() == uploads or len(files) == 1:
            paths = [Path(root, info.path) for info in infos]
            report = ingest_paths(paths, Path(root), settings.index_dir, embedder, settings, progress=update)
        else:
            report = ingest_folder(Path(root), settings.index_dir, embedder, settings, progress=update)
        bar.empty()
        messages += _report_messages(report)
    return messages


def _delete(settings: Settings, info: FileInfo) -> None:
    """Button callback (runs before the next run, so the table and the checkbox are fresh)."""
    st.session_state[_CONFIRM_KEY] = False
    if not remove_document(settings.index_dir, Path(info.root, info.path), settings):
        st.session_state[FLASH_KEY] = [("warning", f"{info.source} was not in the index any more.")]
        return
    delete_upload(uploads_dir(settings.index_dir), Path(info.root, info.path))
    st.session_state[FLASH_KEY] = [("success", f"Deleted {info.source} from the index.")]


def _ask_about(source: str) -> None:
    """Button callback (before the next run draws the sidebar): a new chat about one manual."""
    pick_only(source)
    new_conversation()
    st.session_state[_VIEW_KEY] = "Chat"


def _table(files: list[FileInfo]) -> None:
    rows = [
        {
            "document": f.source,
            "pages": str(f.pages) if f.pages else "–",
            "passages": f.chunks,
            "size (KB)": round(f.size / 1024, 1),
            "modified": datetime.fromtimestamp(f.mtime).strftime("%Y-%m-%d %H:%M"),
            "folder": f.root,
        }
        for f in files
    ]
    st.dataframe(rows, hide_index=True, width="stretch")


def render_documents(settings: Settings) -> None:
    """Draw the documents view and carry out the action the user asked for."""
    st.title("Documents")
    _show(st.session_state.pop(FLASH_KEY, []))
    with st.form("docqa_upload", clear_on_submit=True):
        uploaded = st.file_uploader(
            "Add documents (drag and drop)",
            type=sorted(s.lstrip(".") for s in SUPPORTED_SUFFIXES),
            accept_multiple_files=True,
            help=f"Up to {settings.max_file_mb:g} MB each. They are saved in the index folder.",
        )
        if st.form_submit_button("Upload and index", icon=":material/upload:") and uploaded:
            _upload(settings, uploaded)
    files = list_documents(settings.index_dir)
    if not files:
        st.info(
            f"No documents are indexed yet (index folder `{settings.index_dir}`). Upload some above, "
            "or run `docqa ingest FOLDER` in a terminal.",
            icon=":material/info:",
        )
        return
    st.caption(f"{len(files)} documents, {sum(f.chunks for f in files)} passages")
    _table(files)
    names = {f.source: f for f in files}
    chosen = st.selectbox("Document", list(names), key="docqa_doc")
    ask, left, middle, right = st.columns(4)
    ask.button("Ask about this manual", icon=":material/chat:", on_click=_ask_about, args=(chosen,))
    if left.button("Re-index this document", icon=":material/sync:"):
        _then_rerun(_reindex(settings, [names[chosen]]))
    if middle.button("Re-index all", icon=":material/sync:", key="docqa_reindex_all"):
        _then_rerun(_reindex(settings, files))
    confirm = right.checkbox("Yes, delete it", key=_CONFIRM_KEY)
    right.button(
        "Delete from the index",
        icon=":material/delete:",
        disabled=not confirm,
        type="primary",
        on_click=_delete,
        args=(settings, names[chosen]),
    )
