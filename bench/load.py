"""`python -m bench load`: a classroom on one server, measured.

N headless sessions talk to one dashboard server on 127.0.0.1 the way a browser does: Streamlit's own protobufs
(BackMsg from the client, ForwardMsg from the server) over the /_stcore/stream websocket, widget states in the
rerun requests, file uploads through the upload URLs the server hands out, and the fragment auto-reruns it asks
for (the sidebar's job status while a job is open). Each session goes round the step loop

    Home -> Results -> Predict -> upload a photo and wait for the answer -> Results

a fixed number of times, with a short think time between steps. A step's time is from sending the request to the
server's "script finished"; an error is a Python exception or an error box on the page, a failed upload, a
prediction without an answer, or a step over its timeout. Scenarios: N = 1, 10, 20, 40 idle, and N = 10 while a
training job runs (the same job is timed alone first). The server's peak resident memory is sampled throughout.

The app runs on a run trained and compressed first through the library (shapes, MobileNetV2 at 96 px, three
TFLite variants), in a throw-away lab home that shares only the downloaded packages, weights and caches.
Writes bench/results/load.json and load.md. Everything is bounded: loops per session, a timeout per step and
one for the whole benchmark; all traffic goes to 127.0.0.1.
"""
from __future__ import annotations

import argparse
import asyncio
import http.client
import io
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
REPO = RESULTS.parent.parent
STEPS = ("home", "results", "predict", "upload+answer", "results again")
PAGES = {"home": "Home", "results": "Results", "predict": "Predict"}


# ------------------------------------------------------------------ the lab the server runs on


def lab_home() -> Path:
    """A throw-away LAB_HOME sharing the downloaded packages, converted weights and feature caches."""
    home = Path(tempfile.mkdtemp(prefix="lab-load-"))
    for name in ("packages", "weights", "cache"):
        shared = REPO / "artifacts" / name
        shared.mkdir(parents=True, exist_ok=True)
        (home / name).symlink_to(shared.resolve(), target_is_directory=True)
    return home


SETUP = r"""
import json, sys, time
from core.config import TrainConfig
from core.training.train import train
from core.compression import compress
t = time.perf_counter()
s = train(TrainConfig(dataset="shapes", backbone="mobilenet_v2", image_size=96, epochs=5, seed=0, name="classroom"))
out = compress(s["run_id"], ["tflite_float16", "tflite_dynamic", "tflite_int8"])
print(json.dumps({"run_id": s["run_id"], "test_accuracy": s["test_accuracy"], "weights": s.get("weights"),
                  "variants": [v["name"] for v in out["variants"]], "seconds": time.perf_counter() - t}))
"""


def prepare_run(env: dict) -> dict:
    """Train and compress the run every session looks at (in a child process: TensorFlow stays out of this one)."""
    out = subprocess.run([sys.executable, "-c", SETUP], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=900)
    if out.returncode != 0:
        raise SystemExit(f"could not train the run for the load test:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def photo() -> bytes:
    """A 'photo' to upload: a hand-drawn-looking triangle on a textured background, as a 480x360 JPEG."""
    import numpy as np
    from PIL import Image, ImageDraw
    rng = np.random.default_rng(7)
    bg = (rng.normal(200, 18, (360, 480, 3))).clip(0, 255).astype("uint8")
    img = Image.fromarray(bg)
    d = ImageDraw.Draw(img)
    d.polygon([(240, 50), (90, 310), (390, 300)], outline=(20, 20, 20), width=9)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=88)
    return buf.getvalue()


