"""Make a dataset in the browser (the Data page's "Make a dataset"), and open a misclassified image there (Results).

All changes go through core.data.datasets.labmade.LabDataset. Every action runs in a widget callback, before the
page is drawn again: a camera snapshot or an upload is added exactly once (its widget then gets a new key, so the
camera is live again and the uploader empty), however often the page reruns.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.data.datasets import MIN_IMAGES_PER_CLASS, LabDataset
from core.data.datasets.labmade import list_made
from core.data.images import IMAGE_SUFFIXES
from core.errors import LabError
from ui import common, uploads

S = st.session_state
SOURCE = "Make a dataset"                   # the Data page's source that shows this
NEW = "+ New dataset…"          # plain text: an emoji shows as a box where the browser has no emoji font
THUMB = 96                                  # thumbnail width, px
CAMERA_WIDTH = 560                          # px: the live picture and its button, beside nothing else
SHOW = 60                                   # thumbnails shown per class before "show all"


@st.cache_data(max_entries=4000, show_spinner=False)
def _thumb(path: str, mtime_ns: int):
    from core.data.images import thumbnail
    return thumbnail(path, 2 * THUMB)


def _note(kind: str, text: str) -> None:
    S["made_note"] = (kind, text)


def _changed() -> None:
    """The list of datasets (and their classes) changed: every page's dataset list is read again."""
    common.datasets_info.clear()


def _guard(fn, *args) -> None:
    """Run a change; a LabError becomes the note shown at the top of the builder."""
    try:
        fn(*args)
    except LabError as e:
        _note("error", str(e))


# ------------------------------------------------------------------ callbacks (run before the page is drawn)


def _create() -> None:
    ds = LabDataset.create(S.get("made_new_name", ""))
    S["made_dataset"] = ds.name
    S["made_new_name"] = ""
    _changed()
    _note("success", f"Made **{ds.name}**. Add a class for each kind of thing the model should tell apart.")


def _add_class(name: str) -> None:
    cls = LabDataset(name).add_class(S.get("made_new_class", ""))
    S["made_new_class"] = ""
    S["made_class"] = cls
    _changed()


def _add(name: str, cls: str, items: list[tuple[str, bytes]], what: str, refused: list[str] | None = None) -> None:
    """Add images to a class; the note says how many, and each refused file with the reason."""
    got = LabDataset(name).add_images(cls, items) if items else None
    why = (refused or []) + [f"`{f}`: {r}" for f, r in (got.refused if got else [])]
    text = f"Added {len(got.added)} {what} to **{cls}**." if got and got.added else f"Nothing added to **{cls}**."
    if why:
        text += " Refused: " + "; ".join(why[:10]) + (f" (and {len(why) - 10} more)" if len(why) > 10 else "")
    _note("warning" if why else "success", text)
    _changed()


def _uploaded(name: str, cls: str, key: str) -> None:
    ups = S.get(key) or []
    S["made_upload_n"] = S.get("made_upload_n", 0) + 1          # a fresh, empty uploader next time
    items, big = [], []
    for up in ups:
        if refused := uploads.too_large(up):
            big.append(refused)
        else:
            items.append((up.name, up.getvalue()))
    if ups:
        _add(name, cls, items, "image(s)", big)


def _snapshot(name: str, cls: str, key: str) -> None:
    shot = S.get(key)
    if shot is None:
        return
    S["made_cam_n"] = S.get("made_cam_n", 0) + 1                # the camera is live again for the next one
    S["made_shots"] = S.get("made_shots", 0) + 1
    _add(name, cls, [(f"snapshot-{S['made_shots']}.jpg", shot.getvalue())], "snapshot")


def _move(name: str, cls: str, file: str, key: str) -> None:
    to = S.get(key)
    if to:
        LabDataset(name).move_image(cls, file, to)
        _note("success", f"Moved `{file}` from **{cls}** to **{to}**.")
        if (S.get("made_focus") or {}).get("id") == f"{cls}/{file}":
            S["made_focus"] = None
        _changed()


def _remove(name: str, cls: str, file: str) -> None:
    LabDataset(name).remove_image(cls, file)
    _changed()


def _rename(name: str, cls: str, key: str) -> None:
    new = LabDataset(name).rename_class(cls, S.get(key, ""))
    if S.get("made_class") == cls:
        S["made_class"] = new
    _changed()


def _delete_class(name: str, cls: str) -> None:
    LabDataset(name).delete_class(cls)
    _changed()


def _delete_dataset(name: str) -> None:
    LabDataset(name).delete()
    S["made_dataset"] = NEW
    _changed()
    _note("success", f"Deleted **{name}**.")


def _cb(fn, *args) -> dict:
    """Widget keyword arguments that run `fn(*args)` as the widget's callback, errors shown as a note."""
    return {"on_change": _guard, "args": (fn, *args)}


