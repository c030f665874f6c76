"""Train: configure a run, start it as a background job, watch it live, cancel it; the queue of jobs."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.training.head_fit import SMALL_PER_CLASS
from ui import common, presets_view, sweep_view
from ui.jobs_view import live_jobs_section

common.page("Train", ":material/model_training:", "Training runs as a background job: refresh or leave the page at any time, "
            "the job goes on and this page picks it up again.")

S = st.session_state
SIZES = [16, 24, 32, 48, 64, 96, 128, 160, 192, 224, 256, 299]
HEAVY = ("pruning", "clustering", "qat", "pqat", "pruning_int8", "clustering_int8")
LRS = [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]


def w(key: str, default, options: list | None = None) -> dict:
    """Keyword arguments that make a widget remember its value across pages (session state) and refreshes (the
    page's URL keeps every choice that is not the default, e.g. ?comp_mode=Quick&size=64)."""
    return {"key": common.remember(f"train_{key}", default, options, url=key), "on_change": common.save,
            "args": (f"train_{key}",)}


infos = {d["name"]: d for d in common.datasets_info()}
backbones = {b["name"]: b for b in common.backbones_info()}
techniques, default_techniques, tech_error = common.techniques_info()

if common.presets_info():
    with st.expander("Reproduce a report: start a preset", icon=":material/playlist_play:"):
        if presets_view.starter("train"):
            st.rerun()

with st.expander("Sweep: a grid of runs, compared on one trade-off chart", icon=":material/grid_view:"):
    sweep_view.train_section(techniques)

with st.container(border=True):
    st.markdown("#### New run")
    c1, c2, c3 = st.columns(3, gap="large")
    with c1:
        st.markdown("**Data and backbone**")
        ds_options = list(infos)
        chosen = S.get("dataset")
        if chosen and chosen not in ds_options:
            ds_options.append(chosen)
        from_url = st.query_params.get("dataset")     # a refreshed page names the user's data by its path
        if from_url and from_url not in ds_options and "train_dataset" not in S and "/" in from_url \
                and Path(from_url).exists():
            ds_options.append(from_url)
        default_ds = chosen if chosen in ds_options else ds_options[0]
        dataset = st.selectbox("Dataset", ds_options, **w("dataset", default_ds, ds_options),
                               format_func=lambda n: (f"{infos[n]['title']} ({n})" if infos[n]["available"] else
                                                      f"{infos[n]['title']} ({n}) · not on this machine") if n in infos
                               else f"{common.dataset_label(n)} (your data)",
                               help="Datasets marked \"not on this machine\" cannot be trained on until you place "
                                    "them (the message below says how). Choose or upload other data on the Data page.")
        unavailable = dataset in infos and not infos[dataset]["available"]
        if unavailable:
            st.error(f"**{infos[dataset]['title']} is not on this machine**, so it cannot be trained on here: "
                     f"{infos[dataset]['availability']}", icon=":material/block:")
        if dataset not in infos:                     # the user's data: say when it is small, and what the lab does
            counts = common.check_report(dataset).get("counts") or {}
            if counts and (smallest := min(counts.values())) * 0.7 < SMALL_PER_CLASS:
                st.info(f"**Small data:** {smallest} images in the smallest class, so about {int(smallest * 0.7)} "
                        f"to train on (under {SMALL_PER_CLASS}). The lab then chooses the head's regularisation "
                        "(and, on Auto, the feature depth) by cross-validation on the training and validation "
                        "images and fits the head on both; expect the result to vary with the seed. More images "
                        "help most.")
        names = list(backbones)
        default_bb = next((n for n, b in backbones.items() if b["default"]), names[0])
        backbone = st.selectbox(
            "Backbone", names, **w("backbone", default_bb, names),
            format_func=lambda n: f"{backbones[n]['title']}  ·  "
                                  f"{'ImageNet weights ✓' if backbones[n]['pretrained'] else ('no weights needed' if backbones[n]['weights'] == 'none' else 'random weights only')}")
        b = backbones[backbone]
        if b["pretrained"]:
            st.caption(f":green[ImageNet weights available] · {b['weights_source']}")
        elif b["weights"] == "none":
            st.caption(b["weights_source"])
        else:
            st.caption(f":orange[No ImageNet weights here]: {b['weights_source']}")
        random_weights = b["weights"] == "random"
        sizes = [s for s in SIZES if s >= b["min_size"]]
        image_size = st.select_slider("Input size (px)", sizes, **w("size", 96 if 96 in sizes else sizes[0], sizes),
                                      help=f"{b['title']} was trained at {b['default_size']} px; smaller is much "
                                           "faster on a CPU and usually good enough for small images.")
    with c2:
        st.markdown("**Head**")
        pooling = st.selectbox("Pooling", ["avg", "max", "flatten"], **w("pooling", "avg", ["avg", "max", "flatten"]),
                               help="How the backbone's feature map becomes a vector.")
        tap_labels = {"auto": "Auto (chosen on validation)", "last": "Last layer", "multi": "Several depths"}
        taps = st.radio("Features from", list(tap_labels), format_func=tap_labels.get, horizontal=True,
                        **w("taps", "auto", list(tap_labels)), disabled=pooling == "flatten" or not b["taps"],
                        help="The last layer knows objects; earlier layers keep colour and texture. Several depths "
                             "pools the end of each stage and concatenates them. Auto fits both and keeps the one "
                             "that classifies the validation split better.")
        dense_text = st.text_input("Hidden layers", **w("dense", ""), placeholder="e.g. 128, 64  (empty: none)",
                                   help="Sizes of dense layers between the features and the classifier.")
        dropout = st.slider("Dropout", 0.0, 0.8, step=0.05, **w("dropout", 0.2))
        mode_labels = {"feature-extraction": "Feature extraction (frozen backbone)",
                       "full": "Full training (all layers)"}
        mode = st.radio("Mode", list(mode_labels), format_func=mode_labels.get,
                        **w("mode", "feature-extraction", list(mode_labels)),
                        help="Feature extraction trains only the head on cached features: seconds per epoch.")
    with c3:
        st.markdown("**Training**")
        a, bcol = st.columns(2)
        epochs = a.number_input("Max epochs", 1, 500, step=1, **w("epochs", 10),
                                help="A maximum. With no hidden layers the head is a logistic regression fitted to "
                                     "convergence (epochs do not apply); deeper heads stop when validation loss "
                                     "stalls and keep their best epoch.")
        batch = bcol.select_slider("Batch size", [8, 16, 32, 64, 128, 256], **w("batch", 32, [8, 16, 32, 64, 128, 256]))
        a, bcol = st.columns(2)
        optimizer = a.selectbox("Optimizer", ["adam", "sgd", "rmsprop"], **w("optimizer", "adam", ["adam", "sgd", "rmsprop"]))
        lr = bcol.select_slider("Learning rate", LRS, format_func=lambda v: f"{v:g}", **w("lr", 1e-3, LRS))
        early = st.toggle("Early stopping on validation loss", **w("early", False))
        fine_tune = st.toggle("Then fine-tune the top layers", **w("fine_tune", False),
                              disabled=not b["pretrained"] or mode == "full",
                              help="After the head is trained, unfreeze the top backbone layers and train on, "
                                   "with a 10x smaller learning rate.")
        if early:
            patience = st.number_input("Patience (epochs)", 1, 50, **w("patience", 3))
        ft_at, ft_epochs, ft_lr = None, 0, None
        if fine_tune and b["pretrained"] and mode != "full":
            a, bcol = st.columns(2)
            ft_top = a.number_input("Unfreeze top layers", 1, 300, **w("ft_top", 20),
                                    help="The top K backbone layers are trained (BatchNorm stays frozen).")
            ft_epochs = bcol.number_input("Fine-tune epochs", 1, 100, **w("ft_epochs", 3))
            ft_at = -int(ft_top)
            ft_lr = lr / 10

    with st.expander("Augmentation and seed"):
        a, bcol, c, d = st.columns(4)
        flip = a.checkbox("Random flips", **w("flip", False), help="Augmentation turns feature caching off (slower).")
        rotation = bcol.slider("Rotation (fraction of a turn)", 0.0, 0.5, step=0.05, **w("rotation", 0.0))
        zoom = c.slider("Zoom", 0.0, 0.5, step=0.05, **w("zoom", 0.0))
        seed = d.number_input("Seed", 0, 10_000, **w("seed", 0))

    st.markdown("**Compression after training**")
    comp_options: dict = {}
    chosen_t: list[str] = []
    if techniques:
        tnames = [t["name"] for t in techniques]
        titles = {t["name"]: t["title"] for t in techniques}
        from core.compression.sets import QUICK_TECHNIQUES
        quick = [t for t in QUICK_TECHNIQUES if t in tnames]
        modes = {"Standard": "the lab's default set", "Quick": "TFLite conversions only",
                 "Custom": "choose techniques", "None": "no compression"}
        comp_mode = st.segmented_control("Compression set", list(modes), **w("comp_mode", "Standard", list(modes)),
                                         format_func=lambda m: m, label_visibility="collapsed") or "Standard"
        if comp_mode == "Standard":
            chosen_t = list(default_techniques)
        elif comp_mode == "Quick":
            chosen_t = quick
        elif comp_mode == "Custom":
            chosen_t = st.multiselect("Techniques", tnames, format_func=lambda n: titles.get(n, n),
                                      **w("techniques", default_techniques, None),
                                      help="Each technique makes one model variant; Results compares them.")
        groups = {g for t in techniques if t["name"] in chosen_t for g in t["groups"]}
        defaults = common.option_defaults()
        if groups & {"pruning", "clustering"}:
            a, bcol, c, d = st.columns(4)
            if "pruning" in groups and "pruning" in defaults:
                p = defaults["pruning"]
                comp_options["pruning"] = {
                    "sparsity": a.slider("Pruning: target sparsity", 0.1, 0.95, step=0.05,
                                         **w("sparsity", float(p["sparsity"]))),
                    "epochs": int(bcol.number_input("Pruning: fine-tune epochs", 1, 30,
                                                    **w("prune_epochs", int(p["epochs"]))))}
            if "clustering" in groups and "clustering" in defaults:
                cdef = defaults["clustering"]
                opts = [4, 8, 16, 32, 64, 128]
                comp_options["clustering"] = {
                    "clusters": int(c.select_slider("Clustering: centroids", opts,
                                                    **w("clusters", int(cdef["clusters"]), opts))),
                    "epochs": int(d.number_input("Clustering: fine-tune epochs", 1, 30,
                                                 **w("cluster_epochs", int(cdef["epochs"]))))}
        if chosen_t:
            heavy = [t for t in chosen_t if t in HEAVY]
            est = 15 + 8 * (len(chosen_t) - len(heavy)) + 75 * len(heavy)
            st.caption(f"{len(chosen_t)} variant(s): {', '.join(titles.get(t, t) for t in chosen_t)}. "
                       f"Roughly {common.fmt_secs(est)} after training at 96 px on 2 cores"
                       + (f" ({', '.join(heavy)} fine-tune the whole model; the TFLite conversions take seconds)."
                          if heavy else "."))
        else:
            st.caption("No compression: Results will show the trained model only.")
    else:
        st.caption(tech_error or "No compression techniques are available.")

    acknowledged = False
    frozen_random = random_weights and mode != "full" and not ft_epochs
    if frozen_random:
        st.warning(f"**{b['title']} has no ImageNet weights here, so its weights are random.** Frozen (feature "
                   "extraction) it can only learn from random projections of the images: expect accuracy near "
                   "chance. Choose MobileNetV2, or *Full training*, or tick the box to run it anyway.",
                   icon=":material/warning:")
        acknowledged = st.checkbox("I understand: train this frozen backbone with random weights anyway",
                                   key="train_ack_random")
    blocked = unavailable or (frozen_random and not acknowledged)
    a, bcol = st.columns([3, 1], vertical_alignment="bottom")
    name = a.text_input("Run name (optional)", **w("name", ""), placeholder="e.g. shapes-baseline",
                        help="Shown on every page instead of the run's id; rename it on the Results page.")
    start = bcol.button("Start training", type="primary", icon=":material/play_arrow:", width="stretch",
                        disabled=blocked, help="Not available: see the message above." if blocked else None)

if start:
    from core import jobs
    from core.errors import LabError
    try:
        dense = [int(x) for x in dense_text.replace(",", " ").split()] if dense_text.strip() else []
    except ValueError:
        st.error(f"Hidden layers must be whole numbers separated by commas (got '{dense_text}').")
        st.stop()
    cfg = {"dataset": dataset, "backbone": backbone, "image_size": int(image_size), "weights": "auto",
           "head": {"pooling": pooling, "dense": dense, "dropout": float(dropout),
                    "taps": taps if pooling != "flatten" else "last"}, "mode": mode,
           "epochs": int(epochs), "batch_size": int(batch), "optimizer": optimizer, "learning_rate": float(lr),
           "early_stopping": {"monitor": "val_loss", "patience": int(patience)} if early else None,
           "fine_tune_at": ft_at, "fine_tune_epochs": int(ft_epochs), "fine_tune_lr": ft_lr,
           "augment": {"flip": bool(flip), "rotation": float(rotation), "zoom": float(zoom)}, "seed": int(seed),
           "name": name.strip() or None, "allow_random_frozen": bool(acknowledged)}
    try:
        job_id = jobs.submit({"kind": "train", "config": cfg, "name": name.strip() or None,
                              "compress": {"techniques": list(chosen_t), "options": comp_options} if chosen_t else None})
    except LabError as e:
        st.error(f"**Cannot start this run:** {e}")
    else:
        S["job_id"] = job_id
        st.query_params["job"] = job_id          # this tab follows the job it started, across refreshes too
        S["train_flash"] = f"Started {job_id}: it runs in the background; you can leave this page."
        st.rerun()          # redraw everything (the sidebar too) with the new job

if S.get("train_flash"):
    st.toast(S.pop("train_flash"), icon=":material/rocket_launch:")

st.markdown("#### Jobs")
live_jobs_section()