# ------------------------------------------------------------------ the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`streamlit run streamlit_app.py` on 127.0.0.1, with its peak resident memory sampled."""

    def __init__(self, env: dict, port: int, log: Path):
        self.port = port
        self.log = open(log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.peak_kb = 0
        self._stop = threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()

    def rss_kb(self) -> int:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, self.rss_kb())
            time.sleep(0.2)

    def reset_peak(self) -> None:
        self.peak_kb = self.rss_kb()

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return 0.0

    def wait_ready(self, timeout: float = 120) -> str:
        """Wait for /_stcore/health; returns the XSRF cookie it sets."""
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                raise SystemExit(f"the server exited with status {self.proc.returncode}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                c.request("GET", "/_stcore/health")
                r = c.getresponse()
                r.read()
                if r.status == 200:
                    cookie = r.getheader("set-cookie") or ""
                    return cookie.split(";", 1)[0].split("=", 1)[1] if "_streamlit_xsrf=" in cookie else ""
            except OSError:
                pass
            time.sleep(0.5)
        raise SystemExit("the server did not come up in time")

    def stop(self) -> None:
        self._stop.set()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


# ------------------------------------------------------------------ one headless session


class StepError(Exception):
    pass


class Session:
    """One browser tab, speaking Streamlit's websocket protocol."""

    def __init__(self, port: int, xsrf: str, image: bytes, step_timeout: float):
        self.port, self.xsrf, self.image, self.step_timeout = port, xsrf, image, step_timeout
        self.ws = None
        self.session_id = ""
        self.pages: dict[str, str] = {}          # page name -> page_script_hash
        self.page_hash = ""
        self.auto: dict[str, float] = {}         # fragment id -> interval (the server's auto_rerun requests)
        self.last_auto: dict[str, float] = {}
        self.uploader_id: str | None = None
        self.errors: list[str] = []              # the current run's error boxes and exceptions
        self.texts: list[str] = []               # the current run's markdown
        self._finished: asyncio.Queue = asyncio.Queue()
        self._file_urls: dict[str, asyncio.Future] = {}
        self._reader: asyncio.Task | None = None

    async def open(self) -> None:
        from websockets.asyncio.client import connect
        headers = {"Cookie": f"_streamlit_xsrf={self.xsrf}"} if self.xsrf else {}
        self.ws = await connect(f"ws://127.0.0.1:{self.port}/_stcore/stream", subprotocols=["streamlit"],
                                additional_headers=headers, max_size=None, open_timeout=60, ping_interval=None)
        self._reader = asyncio.create_task(self._read())

    async def close(self) -> None:
        if self._reader:
            self._reader.cancel()
        if self.ws is not None:
            await self.ws.close()

    async def _read(self) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
        try:
            async for data in self.ws:
                msg = ForwardMsg()
                msg.ParseFromString(data)
                self._handle(msg)
        except Exception as e:  # noqa: BLE001 - the connection went away: every waiter learns it
            self._finished.put_nowait(("closed", f"{type(e).__name__}: {e}"))
            return
        self._finished.put_nowait(("closed", "the server closed the connection"))

    def _handle(self, msg) -> None:
        kind = msg.WhichOneof("type")
        if kind == "new_session":
            ns = msg.new_session
            self.session_id = ns.initialize.session_id or self.session_id
            for p in ns.app_pages:
                self.pages[p.page_name] = p.page_script_hash
            self.page_hash = ns.page_script_hash or self.page_hash
        elif kind == "navigation":
            for p in msg.navigation.app_pages:
                self.pages[p.page_name] = p.page_script_hash
            self.page_hash = msg.navigation.page_script_hash or self.page_hash
        elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
            el = msg.delta.new_element
            t = el.WhichOneof("type")
            if t == "exception":
                self.errors.append(f"exception: {el.exception.type}: {el.exception.message}"[:300])
            elif t == "alert" and el.alert.format == 1:                 # Alert.ERROR
                self.errors.append(f"error box: {el.alert.body}"[:300])
            elif t == "markdown":
                self.texts.append(el.markdown.body)
            elif t == "file_uploader":
                self.uploader_id = el.file_uploader.id
        elif kind == "auto_rerun":
            self.auto[msg.auto_rerun.fragment_id] = msg.auto_rerun.interval
        elif kind == "stop_auto_rerun":
            for f in msg.stop_auto_rerun.fragment_ids:
                self.auto.pop(f, None)
        elif kind == "file_urls_response":
            fut = self._file_urls.pop(msg.file_urls_response.response_id, None)
            if fut and not fut.done():
                fut.set_result(msg.file_urls_response)
        elif kind == "script_finished":
            self._finished.put_nowait(("finished", msg.script_finished))

    async def _rerun(self, page: str | None = None, widgets: list | None = None, fragment_id: str = "") -> None:
        """Send one rerun request and wait for its run to finish (a run that ends early for another rerun is
        followed by that one)."""
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.ClientState_pb2 import ClientState
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
        from streamlit.proto.WidgetStates_pb2 import WidgetStates
        if page is not None:
            self.page_hash = self.pages.get(page, self.page_hash)
        while not self._finished.empty():
            self._finished.get_nowait()
        self.errors, self.texts = [], []
        state = ClientState(page_script_hash=self.page_hash, widget_states=WidgetStates(widgets=widgets or []),
                            fragment_id=fragment_id, is_auto_rerun=bool(fragment_id))
        await self.ws.send(BackMsg(rerun_script=state).SerializeToString())
        # a fragment's run may end in a whole-page run (the job it shows has finished: st.rerun(scope="app"))
        want = ((ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY, ForwardMsg.FINISHED_SUCCESSFULLY) if fragment_id
                else (ForwardMsg.FINISHED_SUCCESSFULLY,))
        end = time.monotonic() + self.step_timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise StepError(f"no answer within {self.step_timeout:.0f} s")
            try:
                kind, value = await asyncio.wait_for(self._finished.get(), left)
            except asyncio.TimeoutError:
                raise StepError(f"no answer within {self.step_timeout:.0f} s") from None
            if kind == "closed":
                raise StepError(f"connection lost: {value}")
            if value in want:
                break
            if value == ForwardMsg.FINISHED_WITH_COMPILE_ERROR:
                raise StepError("the page failed to compile")
        if self.errors:
            raise StepError("; ".join(self.errors[:3]))

    async def start(self) -> None:
        await self._rerun()                      # what a browser sends once connected: run the default page
        if not self.pages:
            raise StepError("the server sent no pages")

    async def upload_and_answer(self) -> None:
        """Ask for an upload URL, PUT the photo there, rerun with the uploader's new state, wait for the answer."""
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.Common_pb2 import FileURLs, FileURLsRequest, FileUploaderState, UploadedFileInfo
        from streamlit.proto.WidgetStates_pb2 import WidgetState
        if not self.uploader_id:
            raise StepError("the Predict page shows no uploader")
        rid = uuid.uuid4().hex
        fut = asyncio.get_running_loop().create_future()
        self._file_urls[rid] = fut
        await self.ws.send(BackMsg(file_urls_request=FileURLsRequest(
            request_id=rid, file_names=["photo.jpg"], session_id=self.session_id)).SerializeToString())
        try:
            resp = await asyncio.wait_for(fut, self.step_timeout)
        except asyncio.TimeoutError:
            raise StepError("no upload URL from the server") from None
        if resp.error_msg or not resp.file_urls:
            raise StepError(f"upload URL refused: {resp.error_msg}")
        urls = resp.file_urls[0]
        status = await asyncio.to_thread(self._put, urls.upload_url)
        if status not in (200, 204):
            raise StepError(f"upload failed with HTTP {status}")
        info = UploadedFileInfo(name="photo.jpg", size=len(self.image), file_id=urls.file_id,
                                file_urls=FileURLs(file_id=urls.file_id, upload_url=urls.upload_url,
                                                   delete_url=urls.delete_url))
        widget = WidgetState(id=self.uploader_id,
                             file_uploader_state_value=FileUploaderState(uploaded_file_info=[info]))
        await self._rerun(widgets=[widget])
        if not any(" → **" in t for t in self.texts):
            raise StepError("the prediction shows no answer")

    def _put(self, url: str) -> int:
        path = url.split("://", 1)[-1]
        path = path[path.index("/"):] if "://" in url else url
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"photo.jpg\"\r\n"
                f"Content-Type: image/jpeg\r\n\r\n").encode() + self.image + f"\r\n--{boundary}--\r\n".encode()
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        if self.xsrf:
            headers |= {"X-Xsrftoken": self.xsrf, "Cookie": f"_streamlit_xsrf={self.xsrf}"}
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.step_timeout)
        try:
            c.request("PUT", path, body=body, headers=headers)
            r = c.getresponse()
            r.read()
            return r.status
        finally:
            c.close()

    async def think(self, seconds: float, fragment_times: list[float], errors: list[str]) -> None:
        """Wait like a reading student; meanwhile run the fragment auto-reruns the server asked for, on time."""
        end = time.monotonic() + seconds
        while True:
            now = time.monotonic()
            due = [f for f, iv in self.auto.items() if now - self.last_auto.get(f, 0.0) >= iv]
            for f in due:
                self.last_auto[f] = time.monotonic()
                t = time.perf_counter()
                try:
                    await self._rerun(fragment_id=f)
                    fragment_times.append(time.perf_counter() - t)
                except StepError as e:
                    errors.append(f"fragment rerun: {e}")
            left = end - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.25))


