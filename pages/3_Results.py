"""Results: runs, learning curves, the variant comparison, confusion matrices with the misclassified images."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.evaluation.compare import COLUMNS, cell_note, compressed_count, confusion_pairs, misclassified_for, variant_notes
from core.evaluation import energy
from core.data.datasets import DATASETS
from ui import builder, common, energy_view, run_views, sweep_view

common.page("Results", ":material/insights:", "Every run, and for one run: how it learned, what compression did to it, and where it errs.")

S = st.session_state
runs = common.runs()
if not runs:
    st.info("No runs yet: start one on the Train page.")
    st.page_link("pages/2_Train.py", label="Go to Train", icon=":material/model_training:")
    st.stop()

# ------------------------------------------------------------------ runs table and choice
SHOWN_RUNS = 40
with st.expander(f"All runs ({len(runs)})", expanded=len(runs) <= 10):
    # a list, not a wide table, so it wraps on a phone; each run by its name, a link to it (?run=ID, shareable)
    for r in runs[:SHOWN_RUNS]:
        st.page_link("pages/3_Results.py", label=f"**{r['label']}**", icon=common.STATUS_ICONS.get(r["status"]),
                     query_params={"run": r["id"]}, help=f"Open run {r['id']} (a link you can share)")
        st.caption(common.run_facts(r))
    if len(runs) > SHOWN_RUNS:
        st.caption(f"… and {len(runs) - SHOWN_RUNS} older runs: choose them in the Run list below.")

sweep_view.results_section(S.get("carbon_region") if S.get("carbon_region") in energy.CARBON_INTENSITY
                           else energy.region())

ids = [r["id"] for r in runs]
by_id = {r["id"]: r for r in runs}
picker_labels = common.run_labels(runs)
default = S.get("run_id") if S.get("run_id") in by_id else common.default_run(runs)
pick_col, rename_col, delete_col = st.columns([4, 1, 1], vertical_alignment="bottom")
run_id = pick_col.selectbox("Run", ids, format_func=picker_labels.get,
                            key=common.remember("run_id", default, ids, url="run", url_always=True),
                            on_change=common.save, args=("run_id",))
S["run_id"] = run_id
row = by_id[run_id]
status = row["status"]                 # the status of the job that made the run (core.jobs.list_runs)


def _rename(run_id: str) -> None:
    from core import jobs
    from core.errors import LabError
    try:
        name = jobs.rename_run(run_id, S.get(f"rename_{run_id}", ""))
        st.toast(f"Renamed: {name}" if name else "Name cleared", icon=":material/edit:")
    except LabError as e:
        S["results_flash"] = ("error", f"Cannot rename: {e}")


def _delete(run_id: str, label: str) -> None:
    from core import jobs
    from core.errors import LabError
    try:
        jobs.delete_run(run_id)
    except LabError as e:
        S["results_flash"] = ("error", f"Cannot delete: {e}")
        return
    S.pop("run_id", None)
    S.pop("w_run_id", None)
    if "run" in st.query_params:
        del st.query_params["run"]
    S["results_flash"] = ("success", f"Deleted {label}: its folder and its rows are gone.")


with rename_col.popover("Rename", icon=":material/edit:", width="stretch"):
    st.text_input("Run name", value=row.get("name") or "", key=f"rename_{run_id}", max_chars=80,
                  placeholder=row["label"], help="Empty: the run is called by dataset, backbone, size and time.")
    st.button("Save the name", key=f"rename-btn-{run_id}", on_click=_rename, args=(run_id,), type="primary")
with delete_col.popover("Delete", icon=":material/delete:", width="stretch",
                        disabled=status in ("queued", "running", "cancelling")):
    st.markdown(f"Delete **{picker_labels[run_id]}**? Its folder (model files, variants, metrics) and its rows go; "
                "this cannot be undone.")
    st.button("Yes, delete this run", key=f"delete-btn-{run_id}", on_click=_delete, args=(run_id, picker_labels[run_id]),
              type="primary", icon=":material/delete_forever:")
if (flash := S.pop("results_flash", None)):
    (st.error if flash[0] == "error" else st.success)(flash[1])

try:
    stamp = common.run_stamp(run_id)         # the key of every figure and table of this run (ui/run_views.py)
    rep = common.run_report(run_id, stamp)
except Exception as e:  # noqa: BLE001
    st.error(f"Cannot read run {run_id}: {e}")
    st.stop()

if not rep.finished:
    st.markdown(f"Status: {common.status_badge(status)}")
    if status in ("running", "created", "queued", "cancelling"):
        st.info("This run is still training; its results appear here when it is done.")
        st.page_link("pages/2_Train.py", label="Watch it on the Train page", icon=":material/model_training:")
    else:
        st.error(f"This run has no results ({status}){': ' + (row.get('error') or rep.error) if (row.get('error') or rep.error) else ''}")
    st.stop()

cfg, run = rep.config, rep.run
head = cfg.get("head") or {}
st.markdown(f"{common.status_badge(status)} &nbsp; **{row['label']}**")
if status in ("running", "cancelling", "queued"):
    st.info(f"**This run's job is {status}**: training has finished, so the trained model is shown; the "
            "compressed variants appear here as they are built.", icon=":material/autorenew:")
elif status != "done":
    why = row.get("error") or rep.error or status
    st.warning(f"**This run's job {'was cancelled' if status == 'cancelled' else status}** ({why}). Training had "
               f"finished, so the trained model is shown with the {compressed_count(rep.variants)} compressed "
               "variant(s) built before the job stopped.", icon=":material/cancel:")
st.caption(f"**{common.dataset_label(cfg.get('dataset'))}** · "
            f"{cfg.get('backbone')} · {cfg.get('image_size')} px · {cfg.get('mode')} · head: {head.get('pooling')} pooling"
            f"{', dense ' + '-'.join(map(str, head.get('dense') or [])) if head.get('dense') else ''}, dropout "
            f"{head.get('dropout')} · features from {common.taps_label(run.get('taps'))} · weights: {run.get('weights', '?')}")
if (fit := run.get("head_fit") or {}).get("C") is not None:
    st.caption(f"Head: {fit['fit']}, C = {fit['C']:g} chosen by {fit['chosen_by']}, fitted on {fit['fitted_on']}.")
if (fit.get("small_data_note")):
    st.info(f"**Small data:** {fit['small_data_note']}.")
region = S.get("carbon_region") if S.get("carbon_region") in energy.CARBON_INTENSITY else energy.region()
train_e = rep.train_energy
m = st.columns(4) + st.columns(4)[:3]          # two rows: seven figures do not fit one row of a laptop screen
m[0].metric("Test accuracy", common.fmt_pct(rep.metrics.get("accuracy")))
m[1].metric("Macro-F1", f"{rep.metrics.get('macro_f1', 0):.3f}")
m[2].metric("Test images", rep.metrics.get("num", "–"))
m[3].metric("Epochs", "converged" if (run.get("head_fit") or {}).get("C") is not None and not run.get(
    "fine_tune_start_epoch") else run.get("epochs_run", len(rep.history.get("epochs", []))),
            help="A linear head is a logistic regression fitted to convergence: it has no epochs.")
m[4].metric("Training time", common.fmt_secs(run.get("train_seconds")))
m[5].metric("Training energy", common.fmt_energy(train_e.get("joules")),
            help=(f"{common.fmt_co2(energy.co2e_g(train_e['kwh'], region))} CO2e "
                  f"({energy.CARBON_INTENSITY[region][0]}); {train_e.get('method', '')}. See the Energy tab.")
            if train_e else "Not metered (a run from before energy metering).")
m[6].metric("Compressed variants", compressed_count(rep.variants),
            help="Models made from the trained one by the compression techniques (the original is not counted).")
if run.get("warnings"):
    for wmsg in run["warnings"]:
        st.warning(wmsg)

rows = run_views.table_rows(run_id, stamp, region)
t_curves, t_compare, t_energy, t_cm, t_class, t_dl = st.tabs(["Learning curves", "Compare variants", "Energy",
                                                              "Confusion matrix", "Per-class report", "Downloads"])

# ------------------------------------------------------------------ learning curves
with t_curves:
    fig = run_views.curves_figure(run_id, stamp)
    if fig is not None:
        ft = rep.history.get("fine_tune_start_epoch")
        st.plotly_chart(fig, config={"displayModeBar": False}, key="curves")
        st.caption("Solid: training; dashed: validation." + (f" Fine-tuning starts after epoch {ft}." if ft else ""))
    else:
        st.caption("No learning curves stored for this run.")

# ------------------------------------------------------------------ comparison
with t_compare:
    if len(rows) == 1:
        st.info("This run has no compressed variants yet (choose compression techniques on the Train page).")
    shown, css = run_views.compare_table(run_id, stamp, region)
    labels = {c.key: c.label for c in COLUMNS}
    groups = [("Accuracy", ["test_accuracy", "check_accuracy", "agreement"]),
              ("Size", ["size_bytes", "gzip_bytes", "sparsity"]),
              ("Speed", ["latency_ms_p50", "latency_ms_p95", "throughput_ips"]),
              ("Energy use", ["energy_to_make_j", "energy_per_1000_j"]), ("CO2e", ["co2e_to_make_g", "co2e_per_1000_g"]),
              ("F1 · ECE", ["macro_f1", "ece", "ece_calibrated"])]
    for tab, (_, keys) in zip(st.tabs([g for g, _ in groups]), groups):   # a few columns each: fits a phone too
        cols = [labels["name"]] + [labels[k] for k in keys if labels[k] in shown.columns]
        with tab:
            st.dataframe(shown[cols].style.apply(lambda _, c=cols: css[c], axis=None), hide_index=True, width="stretch",
                         column_config={labels["name"]: st.column_config.TextColumn(pinned=True)})
    notes = variant_notes(rows)
    if (odd := {n: why for n, why in notes.items() if n != "original"}):
        st.markdown("**Why some figures go against intuition**  \n"
                    + "  \n".join(f":material/info: **{n}**: {why}." for n, why in odd.items()))
    if "original" in notes:
        st.caption(f"**original**: {notes['original']}.")
    cal_notes: dict[str, list[str]] = {}            # note -> the variants it concerns
    for v in rep.variants:
        if v.get("calibration_note"):
            cal_notes.setdefault(v["calibration_note"], []).append(v["name"])
    st.caption("★ and green: the best value of each column (higher accuracy, F1, throughput, sparsity and agreement; "
               "lower size, latency, energy and ECE). Agreement: share of test images where the variant's top-1 "
               f"equals the original's. Energy: {train_e.get('method') or 'not metered'}; CO2e for "
               f"{energy.CARBON_INTENSITY[region][0]} (the Energy tab explains both).")
    st.caption("ECE (expected calibration error): how far a variant's confidence is from how often it is right, "
               "averaged over 10 confidence bins of the test images (0: its 80%-sure answers are right 80% of the "
               "time). Calibrated: after temperature scaling fitted on the validation images, which the Predict "
               "page applies." + "".join(f" {', '.join(names)}: {note}." for note, names in cal_notes.items()))
    ca, cb = st.columns(2)
    size_fig, latency_fig = run_views.pareto_figures(run_id, stamp, region)
    with ca:
        st.plotly_chart(size_fig, config={"displayModeBar": False}, key="pareto-size")
    with cb:
        if latency_fig is not None:
            st.plotly_chart(latency_fig, config={"displayModeBar": False}, key="pareto-latency")
        else:
            st.caption("No latency measured yet (compression measures it for every variant).")
    st.caption("Stars and the dashed line: the Pareto front, the variants that no other variant beats on both axes.")
    check = common.check_set_table(run_id)
    if check is not None:
        table, note = check
        st.markdown("**Check set**: real photos the model never saw in training. The drop from the test split is "
                    "the domain shift.")
        st.dataframe(table, hide_index=True, width="stretch")
        st.caption(f"{note}. Grey and silver count as right when named either. "
                   f"`python -m core check-set {run_id}` lists each photo.")

# ------------------------------------------------------------------ energy
with t_energy:
    left, right = st.columns([3, 2], gap="large")
    with right:
        region = energy_view.region_picker()
        with st.expander("What do these numbers mean?", expanded=False):
            energy_view.explain()
    with left:
        axes = {"per 1,000 predictions": "energy_per_1000_j",
                "per 1,000 predictions one at a time": "energy_per_1000_single_j",
                "to make the variant": "energy_to_make_j"}
        axis = st.radio("Energy axis", list(axes), horizontal=True,
                        key=common.remember("energy_axis", "per 1,000 predictions", list(axes)),
                        on_change=common.save, args=("energy_axis",))
        key = axes[axis]
        fig = run_views.energy_figure(run_id, stamp, region, key, axis)
        if fig is not None:
            st.plotly_chart(fig, config={"displayModeBar": False}, key=f"pareto-energy-{key}")
        else:
            st.caption("No energy measured for the variants yet (compression meters every variant's inference).")
    stages = energy_view.stages_table(run, region)
    if stages is None:
        st.caption("This run was trained before energy metering: no per-stage figures.")
    else:
        st.markdown(f"**Training, stage by stage** · total {common.fmt_energy(train_e.get('joules'))}, "
                    f"{common.fmt_co2(energy.co2e_g(train_e.get('kwh', 0.0), region))} CO2e")
        st.dataframe(stages, hide_index=True, width="stretch",
                     column_config={"stage": st.column_config.TextColumn(pinned=True)})
        stage_e = list(((run.get("energy") or {}).get("stages") or {}).values())
        st.caption(f"Energy: {energy_view.methods(stage_e)}; "
                   f"{sum(e.get('cpu_seconds', 0.0) for e in stage_e):.1f} CPU-seconds in all.")
    made = [v for v in rep.variants if v.get("compress_energy")]
    if made:
        st.markdown("**Compression steps**")
        st.dataframe(pd.DataFrame([{"variant": v["name"], "time": common.fmt_secs(v.get("build_seconds")),
                                    "energy": common.fmt_energy(v["compress_energy"].get("joules")),
                                    "CO2e": common.fmt_co2(energy.co2e_g(v["compress_energy"].get("kwh", 0.0), region))}
                                   for v in made]),
                     hide_index=True, width="stretch",
                     column_config={"variant": st.column_config.TextColumn(pinned=True)})
        st.caption(f"Energy: {energy_view.methods([v['compress_energy'] for v in made])}.")

# ------------------------------------------------------------------ confusion matrix
with t_cm:
    names = [v["name"] for v in rep.variants if v.get("confusion_matrix")]
    if not names:
        st.caption("No confusion matrix stored.")
    else:
        a, b = st.columns([2, 2])
        vname = a.selectbox("Variant", names, key=common.remember("cm_variant", names[0], names, url="variant"),
                            on_change=common.save, args=("cm_variant",))
        norm_mode = b.radio("Show", ["counts", "row-normalised"], horizontal=True,
                            key=common.remember("cm_norm", "counts", ["counts", "row-normalised"]),
                            on_change=common.save, args=("cm_norm",))
        v = rep.variant(vname)
        cm = v["confusion_matrix"]
        classes = rep.class_names
        left, right = st.columns([3, 2], gap="large")
        with left:
            event = st.plotly_chart(run_views.confusion_figure(run_id, stamp, vname, norm_mode != "counts"),
                                    config={"displayModeBar": False}, key=f"cm-{vname}", on_select="rerun",
                                    selection_mode="points")
        pairs = confusion_pairs(cm, classes)
        picked = None
        try:
            pts = (event or {}).get("selection", {}).get("points", [])
            if pts:
                picked = (str(pts[0].get("y")), str(pts[0].get("x")))
        except AttributeError:
            pts = []
        if picked == S.get("cm_last_click"):
            picked = None                      # an old click still selected in the chart: the selectbox rules
        else:
            S["cm_last_click"] = picked
        with right:
            st.markdown("**Misclassified test images**")
            if picked and (why := cell_note(cm, classes, *picked)):
                st.info(f"Nothing to show for the cell you clicked: {why}."
                        + (" Below: the selected pair." if pairs else ""), icon=":material/info:")
            if not pairs:
                st.success("No test image is misclassified by this variant.")
            else:
                opts = [f"{t} → {p}" for t, p, _ in pairs]
                counts = {f"{t} → {p}": n for t, p, n in pairs}
                if picked and picked[0] != picked[1] and f"{picked[0]} → {picked[1]}" in counts:
                    st.session_state["w_cm_pair"] = f"{picked[0]} → {picked[1]}"
                    st.session_state["cm_pair"] = st.session_state["w_cm_pair"]
                else:
                    common.remember("cm_pair", opts[0], opts)
                pair = st.selectbox("True → predicted (or click a cell)", opts, key="w_cm_pair",
                                    format_func=lambda o: f"{o}  ({counts[o]} image{'s' if counts[o] > 1 else ''})",
                                    on_change=common.save, args=("cm_pair",))
                true_c, pred_c = pair.split(" → ")
                wrong = misclassified_for(v.get("misclassified") or [], true_c, pred_c)
                if builder.editable(rep.config.get("dataset")):     # made here: from disk, each can be fixed
                    builder.misclassified(rep.config["dataset"], wrong)
                else:
                    st.caption("Read-only here: " + ("a built-in dataset." if rep.config.get("dataset") in DATASETS
                               else "data given by path or ZIP (fix labels where it lives).")
                               + " Datasets made on the Data page can have their labels fixed from here.")
                    try:
                        images, ids = common.test_images(rep)       # a view: each image below is picked by index
                    except Exception as e:  # noqa: BLE001 - the data may be gone (e.g. a deleted folder)
                        images, ids = None, None
                        st.caption(f"The test images cannot be shown here: {e}")
                    shown_imgs, caps = [], []
                    pos = None
                    for item in wrong[:24]:
                        k = item.get("index")
                        if k is None or (ids is not None and k >= len(ids)):
                            if pos is None:                  # only for predictions stored without their index
                                pos = {i: n for n, i in enumerate(ids or [])}
                            k = pos.get(item.get("id"))
                        if images is not None and k is not None and k < len(images):
                            shown_imgs.append(images[k])
                            conf = item.get("confidence")
                            caps.append(f"{item.get('id', k)}" + (f" · {conf:.0%}" if conf is not None else ""))
                    if shown_imgs:
                        st.image(shown_imgs, caption=caps, width=110)
                        if len(wrong) > 24:
                            st.caption(f"… and {len(wrong) - 24} more")
                    elif images is not None:
                        st.caption(f"{len(wrong)} image(s); none could be located in the test split.")

# ------------------------------------------------------------------ per-class report
with t_class:
    pc = run_views.per_class_frame(run_id, stamp)
    if pc.empty:
        st.caption("No per-class report stored.")
    else:
        vnames = list(dict.fromkeys(pc["variant"]))
        first = S.get("cm_variant") if S.get("cm_variant") in vnames else vnames[0]
        pick = st.selectbox("Variant ", vnames, key=common.remember("pc_variant", first, vnames),
                            on_change=common.save, args=("pc_variant",))
        sub = pc[pc["variant"] == pick].drop(columns=["variant"])
        st.dataframe(sub, hide_index=True, width="stretch",           # narrow number columns: fits a phone
                     column_config={"class": st.column_config.TextColumn(pinned=True)}
                     | {k: st.column_config.NumberColumn(k, format="%.3f") for k in ("precision", "recall", "f1")}
                     | {"support": st.column_config.NumberColumn("images", format="%d",
                                                                 help="test images of the class (support)")})
        if len(vnames) > 1:
            wide = pc.pivot(index="class", columns="variant", values="f1")[vnames]
            st.markdown("**F1 per class and variant**")
            st.dataframe(wide.round(3), width="stretch",
                         column_config={"class": st.column_config.TextColumn(pinned=True)})

# ------------------------------------------------------------------ downloads
with t_dl:
    # Every download is given its bytes (no deferred callables) and does not rerun the page when clicked, so a
    # second click a moment after the first always finds its file.
    st.markdown("**Metrics**")
    d = st.columns(4)
    texts = run_views.download_texts(run_id, stamp, region)     # built once per run
    d[0].download_button("Comparison (CSV)", texts["variants"], f"{run_id}-variants.csv", "text/csv",
                         icon=":material/download:", on_click="ignore")
    d[1].download_button("Per-class (CSV)", texts["per_class"], f"{run_id}-per-class.csv", "text/csv",
                         icon=":material/download:", on_click="ignore")
    d[2].download_button("Everything (JSON)", texts["json"], f"{run_id}-metrics.json",
                         "application/json", icon=":material/download:", on_click="ignore")
    d[3].download_button("Learning curves (CSV)", texts["history"], f"{run_id}-history.csv",
                         "text/csv", icon=":material/download:", on_click="ignore")
    st.markdown("**A bundle that runs elsewhere**")
    st.caption("One ZIP per variant: the model (TFLite variants take plain RGB pixels: the preprocessing is inside), "
               "labels.txt, metadata.json (input size, colour order, the exact preprocessing, class names, the "
               "accuracy, size and latency measured here), a README and predict.py, which needs only ai-edge-litert "
               "(onnxruntime for ONNX), numpy and pillow. The same as `python -m core export RUN_ID --variant NAME "
               "--out FILE.zip [--format onnx]`.")
    names = [v["name"] for v in rep.variants if v.get("files") or v["name"] == "original"]
    a, b = st.columns([3, 2], vertical_alignment="bottom")
    first = S.get("cm_variant") if S.get("cm_variant") in names else ("tflite_int8" if "tflite_int8" in names
                                                                      else names[0])
    pick = a.selectbox("Variant to export", names, index=names.index(first), key="export_variant")
    keras_variant = pick == "original" or any(str(f).endswith(".keras") for f in
                                              next(v for v in rep.variants if v["name"] == pick).get("files") or [])
    fmt = a.radio("Format", ["native", "onnx"], horizontal=True, key="export_format",
                  format_func={"native": "TFLite / Keras (as the variant is)",
                               "onnx": "ONNX (onnxruntime, preprocessing inside)"}.get,
                  help="ONNX is offered for Keras variants (original, pruned, clustered); it is checked against "
                       "the lab's model on the test images before it is written.") if keras_variant else "native"
    stem = f"{pick}-onnx" if fmt == "onnx" else pick
    bundle = rep.folder / "exports" / f"{stem}.zip"
    if not bundle.is_file() and b.button("Build the bundle", icon=":material/package_2:", width="stretch"):
        from core.errors import LabError
        from core.export import export_bundle
        try:
            with st.spinner(f"Exporting {pick} (converted again with its preprocessing inside where it can be)…"):
                export_bundle(run_id, pick, bundle, fmt)
        except LabError as e:
            st.error(f"**Cannot export {pick}:** {e}")
    if bundle.is_file():
        b.download_button(f"Download {stem}.zip", bundle.read_bytes(), f"{run_id}-{stem}.zip", "application/zip",
                          key=f"bundle-{stem}", icon=":material/download:", width="stretch", on_click="ignore")
    st.markdown("**Model files**")
    from core.models.backbones import preprocessing_words
    size = cfg.get("image_size")
    st.caption(f"These are the lab's own files, which take the backbone's **preprocessed** input, not plain pixels: "
               f"float32 of shape (1, {size}, {size}, 3), RGB, {preprocessing_words(cfg.get('backbone', 'mlp'))}. "
               "The integer-only model (tflite_int8_io) takes that input quantised to int8 (scale and zero point "
               "are in the file). Each outputs one probability per class, in the order of labels.txt. For a model "
               "that takes plain pixels, build the bundle above.")
    files = rep.files()
    a, b, c = st.columns([3, 1.2, 1.2], vertical_alignment="bottom")
    c.download_button("labels.txt", "\n".join(rep.class_names) + "\n", f"{run_id}-labels.txt", "text/plain",
                      key="dl-labels", icon=":material/download:", width="stretch", on_click="ignore",
                      help="The class names, one a line, in the order of the model's outputs.")
    if not files:
        a.caption("No model files found in the run folder.")
    else:
        rels = {str(f.relative_to(rep.folder)): f for f in files}
        rel = a.selectbox("File", list(rels), key="dl_file",
                          format_func=lambda r: f"{r} · {common.fmt_bytes(rels[r].stat().st_size)}")
        f = rels[rel]
        b.download_button("Download", f.read_bytes(), f"{run_id}-{rel.replace('/', '-')}",
                          "application/json" if f.suffix == ".json" else "application/octet-stream",
                          key="dl-file", icon=":material/download:", width="stretch", on_click="ignore")
    st.caption(f"Run folder: `{rep.folder}`")