# ------------------------------------------------------------------ the builder


def section() -> str | None:
    """The "Make a dataset" builder. Returns the chosen dataset's name once it can be trained on, else None."""
    made = list_made()
    options = [NEW, *made]
    focus = S.get("made_focus") or {}                # an image opened from Results (which chose its dataset)
    key = common.remember("made_dataset", made[-1] if made else NEW, options, url="made")
    note = S.pop("made_note", None)
    name = st.selectbox("Dataset made here", options, key=key, on_change=common.save, args=("made_dataset",),
                        help="Datasets made here are class folders under the lab home "
                             "(datasets/made/NAME/CLASS/…); they are listed by `python -m core datasets` and "
                             "kept across restarts.")
    if note:
        getattr(st, note[0])(note[1])
    if name == NEW:
        with st.form("made_new", border=False):
            st.text_input("Name", key="made_new_name", placeholder="e.g. my_gestures",
                          help="Letters, digits, '.', '_' and '-'; other characters become '_'.")
            st.form_submit_button("Make the dataset", icon=":material/create_new_folder:", on_click=_guard,
                                  args=(_create,))
        st.caption("Then add a class for each kind of thing, and images to each: upload them, or take snapshots "
                   f"with the camera. Each class needs at least {MIN_IMAGES_PER_CLASS} images to be split into "
                   "train, validation and test. " + uploads.dataset_limits())
        return None
    ds = LabDataset(name)
    counts = ds.counts()
    problems = ds.problems()
    _header(ds, counts, problems)
    classes = list(counts)
    with st.form("made_class_form", border=False, clear_on_submit=False):
        c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
        c1.text_input("New class", key="made_new_class", placeholder="e.g. thumbs_up")
        c2.form_submit_button("Add class", icon=":material/add:", on_click=_guard, args=(_add_class, name),
                              width="stretch")
    if not classes:
        st.info("Add a class first (at least two: a classifier tells classes apart).")
        return None
    if focus.get("dataset") == name:
        _fix_label(ds, focus)
    cls_key = common.remember("made_class", classes[0], classes)
    cls = st.pills("Add images to", classes, key=cls_key, on_change=common.save, args=("made_class",),
                   format_func=lambda c: f"{c} ({counts[c]})") or classes[0]
    _adders(name, cls)
    for c in classes:
        _class_grid(ds, c, classes, counts[c])
    return None if problems else name


def _header(ds: LabDataset, counts: dict[str, int], problems: list[str]) -> None:
    with st.container(border=True):
        top = st.container(horizontal=True, vertical_alignment="center", gap="medium")
        top.metric("Classes", len(counts), width="content")
        top.metric("Images", sum(counts.values()), width="content")
        if top.button("Train on it", icon=":material/model_training:", type="primary", disabled=bool(problems),
                     key="made_train", help="Opens the Train page with this dataset chosen."
                     if not problems else "Not yet: " + "; ".join(problems)):
            S["dataset"] = S["train_dataset"] = ds.name
            st.switch_page("pages/2_Train.py", query_params={"dataset": ds.name})
        with top.popover("Delete dataset", icon=":material/delete:"):
            sure = st.checkbox(f"Yes, delete {ds.name} and its {sum(counts.values())} images", key="made_del_ok")
            st.button("Delete", type="primary", disabled=not sure, key="made_del", on_click=_guard,
                      args=(_delete_dataset, ds.name))
        for p in problems:
            st.warning(f"**Not ready to train:** {p}.", icon=":material/warning:")
        if not problems:
            st.success(f"Ready to train: {len(counts)} classes, each with at least {MIN_IMAGES_PER_CLASS} images.",
                       icon=":material/task_alt:")


ADD_WAYS = ["Upload images", "Camera"]


def _adders(name: str, cls: str) -> None:
    way = st.segmented_control("Add by", ADD_WAYS, key=common.remember("made_way", ADD_WAYS[0], ADD_WAYS),
                               on_change=common.save, args=("made_way",), label_visibility="collapsed",
                               format_func=lambda w: f":material/{'upload' if w == ADD_WAYS[0] else 'photo_camera'}: {w}")
    if way == "Camera":
        key = f"made_cam_{S.get('made_cam_n', 0)}"
        st.camera_input(f"Snapshots into {cls}: each photo you take is added at once", key=key, resolution="480p",
                        width=CAMERA_WIDTH, **_cb(_snapshot, name, cls, key))
    else:
        key = f"made_up_{S.get('made_upload_n', 0)}"
        st.file_uploader(f"Images for {cls}", type=sorted(s.lstrip(".") for s in IMAGE_SUFFIXES),
                         accept_multiple_files=True, key=key, max_upload_size=uploads.upload_limit_mb(),
                         **_cb(_uploaded, name, cls, key))


