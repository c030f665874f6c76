"""Starting a preset (one report's recipe) as grouped background jobs, from Home or the Train page."""
from __future__ import annotations

import streamlit as st

from ui import common


def starter(prefix: str) -> list[str] | None:
    """Preset choice, quick toggle, the plan for this machine and a Start button; returns the queued job ids."""
    presets = common.presets_info()
    if not presets:
        return None
    names = list(presets)

    def w(key: str, default, options: list | None = None) -> dict:
        return {"key": common.remember(f"{prefix}_{key}", default, options), "on_change": common.save,
                "args": (f"{prefix}_{key}",)}

    a, b, c = st.columns([3, 1.2, 1.3], vertical_alignment="bottom")
    name = a.selectbox("Preset", names, format_func=lambda n: presets[n], **w("preset", names[0], names))
    quick = b.toggle("Quick version", **w("preset_quick", True),
                     help="Smaller inputs and fewer fine-tuning epochs: minutes instead of much longer.")
    plan = common.preset_plan(name, bool(quick))
    start = c.button("Start preset", icon=":material/play_arrow:", width="stretch", key=f"{prefix}_start",
                     disabled=not plan.get("runnable", True))
    st.markdown(plan.get("summary") or plan.get("description", ""))
    with st.expander("Details: what exactly runs here, and why", icon=":material/info:"):
        if plan.get("report"):
            st.caption(f"**The report ({plan.get('report_title', name)}):** {plan['report']}.")
        st.caption("  \n".join(f"• {m}" for m in plan.get("messages", [])))
    if not start:
        return None
    from core.errors import LabError
    from core.jobs import submit_preset
    try:
        out = submit_preset(name, quick=bool(quick))
    except LabError as e:
        st.error(f"**Cannot start this preset:** {e}")
        return None
    st.session_state["job_id"] = out["jobs"][0]
    st.session_state["train_flash"] = (f"Queued {len(out['jobs'])} job(s) for the preset {name} "
                                       f"(group {out['group']}).")
    return out["jobs"]