async def run_session(k: int, endpoint: tuple[int, str], image: bytes, loops: int, think: float, step_timeout: float,
                      keep_going: "threading.Event | None", max_loops: int) -> dict:
    """One session's loops; returns its step times and errors."""
    s = Session(endpoint[0], endpoint[1], image, step_timeout)
    times: dict[str, list[float]] = {name: [] for name in STEPS}
    errors: list[str] = []
    fragments: list[float] = []
    await asyncio.sleep(0.05 * k)                # tabs opened over a couple of seconds, not in one instant
    try:
        await s.open()
        await s.start()
    except Exception as e:  # noqa: BLE001
        await s.close()
        return {"times": times, "errors": [f"connect: {type(e).__name__}: {e}"], "fragments": [], "loops": 0}
    done = 0
    try:
        while done < max_loops and (done < loops or (keep_going is not None and keep_going.is_set())):
            for name in STEPS:
                t = time.perf_counter()
                try:
                    if name == "upload+answer":
                        await s.upload_and_answer()
                    else:
                        await s._rerun(page=PAGES[name.split()[0]])
                    times[name].append(time.perf_counter() - t)
                except StepError as e:
                    errors.append(f"{name}: {e}")
                    if "connection lost" in str(e):
                        return {"times": times, "errors": errors, "fragments": fragments, "loops": done}
                await s.think(think, fragments, errors)
            done += 1
    finally:
        await s.close()
    return {"times": times, "errors": errors, "fragments": fragments, "loops": done}


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(round(q * (len(v) - 1)))))]


