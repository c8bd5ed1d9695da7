"""MLP Lab's dashboard: `streamlit run dashboard.py`.

The entrypoint only sets up the frame: page config, the navigation, the sidebar status
and the toasts about runs that ended. Each page lives in pages/ and calls into mlp_lab.
"""

import os
from pathlib import Path

# One BLAS thread per training run: many sessions train at once on a few cores, and
# OpenBLAS's own threads fighting over them made training several times slower here.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import streamlit as st

from mlp_lab import classroom, config
from mlp_lab.links import apply_link, sync_link
from mlp_lab.session import (accessibility_fixes, friendly_error, get_lab, render_sidebar, show_notices,
                             show_store_problems)

# A bundled icon (an MNIST 5), served by this server: a material icon as page_icon makes
# every browser fetch it from the internet, which an offline classroom cannot.
FAVICON = str(Path(__file__).resolve().parent / "mlp_lab" / "favicon.png")
st.set_page_config(page_title="MLP Lab", page_icon=FAVICON, layout="wide")

PAGES = [
    st.Page("pages/model.py", title="Model", icon=":material/neurology:", default=True),
    st.Page("pages/train.py", title="Train", icon=":material/show_chart:"),
    st.Page("pages/weights.py", title="Weights", icon=":material/grid_on:"),
    st.Page("pages/testing.py", title="Test", icon=":material/draw:"),
    st.Page("pages/lesson.py", title="Lessons", icon=":material/school:"),
    st.Page("pages/compare.py", title="Notebook vs modern", icon=":material/compare_arrows:"),
    st.Page("pages/why.py", title="Why this answer", icon=":material/psychology_alt:"),
    st.Page("pages/inside.py", title="Inside the network", icon=":material/account_tree:"),
    st.Page("pages/replay.py", title="Replay", icon=":material/replay:"),
    st.Page("pages/keras.py", title="NumPy vs Keras", icon=":material/balance:"),
    # The teacher's page (behind the teacher code): issue #13.
    st.Page("pages/class.py", title="Class", icon=":material/groups:"),
]

page = st.navigation(PAGES)
try:
    lab = get_lab()
    apply_link(lab)  # a shared link (?lesson=... or settings) sets the model, once per session
    # On the Train page the end of a run is said in the page itself: no toast repeating it.
    show_notices(lab, toast=page.url_path != "train")
    accessibility_fixes()
    show_store_problems()  # the store could not save (a full disk...): said once, the lab goes on
    render_sidebar(lab)
    classroom.render_name_field(st.session_state["student_id"])  # the name the Class page shows
    classroom.render_banner(lab)  # "Your teacher started lesson 3 ... Join", from the store
    page.run()
    sync_link(lab)  # the address bar holds the current settings, to share them
except Exception as exc:
    if config.DEBUG:
        raise
    friendly_error(exc)
