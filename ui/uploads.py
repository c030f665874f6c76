"""Uploads and the dataset check report: the stated limits, where an upload is stored, and how the report shows.

An uploaded file is only ever stored under the lab home (a sanitised name plus its content hash), unpacked by
core.data.datasets.folder.safe_extract and decoded by PIL; nothing uploaded is unpickled or executed.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

MB = 1 << 20


def upload_limit_mb() -> int:
    """The upload limit per file, in MB (server.maxUploadSize in .streamlit/config.toml)."""
    try:
        return max(1, int(st.get_option("server.maxUploadSize")))
    except Exception:  # noqa: BLE001
        return 200


def too_large(up, limit_mb: int | None = None) -> str | None:
    """A clear message if an uploaded file is over the limit (the server refuses such uploads too), else None."""
    limit_mb = limit_mb or upload_limit_mb()
    size = getattr(up, "size", None)
    if size is None:
        size = len(up.getvalue())
    if size > limit_mb * MB:
        return (f"{up.name} is {size / MB:.1f} MB, over the upload limit of {limit_mb} MB per file; "
                "upload a smaller file, or give a folder on this machine instead")
    return None


def dataset_limits() -> str:
    """The stated limits for dataset uploads, in one sentence."""
    from core.data.datasets import MIN_IMAGES_PER_CLASS
    from core.data.datasets.folder import ZIP_MAX_BYTES, ZIP_MAX_ENTRIES, ZIP_MAX_RATIO
    from core.data.images import MAX_PIXELS
    return (f"Limits: {upload_limit_mb()} MB per upload; at most {ZIP_MAX_ENTRIES:,} entries and "
            f"{ZIP_MAX_BYTES / 2**30:g} GiB unpacked, no entry expanding more than {ZIP_MAX_RATIO}x (ZIP bombs are "
            f"refused); images up to {MAX_PIXELS / 1e6:g} megapixels; at least two classes with "
            f"{MIN_IMAGES_PER_CLASS} usable images each.")


def save_upload(filename: str, data: bytes, suffix: str = ".zip") -> str:
    """Store an upload under <lab home>/uploads (core.store.uploads: a safe name, the user's name kept for display)."""
    from core.store.uploads import save_upload as store
    return store(filename, data, suffix)


def render_report(report: dict, short=lambda s: s, counts: bool = True, skip: set[str] | None = None) -> None:
    """The check report (the same as `python -m core check-dataset PATH --json`): problems, counts, skipped files.
    Problems in `skip` (already shown on the page) are not repeated."""
    n_skipped = len(report.get("skipped") or [])
    if report.get("usable"):
        st.success(f"Check: usable · {len(report['classes'])} classes · {report.get('num_images', 0):,} usable images"
                   f" · {n_skipped} skipped file(s) · no problems", icon=":material/task_alt:")
    else:
        problems = report.get("problems") or ["the data cannot be used"]
        others = [p for p in problems if not any(p == k or p in k for k in (skip or ()))]
        for p in others:
            st.error(f"**Problem:** {short(p)}", icon=":material/error:")
        if not others:
            st.caption("Problems: the one above" + (f"; {n_skipped} file(s) skipped, listed below." if n_skipped
                                                    else "."))
    if counts and report.get("counts"):
        st.markdown("**Usable images per class**")
        st.dataframe(pd.DataFrame({"class": list(report["counts"]), "usable images": list(report["counts"].values())}),
                     hide_index=True, width="stretch")
    if n_skipped:
        with st.expander(f"Skipped files ({n_skipped})", expanded=n_skipped <= 20):
            st.dataframe(pd.DataFrame([(short(s["file"]), short(s["reason"])) for s in report["skipped"][:2000]],
                                      columns=["file", "why"]), hide_index=True, width="stretch")
    st.download_button("Check report (JSON)", data=_json(report), file_name="check-dataset.json",
                       mime="application/json", icon=":material/download:", key="check_download", on_click="ignore",
                       help="The same report as `python -m core check-dataset PATH --json`.")


def _json(report: dict) -> str:
    from core.store.runs import dumps
    return dumps(report, indent=1)