async def scenario(n: int, endpoints: list[tuple[int, str]], image: bytes, loops: int, think: float, step_timeout: float,
                   timeout: float, keep_going: "threading.Event | None" = None, max_loops: int = 0) -> dict:
    tasks = [asyncio.create_task(run_session(k, endpoints[k % len(endpoints)], image, loops, think, step_timeout, keep_going,
                                             max_loops or loops)) for k in range(n)]
    t0 = time.perf_counter()
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    for t in pending:
        t.cancel()
    outs = [t.result() for t in done if not t.cancelled() and t.exception() is None]
    errors = [e for o in outs for e in o["errors"]]
    errors += [f"session crashed: {t.exception()!r}" for t in done if not t.cancelled() and t.exception()]
    errors += ["session cut by the scenario timeout"] * len(pending)
    steps = [x for o in outs for v in o["times"].values() for x in v]
    per_step = {name: round(statistics.median(v), 3) for name in STEPS
                if (v := [x for o in outs for x in o["times"][name]])}
    frags = [x for o in outs for x in o["fragments"]]
    return {"n": n, "servers": len(endpoints), "steps": len(steps), "loops": sum(o["loops"] for o in outs),
            "median_s": round(statistics.median(steps), 3) if steps else None,
            "p95_s": round(pct(steps, 0.95), 3) if steps else None, "max_s": round(max(steps), 3) if steps else None,
            "errors": len(errors), "error_samples": sorted(set(errors))[:8], "median_by_step_s": per_step,
            "fragment_reruns": len(frags), "fragment_p95_s": round(pct(frags, 0.95), 3) if frags else None,
            "wall_s": round(time.perf_counter() - t0, 1)}


