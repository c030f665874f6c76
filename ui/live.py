"""The Predict page's "Live camera": streamlit-webrtc carries the webcam to the server, a core LiveClassifier answers
the newest frame with every chosen variant, and a fragment redraws the answers twice a second without a click.

Where live video cannot work (the package is missing, the lab setting `live_video` is off, the user asked for
snapshots, or the connection does not come up) the same place offers camera snapshots instead, and says why.
"""
from __future__ import annotations

import time

import streamlit as st

from core.store import settings

S = st.session_state
REFRESH_S = 0.5            # how often the answers are redrawn while the camera plays
CONNECT_TIMEOUT_S = 15     # signalling longer than this: say that it does not connect and offer snapshots
FALLBACK_KEY = "live_use_snapshots"
HOW_TO_ICE = ("On a network where the browser cannot reach the lab directly, set a STUN or TURN server in the lab "
              "setting `ice_servers` (or the environment variable LAB_ICE_SERVERS), e.g. "
              "`LAB_ICE_SERVERS=stun:stun.example.org:3478`, or a JSON list with `urls`, `username`, `credential` "
              "for TURN.")
TRANSLATIONS = {           # the component's own messages, pointing at the snapshot fallback
    "start": "Start live camera", "stop": "Stop",
    "media_api_not_available": "This browser cannot stream the camera here (it needs https or localhost): use "
                               "snapshots (button below).",
    "device_ask_permission": "Allow the camera in the browser to classify live.",
    "device_not_available": "No camera found: use snapshots (button below) or upload images.",
    "device_access_denied": "Camera access was denied: allow it in the browser, or use snapshots (button below).",
}


def unavailable() -> str | None:
    """Why live video is not offered here, or None when it is."""
    if S.get(FALLBACK_KEY):
        return "you chose snapshots"
    if not settings.live_video():
        return "live video is switched off in the lab settings (`live_video`, env LAB_LIVE_VIDEO)"
    try:
        import streamlit_webrtc  # noqa: F401
    except ImportError:
        return "the streamlit-webrtc package is not installed (`pip install -r requirements.txt`)"
    return None


def snapshot_fallback(reason: str):
    """The snapshot camera in place of live video, with the reason; returns the snapshot (or None)."""
    st.warning(f"**Snapshots instead of live video:** {reason}. Each snapshot is classified when it is taken.",
               icon=":material/photo_camera:")
    if S.get(FALLBACK_KEY) and st.button("Try live video again", icon=":material/videocam:"):
        S[FALLBACK_KEY] = False
        st.rerun()
    return st.camera_input("Take a snapshot", key="predict_live_snapshot")


def _use_snapshots() -> None:
    S[FALLBACK_KEY] = True


def _classifier(run_id: str, variants: list[str], top_k: int):
    """This session's LiveClassifier for these choices (the previous one, for other choices, is closed)."""
    from core.evaluation.live import LiveClassifier
    key = (run_id, tuple(variants), top_k)
    old = S.get("live_classifier")
    if old and old[0] == key:
        return old[1]
    if old:
        old[1].close()
        S.pop("live_classifier", None)
    with st.spinner("Loading the models for live video…"):
        live = LiveClassifier(run_id, variants, top_k=top_k)
    S["live_classifier"] = (key, live)
    return live


def stream(run_id: str, variants: list[str], top_k: int) -> str | None:
    """The webcam streamer beside one column of live answers per variant; None, or why it could not start."""
    from streamlit_webrtc import WebRtcMode, webrtc_streamer

    from core.errors import LabError
    if not variants:
        st.info("Choose at least one variant.")
        return None
    try:
        ice = settings.ice_servers()
    except LabError as e:
        st.error(f"{e}. Live video uses no STUN/TURN server until this setting is fixed.")
        ice = []
    try:
        live = _classifier(run_id, variants, top_k)
    except LabError as e:
        st.error(str(e))
        return None

    def on_frame(frame):                        # runs in streamlit-webrtc's thread: no Streamlit calls here
        live.offer(frame.to_ndarray(format="rgb24"))
        return frame

    left, right = st.columns([2, 3], gap="medium")
    with left:
        try:
            ctx = webrtc_streamer(key="predict_live", mode=WebRtcMode.SENDRECV, rtc_configuration={"iceServers": ice},
                                  media_stream_constraints={"video": {"frameRate": {"ideal": 15}}, "audio": False},
                                  video_frame_callback=on_frame, translations=TRANSLATIONS,
                                  video_html_attrs={"autoPlay": True, "muted": True, "style": {"width": "100%"}})
        except Exception as e:  # noqa: BLE001 - whatever stops the component, the page goes on with snapshots
            return f"the live video component did not start ({type(e).__name__}: {e})"
        st.caption("Frames go from this browser to the lab's server only "
                   + ("(no STUN/TURN server is used). " if not ice else f"(ICE: {len(ice)} server(s) set). ")
                   + "Live video not working here? ")
        st.button("Use snapshots instead", icon=":material/photo_camera:", on_click=_use_snapshots,
                  help="Camera snapshots sent with the page instead of a WebRTC stream. " + HOW_TO_ICE)
    playing, signalling = ctx.state.playing, ctx.state.signalling
    if signalling and not playing:
        S.setdefault("live_signalling_since", time.time())
    else:
        S.pop("live_signalling_since", None)
    with right:
        _answers(live, variants, playing or signalling)
    return None


def _answers(live, variants: list[str], active: bool) -> None:
    @st.fragment(run_every=REFRESH_S if active else None)
    def panel() -> None:
        s = live.state()
        since = S.get("live_signalling_since")
        if since and time.time() - since > CONNECT_TIMEOUT_S and not s["frames_in"]:
            st.warning(f"The live video has not connected after {CONNECT_TIMEOUT_S} s. Use snapshots instead "
                       f"(button on the left). {HOW_TO_ICE}", icon=":material/wifi_off:")
        if not s["frames_in"]:
            st.info("Press **Start live camera**: the chosen variants answer every frame they can, side by side.")
            return
        st.markdown(f"**{s['fps']:.1f}** frames classified per second · camera {s['camera_fps']:.1f} fps",
                    help="Each frame is answered by every chosen variant in turn; while they work, newer frames "
                         "replace the waiting one (dropped, never queued), so answers stay current.")
        st.caption(f"frames received {s['frames_in']} · classified {s['frames_classified']} · "
                   f"dropped {s['frames_dropped']}" + ("" if active else " · stopped: these are the last answers"))
        cols = st.columns(len(variants), gap="small")
        for col, v in zip(cols, variants):
            got = s["variants"][v]
            with col.container(border=True):
                st.markdown(f"**{v}**")
                if got["error"]:
                    st.error(got["error"])
                ans = got["answer"]
                if not ans:
                    st.caption("waiting for its first answer…")
                    continue
                st.markdown(f"→ **{ans['label']}**")
                for t in ans["top"]:
                    st.progress(min(1.0, max(0.0, t["probability"])), text=f"{t['class']} {t['probability']:.0%}")
                st.caption(f"latency {got['latency_ms']:.1f} ms (median of {got['n']}, p95 "
                           f"{got['latency_ms_p95']:.1f})")
    panel()
