"""Results: runs, learning curves, the variant comparison, confusion matrices with the misclassified images."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.evaluation.compare import confusion_pairs, misclassified_for
from core.evaluation import energy
from ui import common, energy_view, run_views

common.page("Results", ":material/insights:", "Every run, and for one run: how it learned, what compression did to it, and where it errs.")

S = st.session_state
runs = common.runs()
if not runs:
    st.info("No runs yet: start one on the Train page.")
    st.page_link("pages/2_Train.py", label="Go to Train", icon=":material/model_training:")
    st.stop()

# ------------------------------------------------------------------ runs table and choice
with st.expander(f"All runs ({len(runs)})", expanded=True):
    st.dataframe(pd.DataFrame([{"run": r["id"], "name": (r.get("summary") or {}).get("name") or "",
                                "status": r["status"], "dataset": common.dataset_label(r["dataset"]),
                                "backbone": r["backbone"], "mode": r["mode"], "size": r["image_size"],
                                "accuracy": r["test_accuracy"], "macro-F1": r["macro_f1"],
                                "train time (s)": r["train_seconds"], "date": common.fmt_time(r["created"])}
                               for r in runs]),
                 hide_index=True, width="stretch",
                 column_config={"accuracy": st.column_config.NumberColumn(format="percent"),
                                "macro-F1": st.column_config.NumberColumn(format="%.3f")})

ids = [r["id"] for r in runs]
by_id = {r["id"]: r for r in runs}
default = S.get("run_id") if S.get("run_id") in by_id else common.default_run(runs)
run_id = st.selectbox("Run", ids, format_func=lambda i: common.run_label(by_id[i]),
                      key=common.remember("run_id", default, ids), on_change=common.save, args=("run_id",))
S["run_id"] = run_id

try:
    stamp = common.run_stamp(run_id)         # the key of every figure and table of this run (ui/run_views.py)
    rep = common.run_report(run_id, stamp)
except Exception as e:  # noqa: BLE001
    st.error(f"Cannot read run {run_id}: {e}")
    st.stop()

if not rep.finished:
    st.markdown(f"Status: {common.status_badge(rep.status)}")
    if rep.status in ("running", "created"):
        st.info("This run is still training; its results appear here when it is done.")
        st.page_link("pages/2_Train.py", label="Watch it on the Train page", icon=":material/model_training:")
    else:
        st.error(f"This run has no results ({rep.status}){': ' + rep.error if rep.error else ''}")
    st.stop()

cfg, run = rep.config, rep.run
head = cfg.get("head") or {}
st.markdown(f"{common.status_badge(rep.status)} &nbsp; **{common.dataset_label(cfg.get('dataset'))}** · "
            f"{cfg.get('backbone')} · {cfg.get('image_size')} px · {cfg.get('mode')} · head: {head.get('pooling')} pooling"
            f"{', dense ' + '-'.join(map(str, head.get('dense') or [])) if head.get('dense') else ''}, dropout "
            f"{head.get('dropout')} · features from {common.taps_label(run.get('taps'))} · weights: {run.get('weights', '?')}")
if (fit := run.get("head_fit") or {}).get("C") is not None:
    st.caption(f"Head: {fit['fit']}, C = {fit['C']:g} chosen by {fit['chosen_by']}, fitted on {fit['fitted_on']}.")
if (fit.get("small_data_note")):
    st.info(f"**Small data:** {fit['small_data_note']}.")
region = S.get("carbon_region") if S.get("carbon_region") in energy.CARBON_INTENSITY else energy.region()
train_e = rep.train_energy
m = st.columns(7)
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
m[6].metric("Variants", len(rep.variants))
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
    st.dataframe(shown.style.apply(lambda _: css, axis=None), hide_index=True, width="stretch")
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
        st.dataframe(stages, hide_index=True, width="stretch")
    made = [v for v in rep.variants if v.get("compress_energy")]
    if made:
        st.markdown("**Compression steps**")
        st.dataframe(pd.DataFrame([{"variant": v["name"], "time": common.fmt_secs(v.get("build_seconds")),
                                    "energy": common.fmt_energy(v["compress_energy"].get("joules")),
                                    "CO2e": common.fmt_co2(energy.co2e_g(v["compress_energy"].get("kwh", 0.0), region)),
                                    "method": v["compress_energy"].get("method", "")} for v in made]),
                     hide_index=True, width="stretch")

# ------------------------------------------------------------------ confusion matrix
with t_cm:
    names = [v["name"] for v in rep.variants if v.get("confusion_matrix")]
    if not names:
        st.caption("No confusion matrix stored.")
    else:
        a, b = st.columns([2, 2])
        vname = a.selectbox("Variant", names, key=common.remember("cm_variant", names[0], names),
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
        pick = st.selectbox("Variant ", vnames, key=common.remember("pc_variant", vnames[0], vnames),
                            on_change=common.save, args=("pc_variant",))
        sub = pc[pc["variant"] == pick].drop(columns=["variant"])
        st.dataframe(sub, hide_index=True, width="stretch",
                     column_config={k: st.column_config.ProgressColumn(k, format="%.3f", min_value=0.0, max_value=1.0)
                                    for k in ("precision", "recall", "f1")}
                     | {"support": st.column_config.NumberColumn("support (test images)", format="%d")})
        if len(vnames) > 1:
            wide = pc.pivot(index="class", columns="variant", values="f1")[vnames]
            st.markdown("**F1 per class and variant**")
            st.dataframe(wide.round(3), width="stretch")

# ------------------------------------------------------------------ downloads
with t_dl:
    st.markdown("**Metrics**")
    d = st.columns(4)
    texts = run_views.download_texts(run_id, stamp, region)     # built once per run; sent only when clicked
    d[0].download_button("Comparison (CSV)", (lambda t=texts["variants"]: t), f"{run_id}-variants.csv", "text/csv",
                         icon=":material/download:")
    d[1].download_button("Per-class (CSV)", (lambda t=texts["per_class"]: t), f"{run_id}-per-class.csv", "text/csv",
                         icon=":material/download:")
    d[2].download_button("Everything (JSON)", (lambda t=texts["json"]: t), f"{run_id}-metrics.json",
                         "application/json", icon=":material/download:")
    d[3].download_button("Learning curves (CSV)", (lambda t=texts["history"]: t), f"{run_id}-history.csv",
                         "text/csv", icon=":material/download:")
    st.markdown("**A bundle that runs elsewhere**")
    st.caption("One ZIP per variant: the model (TFLite variants take plain RGB pixels: the preprocessing is inside), "
               "labels.txt, metadata.json (input size, colour order, the exact preprocessing, class names, the "
               "accuracy, size and latency measured here), a README and predict.py, which needs only ai-edge-litert, "
               "numpy and pillow. The same as `python -m core export RUN_ID --variant NAME --out FILE.zip`.")
    names = [v["name"] for v in rep.variants if v.get("files") or v["name"] == "original"]
    a, b = st.columns([3, 2], vertical_alignment="bottom")
    pick = a.selectbox("Variant to export", names, index=names.index("tflite_int8") if "tflite_int8" in names else 0,
                       key="export_variant")
    bundle = rep.folder / "exports" / f"{pick}.zip"
    if not bundle.is_file() and b.button("Build the bundle", icon=":material/package_2:", width="stretch"):
        from core.errors import LabError
        from core.export import export_bundle
        try:
            with st.spinner(f"Exporting {pick} (a TFLite variant is converted again with its preprocessing inside)…"):
                export_bundle(run_id, pick, bundle)
        except LabError as e:
            st.error(f"**Cannot export {pick}:** {e}")
    if bundle.is_file():
        b.download_button(f"Download {pick}.zip", bundle.read_bytes(), f"{run_id}-{pick}.zip", "application/zip",
                          key=f"bundle-{pick}", icon=":material/download:", width="stretch")
    st.markdown("**Model files**")
    files = rep.files()
    if not files:
        st.caption("No model files found in the run folder.")
    for i, f in enumerate(files):
        rel = str(f.relative_to(rep.folder))
        a, b = st.columns([4, 1], vertical_alignment="center")
        a.markdown(f"`{rel}` · {common.fmt_bytes(f.stat().st_size)}")
        b.download_button("Download", (lambda p=f: p.read_bytes()), f"{run_id}-{rel.replace('/', '-')}",
                          "application/json" if f.suffix == ".json" else "application/octet-stream",
                          key=f"dl-{i}", icon=":material/download:", width="stretch")
    st.caption(f"Run folder: `{rep.folder}`")