# ------------------------------------------------------------------ the training job


JOB_EPOCHS = 10


def job_spec() -> dict:
    """A student's training job: MobileNetV2 feature extraction on shapes at 96 px (features cached), 10 epochs,
    then the two quickest compressions (float16 and dynamic-range TFLite)."""
    return {"kind": "train", "name": "load-test job",
            "config": {"dataset": "shapes", "backbone": "mobilenet_v2", "image_size": 96, "epochs": JOB_EPOCHS,
                       "seed": 1},
            "compress": {"techniques": ["tflite_float16", "tflite_dynamic"]}}


def run_job(timeout: float, home: Path | None = None) -> dict:
    """Submit the job (in `home`, else the app's lab home) and wait for it; returns its status and the seconds
    from its start to its finish."""
    old = os.environ["LAB_HOME"]
    if home is not None:
        os.environ["LAB_HOME"] = str(home)
    try:
        return _run_job(timeout)
    finally:
        os.environ["LAB_HOME"] = old


def _run_job(timeout: float) -> dict:
    from core import jobs
    job_id = jobs.submit(job_spec())
    end = time.time() + timeout
    while time.time() < end:
        j = jobs.get_job(job_id)
        if j["status"] in jobs.FINISHED:
            secs = (j["finished"] or 0) - (j["started"] or j["created"])
            return {"job_id": job_id, "status": j["status"], "seconds": round(secs, 2), "error": j["error"]}
        time.sleep(0.25)
    jobs.cancel(job_id, grace=2)
    return {"job_id": job_id, "status": "timeout", "seconds": None, "error": f"not finished within {timeout} s"}


def median_seconds(runs: list[dict]) -> float | None:
    secs = [j["seconds"] for j in runs if j.get("status") == "done" and j.get("seconds")]
    return round(statistics.median(secs), 2) if secs else None


# ------------------------------------------------------------------ the benchmark


def conditions(server: Server) -> dict:
    load = os.getloadavg()
    from importlib.metadata import version
    return {"cpus": os.cpu_count(), "load_average_1_5_15": [round(x, 2) for x in load],
            "streamlit": version("streamlit"), "python": sys.version.split()[0],
            "note": "client and server share the machine's cores; other work on the machine counts too"}


