"""The Data page's "Make a dataset" builder in AppTest: make, add classes, see counts and the split rule, move,
remove, rename, "Train on it"; and a misclassified image on Results opened in its dataset to fix its label.

(Uploads and camera snapshots are browser input: tests/test_e2e_builder.py drives them in Chromium.)
"""
from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from core.data.datasets import LabDataset
from tests.conftest import REPO
from tests.test_labmade import files

APP = str(REPO / "streamlit_app.py")
TIMEOUT = 180


def run(x) -> AppTest:
    """Run the app (an AppTest, or a widget just set), check that it raised nothing, return the AppTest."""
    at = x.run()
    assert not at.exception, [e.message + "\n" + "\n".join(e.stack_trace) for e in at.exception]
    return at


def body(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [str(e.value) for e in at.error] + [str(w.value) for w in at.warning] + [str(s.value) for s in at.success]
    return "\n".join(parts + [str(i.value) for i in at.info])


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


@pytest.fixture
def data_page(fresh_home):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["data_source"] = "Make a dataset"
    at.switch_page("pages/1_Data.py")
    return run(at)


def test_make_a_dataset_on_the_data_page(data_page):
    at = data_page
    at.text_input(key="made_new_name").input("my toys")
    run(button(at, "Make the dataset").click())
    assert "Made **my_toys**" in body(at) and at.selectbox(key="w_made_dataset").value == "my_toys"
    for c in ("red", "Red", "blue"):
        at.text_input(key="made_new_class").input(c)
        run(button(at, "Add class").click())
        assert ("there is a class 'red' already" in body(at)) == (c == "Red")   # a duplicate is said, not made
    ds = LabDataset("my_toys")
    assert ds.classes() == ["blue", "red"]
    ds.add_images("red", files("r", (220, 30, 30), 12))
    ds.add_images("blue", files("b", (30, 30, 220), 2))
    run(at)
    text = body(at)
    assert "too few usable images: 'blue' has 2; each class needs at least 10" in text
    assert "**blue** · 2 images · :orange[8 more needed to split it]" in text and "**red** · 12 images" in text
    assert button(at, "Train on it").disabled and len(at.get("image")) == 14

    # fix a label: a red image into blue, then remove one; the counts follow
    first = ds.images("red")[-1]
    run(at.selectbox(key=f"made_mv_red/{first}").select("blue"))
    assert ds.counts() == {"blue": 3, "red": 11} and f"Moved `{first}` from **red** to **blue**" in body(at)
    run(button_key(at, f"made_rm_blue/{first}").click())
    assert ds.counts() == {"blue": 2, "red": 11}
    run(at.text_input(key="made_ren_blue").input("navy"))
    assert ds.classes() == ["navy", "red"] and "**navy** · 2 images" in body(at)

    ds.add_images("navy", files("n", (30, 30, 220), 10, start=5))
    run(at)
    assert "Ready to train: 2 classes" in body(at) and not button(at, "Train on it").disabled
    assert "Samples per class" in body(at)                  # the usual view of a dataset follows the builder
    run(button(at, "Train on it").click())
    assert at.session_state["train_dataset"] == "my_toys"
    assert at.selectbox(key="w_train_dataset").value == "my_toys"        # the Train page, with it chosen


def button_key(at: AppTest, key: str):
    return next(b for b in at.button if b.key == key)


def test_a_misclassified_image_opens_in_its_dataset(fresh_home):
    """A run on a dataset made here whose test split has mislabelled images: Results shows them with "Fix label";
    the button opens the Data page on that image, where it is moved to its class."""
    from core.config import HeadConfig, TrainConfig
    from core.training.train import train

    ds = LabDataset.create("mixed", ["red", "blue"])
    ds.add_images("red", files("r", (220, 30, 30), 12) + files("x", (30, 30, 220), 8, start=50))   # 8 mislabelled
    ds.add_images("blue", files("b", (30, 30, 220), 14))
    run_id = train(TrainConfig(dataset="mixed", backbone="mlp", image_size=16, epochs=30,
                               head=HeadConfig(dense=[16])))["run_id"]
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["run_id"] = run_id
    at.switch_page("pages/3_Results.py")
    run(at)
    fixes = [b for b in at.button if b.label == "Fix label"]
    assert fixes, body(at)                        # (the split is seeded: the same test images every time)
    run(fixes[0].click())
    assert "Fix a label." in body(at)
    focus = at.session_state["made_focus"]
    cls, file = ds.locate(focus["id"])
    other = "blue" if cls == "red" else "red"
    run(at.selectbox(key=f"made_fix_{cls}/{file}").select(other))
    assert ds.locate(f"{other}/{file}") == (other, file) and "Fix a label." not in body(at)


def test_results_say_other_datasets_are_read_only(fresh_home):
    from core.config import HeadConfig, TrainConfig
    from core.training.train import train

    ds = LabDataset.create("mixed2", ["red", "blue"])
    ds.add_images("red", files("r", (220, 30, 30), 12) + files("x", (30, 30, 220), 8, start=50))
    ds.add_images("blue", files("b", (30, 30, 220), 14))
    run_id = train(TrainConfig(dataset=str(ds.path), backbone="mlp", image_size=16, epochs=5,
                               head=HeadConfig(dense=[16])))["run_id"]                 # the same folder, by path
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["run_id"] = run_id
    at.switch_page("pages/3_Results.py")
    run(at)
    assert "Read-only here: data given by path or ZIP" in body(at)
    assert not [b for b in at.button if b.label == "Fix label"]