def _class_grid(ds: LabDataset, cls: str, classes: list[str], n: int) -> None:
    files = ds.images(cls)[::-1]                   # newest first
    with st.container(border=True):
        head = st.container(horizontal=True, vertical_alignment="center")
        short = MIN_IMAGES_PER_CLASS - n
        head.markdown(f"**{cls}** · {n} image{'s' if n != 1 else ''}"
                      + (f" · :orange[{short} more needed to split it]" if short > 0 else ""))
        with head.popover("Class", icon=":material/edit:"):
            rk = f"made_ren_{cls}"
            st.text_input("Rename to", value=cls, key=rk, **_cb(_rename, ds.name, cls, rk))
            sure = st.checkbox(f"Yes, delete {cls} and its {n} images", key=f"made_delc_ok_{cls}")
            st.button("Delete class", disabled=not sure, key=f"made_delc_{cls}", on_click=_guard,
                      args=(_delete_class, ds.name, cls))
        if not files:
            st.caption("No images yet.")
            return
        show_all = len(files) > SHOW and st.toggle(f"Show all {len(files)}", key=f"made_all_{cls}")
        grid = st.container(horizontal=True, gap="small")
        for f in files if show_all else files[:SHOW]:
            with grid.container(width=THUMB, gap=None):
                _tile(ds, cls, f, classes)


def _tile(ds: LabDataset, cls: str, file: str, classes: list[str]) -> None:
    p = ds.path / cls / file
    try:
        st.image(_thumb(str(p), p.stat().st_mtime_ns), width=THUMB)
    except (LabError, OSError):
        st.caption("unreadable")
    with st.popover("", icon=":material/more_horiz:", width="stretch", help=file):
        st.caption(file)
        mk = f"made_mv_{cls}/{file}"
        st.selectbox("Move to", [c for c in classes if c != cls], index=None, key=mk, placeholder="another class",
                     **_cb(_move, ds.name, cls, file, mk))
        st.button("Remove", icon=":material/delete:", key=f"made_rm_{cls}/{file}", on_click=_guard,
                  args=(_remove, ds.name, cls, file))


def _fix_label(ds: LabDataset, focus: dict) -> None:
    """The image opened from Results: shown first, with its class and a move to the right one."""
    with st.container(border=True):
        where = ds.locate(focus.get("id", ""))
        if where is None:
            st.info(f"`{focus.get('id')}` from the run's test split is no longer in {ds.name} (moved or removed).")
        else:
            cls, file = where
            st.markdown(f"**Fix a label.** Results: true class **{cls}**, predicted **{focus.get('pred', '?')}**.")
            c1, c2 = st.columns([1, 3])
            p = ds.path / cls / file
            c1.image(_thumb(str(p), p.stat().st_mtime_ns), width=2 * THUMB, caption=file)
            mk = f"made_fix_{cls}/{file}"
            c2.selectbox(f"It is not **{cls}**? Move it to", [c for c in ds.classes() if c != cls], index=None,
                         key=mk, placeholder="the right class", **_cb(_move, ds.name, cls, file, mk))
        if st.button("Done", key="made_fix_done"):
            S["made_focus"] = None
            st.rerun()


# ------------------------------------------------------------------ Results: misclassified images


def editable(dataset: str | None) -> bool:
    return bool(dataset) and dataset in list_made()


def misclassified(dataset: str, wrong: list[dict], limit: int = 24) -> None:
    """A run's misclassified test images of a dataset made here, read from the dataset as it is now, each with a
    button that opens it on the Data page to fix its label."""
    ds = LabDataset(dataset)
    grid = st.container(horizontal=True, gap="small")
    gone = 0
    for k, item in enumerate(wrong[:limit]):
        where = ds.locate(item.get("id", ""))
        if where is None:
            gone += 1
            continue
        p = ds.path.joinpath(*where)
        with grid.container(width=THUMB + 14, gap=None):
            conf = item.get("confidence")
            st.image(_thumb(str(p), p.stat().st_mtime_ns), width=THUMB,
                     caption=f"{Path(where[1]).stem[:14]}" + (f" · {conf:.0%}" if conf is not None else ""))
            if st.button("Fix label", key=f"fix_{k}_{item.get('id')}", icon=":material/edit:", width="stretch",
                         help=f"Open {item.get('id')} in {dataset} on the Data page, to move it to its class"):
                S["made_focus"] = {"dataset": dataset, "id": item.get("id"), "pred": item.get("pred")}
                S["data_source"], S["made_dataset"] = SOURCE, dataset
                st.switch_page("pages/1_Data.py", query_params={"source": SOURCE, "made": dataset})
    if len(wrong) > limit:
        st.caption(f"… and {len(wrong) - limit} more")
    if gone:
        st.caption(f"{gone} of them {'is' if gone == 1 else 'are'} no longer where the run saw "
                   f"{'it' if gone == 1 else 'them'} (moved or removed since).")