def markdown(r: dict) -> str:
    c = r["conditions"]
    f = lambda x, d=2: "-" if x is None else f"{x:.{d}f}"  # noqa: E731
    lines = [f"Load test ({r['date']}; {c['cpus']} CPUs, load average before {c['load_average_1_5_15'][0]}, "
             f"after {r['conditions_after']['load_average_1_5_15'][0]}; {r['loops']} loops per session, "
             f"think time {r['think_s']} s, step timeout {r['step_timeout_s']} s, total {r['total_seconds']:.0f} s)", "",
             "| sessions | server processes | training job | steps | median s | p95 s | max s | errors | server peak RSS MB "
             "| server CPU cores busy | load client CPU s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in r["scenarios"]:
        lines.append(f"| {s['n']} | {s.get('servers', 1)} | {'yes' if s['training'] else 'no'} | {s['steps']} | {f(s['median_s'])} | "
                     f"{f(s['p95_s'])} | {f(s['max_s'])} | {s['errors']} | {s['peak_rss_mb']:.0f} | "
                     f"{f(s.get('server_cores_busy'))} | {f(s.get('client_cpu_s'), 1)} |")
    lines += ["", f"Training job alone: {f(r['train_seconds_idle'], 1)} s; with 10 sessions: "
                  f"{f(r['train_seconds_loaded'], 1)} s "
                  f"({f(r['train_slowdown'])}x). Job failures: {r['job_failures']}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench load", description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", default="1,10,20,40", help="idle scenarios: session counts (default 1,10,20,40)")
    ap.add_argument("--training-sessions", type=int, default=10, help="sessions while a training job runs (0: skip)")
    ap.add_argument("--loops", type=int, default=3, help="step loops per session (default 3)")
    ap.add_argument("--think", type=float, default=1.0, help="seconds between a session's steps (default 1)")
    ap.add_argument("--step-timeout", type=float, default=60.0, help="seconds before a step counts as an error")
    ap.add_argument("--timeout", type=float, default=2400.0, help="seconds for the whole benchmark (default 2400)")
    ap.add_argument("--port", type=int, default=0, help="server port on 127.0.0.1 (default: a free one)")
    ap.add_argument("--two-servers", default="20,40",
                    help="session counts to run again with two server processes (empty: skip; default 20,40)")
    ap.add_argument("--job-repeats", type=int, default=3,
                    help="times the training job runs alone and under load (the median counts; default 3)")
    ap.add_argument("--keep-home", action="store_true", help="keep the throw-away lab home")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    deadline = time.monotonic() + args.timeout
    home = lab_home()
    env = dict(os.environ, LAB_HOME=str(home), TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=str(REPO) + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""))
    os.environ["LAB_HOME"] = str(home)
    RESULTS.mkdir(parents=True, exist_ok=True)
    print(f"lab home {home}; training and compressing the run the sessions look at…", flush=True)
    run = prepare_run(env)
    print(f"run {run['run_id']} ({run['test_accuracy']:.3f}, variants {', '.join(run['variants'])}) in "
          f"{run['seconds']:.0f} s", flush=True)
    port = args.port or free_port()
    server = Server(env, port, home / "server.log")
    image = photo()
    r: dict = {"date": time.strftime("%Y-%m-%d %H:%M"), "loops": args.loops, "think_s": args.think,
               "step_timeout_s": args.step_timeout, "run": run, "scenarios": []}
    try:
        xsrf = server.wait_ready()
        one = [(port, xsrf)]
        r["conditions"] = conditions(server)

        def left() -> float:
            return max(1.0, deadline - time.monotonic())
        # warm-up (not measured): TensorFlow, the models and the pages' caches load once per server process
        warm = asyncio.run(scenario(1, one, image, 1, 0.0, 300.0, min(600.0, left())))
        print(f"warm-up: {warm['steps']} steps, {warm['errors']} errors {warm['error_samples']}", flush=True)
        job_failures = 0
        # timed alone in a lab home of its own (sharing the caches), so its run is not the newest one the
        # sessions' pages would pick by default
        solo = lab_home()
        idle_runs = [run_job(min(900.0, left()), solo) for _ in range(max(1, args.job_repeats))]
        shutil.rmtree(solo, ignore_errors=True)
        print(f"training job alone: {idle_runs}", flush=True)
        job_failures += sum(j["status"] != "done" for j in idle_runs)
        idle = {"runs": idle_runs, "seconds": median_seconds(idle_runs)}
        def cpu() -> tuple[float, float]:
            t = os.times()
            return server.cpu_seconds(), t.user + t.system

        def used(before: tuple[float, float], s: dict) -> dict:
            after = cpu()
            return {"server_cpu_s": round(after[0] - before[0], 1), "client_cpu_s": round(after[1] - before[1], 1),
                    "server_cores_busy": round((after[0] - before[0]) / max(s["wall_s"], 1e-9), 2)}
        for n in [int(x) for x in args.sessions.split(",") if x.strip()]:
            server.reset_peak()
            before = cpu()
            s = asyncio.run(scenario(n, one, image, args.loops, args.think, args.step_timeout, left()))
            s |= {"training": False, "peak_rss_mb": round(server.peak_kb / 1024, 1)} | used(before, s)
            r["scenarios"].append(s)
            print(json.dumps(s), flush=True)
        if args.two_servers.strip():
            # (before the training scenario: its job adds the newest run, which fresh sessions would open)
            # a second server process on the same lab home; each session is sent to one of the two (as a proxy
            # with sticky sessions would: a Streamlit session lives in one process)
            port2 = free_port()
            second = Server(env, port2, home / "server2.log")
            try:
                two = one + [(port2, second.wait_ready())]
                warm = asyncio.run(scenario(1, two[1:], image, 1, 0.0, 300.0, min(600.0, left())))
                print(f"second server warm-up: {warm['steps']} steps, {warm['errors']} errors", flush=True)
                for n in [int(x) for x in args.two_servers.split(",") if x.strip()]:
                    server.reset_peak()
                    second.reset_peak()
                    before = cpu(), second.cpu_seconds()
                    s = asyncio.run(scenario(n, two, image, args.loops, args.think, args.step_timeout, left()))
                    u = used(before[0], s)
                    extra = second.cpu_seconds() - before[1]
                    u["server_cpu_s"] = round(u["server_cpu_s"] + extra, 1)
                    u["server_cores_busy"] = round(u["server_cpu_s"] / max(s["wall_s"], 1e-9), 2)
                    s |= {"training": False, "peak_rss_mb": round((server.peak_kb + second.peak_kb) / 1024, 1)} | u
                    r["scenarios"].append(s)
                    print(json.dumps(s), flush=True)
            finally:
                second.stop()
        loaded = None
        if args.training_sessions:
            server.reset_peak()
            busy = threading.Event()
            busy.set()
            loaded_runs: list[dict] = []

            def job() -> None:
                try:
                    time.sleep(2.0)              # the sessions are on their pages when the job starts
                    for _ in range(max(1, args.job_repeats)):
                        loaded_runs.append(run_job(min(900.0, left())))
                finally:
                    busy.clear()
            th = threading.Thread(target=job, daemon=True)
            before = cpu()
            th.start()
            s = asyncio.run(scenario(args.training_sessions, one, image, args.loops, args.think,
                                     args.step_timeout, left(), keep_going=busy, max_loops=args.loops * 20))
            th.join(timeout=left())
            job_failures += sum(j["status"] != "done" for j in loaded_runs) + (not loaded_runs)
            loaded = {"runs": loaded_runs, "seconds": median_seconds(loaded_runs)}
            s |= {"training": True, "peak_rss_mb": round(server.peak_kb / 1024, 1), "job": loaded} | used(before, s)
            r["scenarios"].append(s)
            print(json.dumps(s), flush=True)
        r |= {"train_seconds_idle": idle["seconds"], "train_seconds_loaded": loaded and loaded.get("seconds"),
              "train_slowdown": round(loaded["seconds"] / idle["seconds"], 2)
              if loaded and loaded.get("seconds") and idle["seconds"] else None,
              "job_failures": job_failures, "jobs": {"idle": idle, "loaded": loaded}}
        r["conditions_after"] = conditions(server)
    finally:
        server.stop()
        if not args.keep_home:
            shutil.rmtree(home, ignore_errors=True)
    r["total_seconds"] = time.perf_counter() - t_start
    from core.store.runs import dumps
    (RESULTS / "load.json").write_text(dumps(r, indent=1))
    (RESULTS / "load.md").write_text(markdown(r))
    print(markdown(r))
    return 0
